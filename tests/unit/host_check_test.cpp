#include "qemu/host_check.h"

#include <gtest/gtest.h>

using pyrebox::qemu::check_host;

TEST(HostCheck, AcceptsBothX86Targets) {
    EXPECT_FALSE(check_host("x86_64", true, 2, 4).has_value());
    EXPECT_FALSE(check_host("i386", true, 2, 4).has_value());
    EXPECT_FALSE(check_host("x86_64", true, 2, 7).has_value());
}

TEST(HostCheck, RefusesOtherTargetsNamingThem) {
    const auto error = check_host("aarch64", true, 2, 4);
    ASSERT_TRUE(error.has_value());
    EXPECT_NE(error->find("'aarch64'"), std::string::npos);
    EXPECT_NE(error->find("qemu-system-x86_64"), std::string::npos);
}

TEST(HostCheck, RefusesUserMode) {
    ASSERT_TRUE(check_host("x86_64", false, 2, 4).has_value());
}

TEST(HostCheck, RefusesApiRangeWithoutVersion4) {
    const auto old = check_host("x86_64", true, 2, 3);
    ASSERT_TRUE(old.has_value());
    EXPECT_NE(old->find("2..3"), std::string::npos);
    ASSERT_TRUE(check_host("x86_64", true, 5, 6).has_value());
}
