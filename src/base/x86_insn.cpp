#include "base/x86_insn.h"

namespace pyrebox {

namespace {

constexpr size_t kMaxInsnLen = 15;

// Whether a one-byte opcode is followed by a ModRM byte (32- and 64-bit
// modes; opcodes invalid in 64-bit mode keep their 32-bit entry). Prefixes
// and the 0F escape are 0; C4/C5/62 hold their LES/LDS/BOUND entry.
constexpr bool kOneByteModrm[256] = {
    //   0  1  2  3  4  5  6  7  8  9  A  B  C  D  E  F
    1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0,  // 00 add or
    1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0,  // 10 adc sbb
    1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0,  // 20 and sub
    1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0,  // 30 xor cmp
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 40 inc dec / REX
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 50 push pop
    0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0,  // 60 bound arpl/movsxd imul
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 70 jcc
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 80 grp1 test xchg mov lea pop
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 90 xchg cbw ... lahf
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // A0 mov moffs, string ops
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // B0 mov reg, imm
    1, 1, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,  // C0 grp2 ret les lds mov enter
    1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1,  // D0 grp2 aam xlat x87
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // E0 loop in out call jmp
    0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1,  // F0 grp3 clc..std grp4 grp5
};

// The same for two-byte opcodes 0F xx; 0F 38 and 0F 3A are escapes.
constexpr bool kTwoByteModrm[256] = {
    //   0  1  2  3  4  5  6  7  8  9  A  B  C  D  E  F
    1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1,  // 00 grp6 grp7 lar lsl prefetch 3dnow
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 10 sse mov, hint nop, endbr
    1, 1, 1, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1,  // 20 mov cr/dr/tr, sse
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 30 wrmsr rdtsc sysenter
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 40 cmovcc
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 50 sse
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 60 mmx/sse
    1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1,  // 70 pshuf grp12-14 emms vmread
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // 80 jcc rel32
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // 90 setcc
    0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1,  // A0 push/pop fs gs cpuid bt shld grp15
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // B0 cmpxchg lss movzx popcnt grp8
    1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0,  // C0 xadd cmpps grp9, bswap
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // D0 mmx/sse
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // E0 mmx/sse
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  // F0 mmx/sse ud0
};

bool is_legacy_prefix(uint8_t b) {
    switch (b) {
    case 0xF0: case 0xF2: case 0xF3:
    case 0x2E: case 0x36: case 0x3E: case 0x26: case 0x64: case 0x65:
    case 0x66: case 0x67:
        return true;
    default:
        return false;
    }
}

// What classify() finds, plus the prefix state mov_to_cr3_source needs.
struct Decoded {
    InsnInfo info;
    uint8_t rex;  // 0 when there is none in effect
    bool lock;
};

bool decode(const uint8_t* bytes, size_t len, bool long_mode, Decoded& out) {
    const size_t limit = len < kMaxInsnLen ? len : kMaxInsnLen;
    uint8_t rex = 0;
    bool lock = false;
    size_t i = 0;
    for (; i < limit; ++i) {
        const uint8_t b = bytes[i];
        if (is_legacy_prefix(b)) {
            lock = lock || b == 0xF0;
            rex = 0;  // REX counts only directly before the opcode
        } else if (long_mode && (b & 0xF0) == 0x40) {
            rex = b;
        } else {
            break;
        }
    }
    if (i >= limit) {
        return false;
    }
    out.info = InsnInfo{0, static_cast<uint8_t>(i), 0, false};
    out.rex = rex;
    out.lock = lock;

    const uint8_t first = bytes[i];
    const bool next = i + 1 < len;
    switch (first) {
    case 0xC4:
    case 0xC5:
    case 0x62:
        // VEX/EVEX always in long mode; elsewhere only when the byte after
        // has mod == 3, which LES/LDS/BOUND (memory operands) cannot have.
        if (!long_mode && !next) {
            return false;
        }
        if (long_mode || (bytes[i + 1] & 0xC0) == 0xC0) {
            out.info.opcode = first;
            return true;
        }
        break;
    case 0x8F:
        // XOP when ModRM.reg would be nonzero; POP r/m is 8F /0.
        if (!next) {
            return false;
        }
        if ((bytes[i + 1] & 0x38) != 0) {
            out.info.opcode = first;
            return true;
        }
        break;
    default:
        break;
    }

    size_t at = i + 1;
    bool has_modrm = false;
    if (first != 0x0F) {
        out.info.opcode = first;
        has_modrm = kOneByteModrm[first];
    } else {
        if (at >= len) {
            return false;
        }
        const uint8_t second = bytes[at++];
        if (second == 0x38 || second == 0x3A) {
            if (at >= len) {
                return false;
            }
            const uint16_t map = second == 0x38 ? 0x200 : 0x300;
            out.info.opcode = static_cast<uint16_t>(map | bytes[at++]);
            has_modrm = true;  // every 0F 38 / 0F 3A opcode has one
        } else {
            out.info.opcode = static_cast<uint16_t>(0x100 | second);
            has_modrm = kTwoByteModrm[second];
        }
    }
    if (has_modrm) {
        if (at >= len) {
            return false;
        }
        out.info.modrm = bytes[at];
        out.info.has_modrm = true;
    }
    return true;
}

}  // namespace

bool classify(const uint8_t* bytes, size_t len, bool long_mode, InsnInfo& out) {
    Decoded decoded;
    if (!decode(bytes, len, long_mode, decoded)) {
        return false;
    }
    out = decoded.info;
    return true;
}

std::optional<int> mov_to_cr3_source(const uint8_t* bytes, size_t len, bool long_mode) {
    Decoded d;
    if (!decode(bytes, len, long_mode, d) || d.info.opcode != 0x122 || d.lock) {
        return std::nullopt;
    }
    const int cr = ((d.info.modrm >> 3) & 7) | ((d.rex & 0x04) ? 8 : 0);
    if (cr != 3) {
        return std::nullopt;
    }
    return (d.info.modrm & 7) | ((d.rex & 0x01) ? 8 : 0);
}

SyscallPath syscall_path(const uint8_t* bytes, size_t len, bool long_mode) {
    InsnInfo info;
    if (!classify(bytes, len, long_mode, info)) {
        return SyscallPath::None;
    }
    switch (info.opcode) {
        case 0x105: return SyscallPath::Syscall;
        case 0x134: return SyscallPath::Sysenter;
        case 0xCD: {
            const size_t imm = static_cast<size_t>(info.prefix_len) + 1;
            return imm < len && bytes[imm] == 0x80 ? SyscallPath::Int80 : SyscallPath::None;
        }
        default: return SyscallPath::None;
    }
}

}  // namespace pyrebox
