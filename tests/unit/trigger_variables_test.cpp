#include "triggers/trigger_variables.h"

#include "base/address_windows.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>

namespace {

using pyrebox::triggers::VariableStore;

uint64_t as_u64(void* p) {
    uint64_t v = 0;
    std::memcpy(&v, p, 8);
    return v;
}

TEST(TriggerVariables, CachedReadsFollowEveryChange) {
    VariableStore store;
    EXPECT_EQ(store.get_cached(1, "begin"), nullptr);
    store.set_uint(1, "begin", 0x1000, 8);
    ASSERT_NE(store.get_cached(1, "begin"), nullptr);
    EXPECT_EQ(as_u64(store.get_cached(1, "begin")), 0x1000u);
    EXPECT_EQ(as_u64(store.get_cached(1, "begin")), 0x1000u);  // from the cache
    store.set_uint(1, "begin", 0x2000, 8);                     // replaced: freed, new pointer
    EXPECT_EQ(as_u64(store.get_cached(1, "begin")), 0x2000u);
    store.set_uint(2, "begin", 0x3000, 8);  // another handle, same key
    EXPECT_EQ(as_u64(store.get_cached(2, "begin")), 0x3000u);
    EXPECT_EQ(as_u64(store.get_cached(1, "begin")), 0x2000u);
    store.remove(1, "begin", true);
    EXPECT_EQ(store.get_cached(1, "begin"), nullptr);
    store.erase(2);
    EXPECT_EQ(store.get_cached(2, "begin"), nullptr);
}

// Range triggers' address windows are computed from their variables: every
// change must reach the memory pre-filter.
TEST(TriggerVariables, EveryChangeMovesTheAddressWindowEpoch) {
    VariableStore store;
    uint64_t epoch = pyrebox::address_window_epoch();
    auto moved = [&epoch] {
        const uint64_t now = pyrebox::address_window_epoch();
        const bool changed = now != epoch;
        epoch = now;
        return changed;
    };
    store.set_uint(1, "begin", 0x1000, 8);
    EXPECT_TRUE(moved());
    store.set_str(1, "name", "x");
    EXPECT_TRUE(moved());
    store.get_cached(1, "begin");
    EXPECT_FALSE(moved());
    store.remove(1, "name", true);
    EXPECT_TRUE(moved());
    store.erase(1);
    EXPECT_TRUE(moved());
}

TEST(TriggerVariables, KeysAreComparedByContentNotPointer) {
    VariableStore store;
    store.set_str(1, "a", "first");
    store.set_str(1, "b", "second");
    char key[8] = "a";
    EXPECT_STREQ(static_cast<const char*>(store.get_cached(1, key)), "first");
    key[0] = 'b';  // same buffer, another key
    EXPECT_STREQ(static_cast<const char*>(store.get_cached(1, key)), "second");
    const std::string long_key(40, 'k');  // longer than the cache keeps
    store.set_str(1, long_key, "long");
    EXPECT_STREQ(static_cast<const char*>(store.get_cached(1, long_key.c_str())), "long");
}

}  // namespace
