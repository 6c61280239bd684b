#include "base/ps2_keycodes.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

std::vector<int> codes(uint8_t byte) {
    const auto k = pyrebox::ps2_keycodes_for_read(byte);
    return std::vector<int>(k.codes.begin(), k.codes.begin() + static_cast<long>(k.count));
}

TEST(Ps2Keycodes, PressOfALetterIsItsSet2Code) {
    EXPECT_EQ(codes(0x1e), std::vector<int>({0x1c}));  // a
    EXPECT_EQ(codes(0x23), std::vector<int>({0x33}));  // h
    EXPECT_EQ(codes(0x1c), std::vector<int>({0x5a}));  // Enter
    EXPECT_EQ(codes(0x2a), std::vector<int>({0x12}));  // left Shift
}

TEST(Ps2Keycodes, ReleaseIsBreakPrefixThenCode) {
    EXPECT_EQ(codes(0x9e), std::vector<int>({0xf0, 0x1c}));  // a released
    EXPECT_EQ(codes(0xaa), std::vector<int>({0xf0, 0x12}));  // left Shift released
}

TEST(Ps2Keycodes, PrefixesPassThroughAndExtendedKeysKeepTheirCode) {
    EXPECT_EQ(codes(0xe0), std::vector<int>({0xe0}));
    EXPECT_EQ(codes(0xe1), std::vector<int>({0xe1}));
    EXPECT_EQ(codes(0x48), std::vector<int>({0x75}));  // (e0) Up
    EXPECT_EQ(codes(0x41), std::vector<int>({0x83}));  // F7, not the unused 0x02
}

TEST(Ps2Keycodes, KeyboardAnswersAreDropped) {
    EXPECT_TRUE(codes(0xfa).empty());
    EXPECT_TRUE(codes(0xfe).empty());
}

TEST(Ps2Keycodes, UntranslateInvertsTheControllerTable) {
    EXPECT_EQ(pyrebox::ps2_untranslate(0x01), 0x76);  // Esc
    EXPECT_EQ(pyrebox::ps2_untranslate(0x39), 0x29);  // Space
}

}  // namespace
