#include "qemu/internals.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace {

using pyrebox::qemu::Internals;
using pyrebox::qemu::required_internal_names;
using pyrebox::qemu::resolve_internals;

int g_anchor;  // any valid address stands in for a resolved function

TEST(Internals, AllPresentResolvesEverySlot) {
    Internals table;
    const auto missing = resolve_internals([](const char*) -> void* { return &g_anchor; }, table);
    EXPECT_TRUE(missing.empty());
    EXPECT_NE(table.tb_flush, nullptr);
    EXPECT_NE(table.cpu_physical_memory_rw, nullptr);
    EXPECT_TRUE(table.has_official_writes());
}

TEST(Internals, ReportsEachMissingRequiredSymbolInOrder) {
    const std::set<std::string> absent{"tb_flush", "vm_stop"};
    Internals table;
    const auto missing = resolve_internals(
        [&](const char* name) -> void* { return absent.count(name) ? nullptr : &g_anchor; },
        table);
    ASSERT_EQ(missing.size(), 2u);
    EXPECT_EQ(missing[0], "tb_flush");
    EXPECT_EQ(missing[1], "vm_stop");
    EXPECT_EQ(table.tb_flush, nullptr);
}

TEST(Internals, OptionalApi5FunctionsAreNotRequired) {
    Internals table;
    const auto missing = resolve_internals(
        [](const char* name) -> void* {
            return std::string(name).rfind("qemu_plugin_", 0) == 0 ? nullptr : &g_anchor;
        },
        table);
    EXPECT_TRUE(missing.empty());
    EXPECT_FALSE(table.has_official_writes());
}

TEST(Internals, RequiredListMatchesTheDocumentedBridge) {
    const auto names = required_internal_names();
    EXPECT_EQ(names.size(), 24u);
    EXPECT_EQ(names.front(), "qemu_get_cpu");
    EXPECT_EQ(names.back(), "qemu_add_vm_change_state_handler");
}

TEST(Internals, PretendMissingHidesNamedSymbolsOnly) {
    auto resolve = pyrebox::qemu::process_symbol_resolver("dlsym,not_there");
    EXPECT_EQ(resolve("dlsym"), nullptr);
    EXPECT_NE(resolve("dlopen"), nullptr);  // a real symbol of this process
}

}  // namespace
