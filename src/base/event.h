// One event delivered to callbacks. Plain values only: handlers copy what
// they keep. Which fields mean something depends on `type`:
//   BLOCK_BEGIN   cpu_index, pc (= tb.pc), tb
//   BLOCK_END     cpu_index, pc (cur_pc: the block's last instruction), next_pc, tb
//   INSN_BEGIN/END cpu_index, pc (the instruction; END: next_pc is where execution went)
//   MEM_READ/WRITE cpu_index, pc (the accessing instruction), vaddr, paddr, size, data (write)
//   OPCODE_RANGE  cpu_index, pc (cur_pc), next_pc, opcode
//   TLB_EXEC      cpu_index, vaddr
//   CONTEXTCHANGE cpu_index, old_pgd, new_pgd
//   CREATEPROC/REMOVEPROC   pid, pgd, name
//   LOADMODULE/REMOVEMODULE pid, pgd (0: kernel), vaddr (base), size, name, fullname
//   KEYSTROKE     cpu_index (the vCPU that read the byte), data (the keycode)
//   NIC_SEND/REC  buffer, size (one whole Ethernet frame); cpu_index 0
#pragma once

#include <cstdint>

#include "base/callback_types.h"

namespace pyrebox {

struct TbInfo {
    uint64_t pc = 0;
    uint64_t size = 0;     // bytes
    uint64_t icount = 0;   // instructions
    uint64_t last_pc = 0;  // address of the last instruction
};

struct Event {
    CallbackType type = CallbackType::BlockBegin;
    int cpu_index = 0;
    uint64_t pc = 0;
    uint64_t next_pc = 0;
    TbInfo tb;
    uint64_t vaddr = 0;
    uint64_t paddr = 0;  // ~0 when unknown (I/O)
    uint64_t size = 0;
    uint64_t data = 0;       // value written (low 64 bits)
    uint64_t data_high = 0;  // high 64 bits of a 128-bit store
    uint16_t opcode = 0;
    uint64_t old_pgd = 0;
    uint64_t new_pgd = 0;
    uint64_t pgd = 0;  // the address space the event happened in
    uint64_t pid = 0;
    // Valid while the event is delivered (nullptr when the type has none).
    const char* name = nullptr;
    const char* fullname = nullptr;
    // NIC_SEND / NIC_REC: the frame, valid only while the event is delivered.
    const uint8_t* buffer = nullptr;
};

}  // namespace pyrebox
