#include "base/x86_insn.h"

#include <gtest/gtest.h>

#include <vector>

namespace {

using pyrebox::classify;
using pyrebox::InsnInfo;
using pyrebox::mov_to_cr3_source;
using pyrebox::syscall_path;
using pyrebox::SyscallPath;

constexpr bool kLong = true;
constexpr bool k32 = false;

struct Result {
    bool ok;
    InsnInfo info;
};

Result run(const std::vector<uint8_t>& bytes, bool long_mode) {
    InsnInfo info{0xFFFF, 0xFF, 0xFF, true};
    const bool ok = classify(bytes.data(), bytes.size(), long_mode, info);
    return {ok, info};
}

std::optional<int> cr3_source(const std::vector<uint8_t>& bytes, bool long_mode) {
    return mov_to_cr3_source(bytes.data(), bytes.size(), long_mode);
}

void expect_insn(const std::vector<uint8_t>& bytes, bool long_mode, uint16_t opcode,
                 uint8_t prefix_len, bool has_modrm, uint8_t modrm) {
    const Result r = run(bytes, long_mode);
    ASSERT_TRUE(r.ok);
    EXPECT_EQ(r.info.opcode, opcode);
    EXPECT_EQ(r.info.prefix_len, prefix_len);
    EXPECT_EQ(r.info.has_modrm, has_modrm);
    EXPECT_EQ(r.info.modrm, modrm);
}

// ---- classify ----

TEST(Classify, Cpuid) { expect_insn({0x0F, 0xA2}, kLong, 0x1A2, 0, false, 0); }

TEST(Classify, CallRel32) {
    expect_insn({0xE8, 0x10, 0x20, 0x30, 0x40}, kLong, 0xE8, 0, false, 0);
}

TEST(Classify, MultiByteNopWithOperandSizePrefix) {
    expect_insn({0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00}, kLong, 0x11F, 1, true, 0x44);
}

TEST(Classify, Endbr64) { expect_insn({0xF3, 0x0F, 0x1E, 0xFA}, kLong, 0x11E, 1, true, 0xFA); }

TEST(Classify, MovRbpRspWithRex) { expect_insn({0x48, 0x89, 0xE5}, kLong, 0x89, 1, true, 0xE5); }

TEST(Classify, LockCmpxchgWithRex) {
    // lock cmpxchg [rdx], rcx
    expect_insn({0xF0, 0x48, 0x0F, 0xB1, 0x0A}, kLong, 0x1B1, 2, true, 0x0A);
}

TEST(Classify, ControlRegisterMoves) {
    expect_insn({0x0F, 0x22, 0xDF}, kLong, 0x122, 0, true, 0xDF);
    expect_insn({0x0F, 0x20, 0xD8}, kLong, 0x120, 0, true, 0xD8);
    expect_insn({0x0F, 0x21, 0xF8}, kLong, 0x121, 0, true, 0xF8);  // mov rax, dr7
    expect_insn({0x0F, 0x23, 0xF8}, kLong, 0x123, 0, true, 0xF8);  // mov dr7, rax
}

TEST(Classify, Group7UsesTheModrmByte) {
    expect_insn({0x0F, 0x01, 0xD0}, kLong, 0x101, 0, true, 0xD0);  // xgetbv
    expect_insn({0x0F, 0x01, 0x10}, k32, 0x101, 0, true, 0x10);    // lgdt [eax]
}

TEST(Classify, ThreeByteOpcodes) {
    expect_insn({0x0F, 0x38, 0xF0, 0x07}, kLong, 0x2F0, 0, true, 0x07);  // movbe eax, [rdi]
    expect_insn({0x66, 0x0F, 0x3A, 0x0F, 0xC1, 0x08}, kLong, 0x30F, 1, true, 0xC1);  // palignr
}

TEST(Classify, OneByteOpcodesWithAndWithoutModrm) {
    expect_insn({0x90}, kLong, 0x90, 0, false, 0);
    expect_insn({0xC3}, kLong, 0xC3, 0, false, 0);
    expect_insn({0x55}, kLong, 0x55, 0, false, 0);                   // push rbp
    expect_insn({0x8D, 0x45, 0xF8}, k32, 0x8D, 0, true, 0x45);       // lea eax, [ebp-8]
    expect_insn({0xFF, 0x15, 0, 0, 0, 0}, kLong, 0xFF, 0, true, 0x15);  // call [rip+0]
    expect_insn({0xC7, 0x00, 1, 0, 0, 0}, k32, 0xC7, 0, true, 0x00);   // mov dword [eax], 1
    expect_insn({0xD9, 0xE8}, k32, 0xD9, 0, true, 0xE8);             // fld1
    expect_insn({0xB8, 1, 0, 0, 0}, k32, 0xB8, 0, false, 0);         // mov eax, 1
    expect_insn({0xCD, 0x80}, k32, 0xCD, 0, false, 0);               // int 0x80
    expect_insn({0x0F, 0x05}, kLong, 0x105, 0, false, 0);            // syscall
    expect_insn({0x0F, 0x84, 0, 0, 0, 0}, kLong, 0x184, 0, false, 0);  // je rel32
}

TEST(Classify, RexIsAPrefixOnlyInLongMode) {
    // In 32-bit mode 40 is inc eax.
    expect_insn({0x40}, k32, 0x40, 0, false, 0);
    expect_insn({0x48, 0x89, 0xE5}, k32, 0x48, 0, false, 0);  // dec eax
    // In long mode a lone REX has no opcode after it.
    EXPECT_FALSE(run({0x40}, kLong).ok);
}

TEST(Classify, RexFollowedByALegacyPrefixStillCounts) {
    // 48 66 90: the REX is ignored by the CPU but is still a prefix byte.
    expect_insn({0x48, 0x66, 0x90}, kLong, 0x90, 2, false, 0);
}

TEST(Classify, SegmentAndRepPrefixes) {
    expect_insn({0x64, 0x48, 0x8B, 0x04, 0x25, 0x28, 0, 0, 0}, kLong, 0x8B, 2, true, 0x04);
    expect_insn({0xF3, 0xA4}, k32, 0xA4, 1, false, 0);  // rep movsb
    expect_insn({0x2E, 0x36, 0x3E, 0x26, 0x65, 0x67, 0xF2, 0x90}, k32, 0x90, 7, false, 0);
}

TEST(Classify, VexAndEvexAreReportedByTheirEscapeByte) {
    expect_insn({0xC5, 0xF8, 0x77}, kLong, 0xC5, 0, false, 0);  // vzeroupper
    expect_insn({0xC4, 0xE2, 0x7D, 0x18, 0x07}, kLong, 0xC4, 0, false, 0);
    expect_insn({0x62, 0xF1, 0x7C, 0x48, 0x28, 0xC1}, kLong, 0x62, 0, false, 0);
    // 32-bit mode: VEX only when the next byte has mod == 3.
    expect_insn({0xC5, 0xF8, 0x77}, k32, 0xC5, 0, false, 0);
    expect_insn({0xC4, 0x06}, k32, 0xC4, 0, true, 0x06);  // les eax, [esi]
    expect_insn({0xC5, 0x06}, k32, 0xC5, 0, true, 0x06);  // lds eax, [esi]
    expect_insn({0x62, 0x06}, k32, 0x62, 0, true, 0x06);  // bound eax, [esi]
    EXPECT_FALSE(run({0xC4}, k32).ok);
    expect_insn({0xC5}, kLong, 0xC5, 0, false, 0);
}

TEST(Classify, XopVersusPopRm) {
    expect_insn({0x8F, 0x00}, k32, 0x8F, 0, true, 0x00);        // pop dword [eax]
    expect_insn({0x8F, 0xE9, 0x78, 0x81, 0xC8}, kLong, 0x8F, 0, false, 0);  // XOP vfrczps
}

TEST(Classify, TruncatedBuffers) {
    EXPECT_FALSE(run({}, kLong).ok);
    EXPECT_FALSE(run({0x66}, kLong).ok);
    EXPECT_FALSE(run({0xF0, 0x48}, kLong).ok);
    EXPECT_FALSE(run({0x0F}, kLong).ok);
    EXPECT_FALSE(run({0x0F, 0x38}, kLong).ok);
    EXPECT_FALSE(run({0x0F, 0x22}, kLong).ok);  // needs its ModRM
    EXPECT_FALSE(run({0x48, 0x89}, kLong).ok);
    EXPECT_FALSE(run({0x8F}, kLong).ok);
}

TEST(Classify, TruncatedBufferLeavesOutputUntouched) {
    const uint8_t bytes[] = {0x0F, 0x22};
    InsnInfo info{0x1234, 5, 6, true};
    EXPECT_FALSE(classify(bytes, sizeof bytes, kLong, info));
    EXPECT_EQ(info.opcode, 0x1234);
    EXPECT_EQ(info.prefix_len, 5);
}

TEST(Classify, PrefixesFillingFifteenBytesAreNotAnInstruction) {
    std::vector<uint8_t> bytes(15, 0x66);
    bytes.push_back(0x90);
    EXPECT_FALSE(run(bytes, kLong).ok);
    std::vector<uint8_t> fourteen(14, 0x66);
    fourteen.push_back(0x90);
    expect_insn(fourteen, kLong, 0x90, 14, false, 0);
}

// ---- mov_to_cr3_source ----

TEST(MovToCr3, SourceRegister) {
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xDF}, kLong), 7);        // mov cr3, rdi
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xD8}, kLong), 0);        // mov cr3, rax
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xDC}, kLong), 4);        // mov cr3, rsp
    EXPECT_EQ(cr3_source({0x41, 0x0F, 0x22, 0xD8}, kLong), 8);  // mov cr3, r8
    EXPECT_EQ(cr3_source({0x41, 0x0F, 0x22, 0xDF}, kLong), 15);  // mov cr3, r15
    EXPECT_EQ(cr3_source({0x48, 0x0F, 0x22, 0xDA}, kLong), 2);  // REX.W changes nothing
}

TEST(MovToCr3, ThirtyTwoBitMode) {
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xDF}, k32), 7);  // mov cr3, edi
    // 41 is inc ecx here; the instruction at the buffer is not a CR write.
    EXPECT_EQ(cr3_source({0x41, 0x0F, 0x22, 0xD8}, k32), std::nullopt);
}

TEST(MovToCr3, ModIsIgnoredAsTheCpuDoes) {
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0x18}, kLong), 0);
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0x5E}, kLong), 6);
}

TEST(MovToCr3, OtherInstructionsAreNot) {
    EXPECT_EQ(cr3_source({0x0F, 0x20, 0xD8}, kLong), std::nullopt);  // mov rax, cr3
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xC0}, kLong), std::nullopt);  // mov cr0, rax
    EXPECT_EQ(cr3_source({0x0F, 0x22, 0xE0}, kLong), std::nullopt);  // mov cr4, rax
    EXPECT_EQ(cr3_source({0x44, 0x0F, 0x22, 0xD8}, kLong), std::nullopt);  // REX.R: cr11
    EXPECT_EQ(cr3_source({0xF0, 0x0F, 0x22, 0xD8}, k32), std::nullopt);  // LOCK: AMD cr8 form
    EXPECT_EQ(cr3_source({0x0F, 0x23, 0xD8}, kLong), std::nullopt);  // mov dr3, rax
    EXPECT_EQ(cr3_source({0x48, 0x89, 0xE5}, kLong), std::nullopt);
    EXPECT_EQ(cr3_source({0x0F, 0x22}, kLong), std::nullopt);  // truncated
    EXPECT_EQ(cr3_source({}, kLong), std::nullopt);
}

}  // namespace

TEST(SyscallPath, TheThreeEntriesAreTold) {
    const uint8_t syscall[] = {0x0F, 0x05};
    const uint8_t sysenter[] = {0x0F, 0x34};
    const uint8_t int80[] = {0xCD, 0x80};
    const uint8_t int3_imm[] = {0xCD, 0x03};
    const uint8_t prefixed[] = {0x66, 0x0F, 0x05};
    EXPECT_EQ(syscall_path(syscall, 2, true), SyscallPath::Syscall);
    EXPECT_EQ(syscall_path(sysenter, 2, false), SyscallPath::Sysenter);
    EXPECT_EQ(syscall_path(int80, 2, true), SyscallPath::Int80);
    EXPECT_EQ(syscall_path(int80, 2, false), SyscallPath::Int80);
    EXPECT_EQ(syscall_path(int3_imm, 2, true), SyscallPath::None);
    EXPECT_EQ(syscall_path(int80, 1, true), SyscallPath::None);  // the immediate is missing
    EXPECT_EQ(syscall_path(prefixed, 3, true), SyscallPath::Syscall);
}
