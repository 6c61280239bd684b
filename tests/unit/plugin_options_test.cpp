#include "core/plugin_options.h"

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
