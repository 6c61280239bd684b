// What an x86 instruction is, from its raw bytes: just enough decoding to
// name the opcode and find its ModRM byte.
//
// Used at translation time on every instruction QEMU hands us, so it never
// allocates and reads at most the prefixes, the opcode and the ModRM byte.
// It does not check that the instruction is valid or complete: immediates,
// displacements and SIB bytes are not looked at.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

namespace pyrebox {

struct InsnInfo {
    // PyREBox/QEMU numbering: one-byte opcodes 0x00-0xFF, two-byte 0F xx as
    // 0x100|xx, three-byte 0F 38 xx as 0x200|xx, 0F 3A xx as 0x300|xx.
    // VEX, EVEX and XOP instructions are reported by their escape byte
    // (0xC4, 0xC5, 0x62, 0x8F) with has_modrm false: their real opcode and
    // ModRM follow a 1-3 byte payload this classifier does not decode.
    uint16_t opcode;
    // Bytes before the opcode: legacy prefixes and, in long mode, REX.
    uint8_t prefix_len;
    uint8_t modrm;  // 0 when has_modrm is false
    bool has_modrm;
};

// Classifies the instruction at `bytes`. Skips the legacy prefixes (F0 F2 F3
// 2E 36 3E 26 64 65 66 67) and, in long mode, REX (40-4F; a REX that a
// legacy prefix follows is ignored, as the CPU does); outside long mode
// 40-4F are INC/DEC. In 32-bit mode C4/C5/62 are VEX/EVEX only when the next
// byte has mod == 3 (otherwise LES/LDS/BOUND); 8F is XOP when the next byte
// has reg != 0 (otherwise POP r/m).
//
// Returns false when `len` does not reach the opcode (or the ModRM byte when
// the opcode has one, or the byte that tells VEX from LES/LDS/BOUND), or when
// prefixes fill the 15-byte maximum instruction length.
bool classify(const uint8_t* bytes, size_t len, bool long_mode, InsnInfo& out);

// For `mov cr3, reg` (0F 22 with ModRM.reg == 3) the source general register
// in x86 encoding order: RAX=0 RCX=1 RDX=2 RBX=3 RSP=4 RBP=5 RSI=6 RDI=7,
// R8-R15 = 8-15 (REX.B extends ModRM.rm). Otherwise nullopt, including when
// REX.R or LOCK turns the destination into CR11 or (AMD) CR8+3.
//
// ModRM.mod is ignored: for MOV to/from control registers the CPU always
// takes a register operand whatever mod says (Intel SDM, MOV—Move to/from
// Control Registers), and QEMU decodes it the same way.
std::optional<int> mov_to_cr3_source(const uint8_t* bytes, size_t len, bool long_mode);

// The ways user code enters the kernel for a system call.
enum class SyscallPath : uint8_t {
    None = 0,
    Syscall = 1,   // 0F 05: x86-64 system calls (RAX, then RDI RSI RDX R10 R8 R9)
    Int80 = 2,     // CD 80: i386 system calls (EAX, then EBX ECX EDX ESI EDI EBP), also
                   // from 64-bit programs (the kernel's 32-bit compat table)
    Sysenter = 3,  // 0F 34: i386 fast system calls (through the vDSO): EAX, then EBX ECX
                   // EDX ESI EDI and the word at EBP (the vDSO saved EBP there); the
                   // user stack pointer is EBP
    Syscall32 = 4, // 0F 05 in a 32-bit code segment: the kernel's compat entry, i386 fast
                   // calls on AMD CPUs: EAX, then EBX EBP (the vDSO's copy of ECX, which
                   // the instruction overwrites) EDX ESI EDI and the word at ESP.
                   // Decoding cannot tell it from Syscall; the entry's code segment does.
};
// Both fast paths return to the vDSO's landing pad (after its `int 0x80`),
// not after the instruction.

// Which system-call instruction the bytes are, after any prefixes
// (classify's rules); SyscallPath::None for any other instruction.
SyscallPath syscall_path(const uint8_t* bytes, size_t len, bool long_mode);

}  // namespace pyrebox
