#include "base/plugin_options.h"

#include <gtest/gtest.h>

using pyrebox::parse_plugin_options;

TEST(PluginOptions, DefaultsComeFromTheCheckout) {
    const auto opts = parse_plugin_options({}, "/src");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->venv, "/src/.venv");
    EXPECT_EQ(opts->pythonpath, "/src/python");
    EXPECT_EQ(opts->conf, "");
    EXPECT_EQ(opts->out_fd, 2);
}

TEST(PluginOptions, ParsesEveryKey) {
    const auto opts =
        parse_plugin_options({"conf=/a/pyrebox.conf", "venv=/v", "pythonpath=/p", "out=7"}, "/s");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->conf, "/a/pyrebox.conf");
    EXPECT_EQ(opts->venv, "/v");
    EXPECT_EQ(opts->pythonpath, "/p");
    EXPECT_EQ(opts->out_fd, 7);
}

TEST(PluginOptions, ConsoleAndQmpSockets) {
    const auto opts = parse_plugin_options({"console=/r/console.sock", "qmp=/r/q.sock"}, "/s");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->console, "/r/console.sock");
    EXPECT_EQ(opts->qmp, "/r/q.sock");
    EXPECT_EQ(parse_plugin_options({}, "/s")->console, "");
}

TEST(PluginOptions, ValueMayContainEquals) {
    const auto opts = parse_plugin_options({"conf=/a=b/c"}, "/s");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->conf, "/a=b/c");
}

TEST(PluginOptions, UnknownKeyIsNamed) {
    const auto opts = parse_plugin_options({"colour=blue"}, "/s");
    ASSERT_FALSE(opts.ok());
    EXPECT_NE(opts.error().find("'colour'"), std::string::npos);
    EXPECT_NE(opts.error().find("valid keys"), std::string::npos);
}

TEST(PluginOptions, MissingEqualsAndBadFdAreErrors) {
    EXPECT_FALSE(parse_plugin_options({"conf"}, "/s").ok());
    EXPECT_FALSE(parse_plugin_options({"out=x"}, "/s").ok());
    EXPECT_FALSE(parse_plugin_options({"out=-1"}, "/s").ok());
    EXPECT_FALSE(parse_plugin_options({"out=3x"}, "/s").ok());
}

TEST(PluginOptions, SymbolTableAndRamSize) {
    const auto none = parse_plugin_options({}, "/s");
    ASSERT_TRUE(none.ok());
    EXPECT_EQ(none->isf, "");
    EXPECT_EQ(none->ram_bytes, 0u);
    const auto opts = parse_plugin_options({"isf=/g/kernel.isf.json.xz", "ram=536870912"}, "/s");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->isf, "/g/kernel.isf.json.xz");
    EXPECT_EQ(opts->ram_bytes, 536870912u);
    EXPECT_EQ(parse_plugin_options({"ram=512M"}, "/s")->ram_bytes, 512ull << 20);
    EXPECT_EQ(parse_plugin_options({"ram=2G"}, "/s")->ram_bytes, 2ull << 30);
}

TEST(PluginOptions, BadRamSizeIsNamed) {
    for (const char* bad : {"ram=", "ram=x", "ram=12Q", "ram=-5", "ram=5MM", "ram=99999999999T"}) {
        const auto opts = parse_plugin_options({bad}, "/s");
        ASSERT_FALSE(opts.ok()) << bad;
        EXPECT_NE(opts.error().find("ram="), std::string::npos) << opts.error();
    }
}

TEST(PluginOptions, QmpAndNicSockets) {
    const auto opts =
        parse_plugin_options({"qmp=/r/q.sock", "nic_send=/r/s.sock", "nic_recv=/r/r.sock"}, "/s");
    ASSERT_TRUE(opts.ok());
    EXPECT_EQ(opts->qmp, "/r/q.sock");
    EXPECT_EQ(opts->nic_send, "/r/s.sock");
    EXPECT_EQ(opts->nic_recv, "/r/r.sock");
    const auto half = parse_plugin_options({"nic_send=/r/s.sock"}, "/s");
    ASSERT_FALSE(half.ok());
    EXPECT_NE(half.error().find("nic_send and nic_recv go together"), std::string::npos);
}
