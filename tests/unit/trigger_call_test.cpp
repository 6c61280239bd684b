// The parameters a trigger receives: every field of callback_params_t that
// an event fills, as a trigger compiled against the SDK for x86_64 reads
// them (i386: trigger_call_32_test.cpp; the SDK header is one layout per
// translation unit).
#include "triggers/trigger_call.h"

#include <gtest/gtest.h>

#include "trigger_call_events.h"

#include <cstdint>
#include <cstring>

namespace t64 {
#define TARGET_X86_64
#include "callbacks.h"
#undef TARGET_X86_64
callback_params_t g_seen;
unsigned g_handle = 0;
int capture(callback_handle_t handle, callback_params_t params) {
    g_handle = handle;
    g_seen = params;
    return 7;
}
}  // namespace t64

namespace {

using pyrebox::CallbackType;
using pyrebox::Event;
using pyrebox::TbInfo;
using pyrebox::triggers::call_trigger_64;
using pyrebox::triggers::TriggerCpu;

Event event(CallbackType type) { return pyrebox::testing::trigger_call_event(type); }

int call64(const Event& e, TriggerCpu* cpu, const TbInfo* tb) {
    std::memset(&t64::g_seen, 0xAA, sizeof t64::g_seen);
    return call_trigger_64(reinterpret_cast<void*>(&t64::capture), 42, e, cpu, tb);
}

TEST(TriggerCall, BlockAndInstructionParameters64) {
    TriggerCpu cpu{3, 0x401000};
    TbInfo tb;
    const auto& p = t64::g_seen;
    EXPECT_EQ(call64(event(CallbackType::BlockBegin), &cpu, &tb), 7);
    EXPECT_EQ(t64::g_handle, 42u);
    EXPECT_EQ(p.block_begin_params.cpu_index, 3);
    EXPECT_EQ(p.block_begin_params.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.block_begin_params.tb, static_cast<const void*>(&tb));
    call64(event(CallbackType::BlockEnd), &cpu, &tb);
    EXPECT_EQ(p.block_end_params.cpu_index, 3);
    EXPECT_EQ(p.block_end_params.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.block_end_params.tb, static_cast<const void*>(&tb));
    EXPECT_EQ(p.block_end_params.cur_pc, 0x401000u);
    EXPECT_EQ(p.block_end_params.next_pc, 0x401005u);
    call64(event(CallbackType::InsnEnd), &cpu, &tb);
    EXPECT_EQ(p.insn_end_params.cpu_index, 3);
    EXPECT_EQ(p.insn_end_params.cpu, static_cast<void*>(&cpu));
    call64(event(CallbackType::OpcodeRange), &cpu, &tb);
    EXPECT_EQ(p.opcode_range_params.cpu_index, 3);
    EXPECT_EQ(p.opcode_range_params.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.opcode_range_params.cur_pc, 0x401000u);
    EXPECT_EQ(p.opcode_range_params.next_pc, 0x401005u);
    EXPECT_EQ(p.opcode_range_params.opcode, 0x1A2);
    call64(event(CallbackType::TlbExec), &cpu, &tb);
    EXPECT_EQ(p.tlb_exec_params.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.tlb_exec_params.vaddr, 0x7ffd12345678u);
}

TEST(TriggerCall, MemoryAndOtherParameters64) {
    const auto& p = t64::g_seen;
    TriggerCpu cpu{3, 0x401000};
    Event write = event(CallbackType::MemWrite);
    write.data = 0x1122334455667788;
    call64(write, &cpu, nullptr);
    EXPECT_EQ(p.mem_write_params.cpu_index, 3);
    EXPECT_EQ(p.mem_write_params.vaddr, 0x7ffd12345678u);
    EXPECT_EQ(p.mem_write_params.paddr, 0x1234000u);
    EXPECT_EQ(p.mem_write_params.haddr, 0x1234000u);  // PyREBox's name, the same value
    EXPECT_EQ(p.mem_write_params.size, 8u);
    EXPECT_EQ(p.mem_write_params.data, 0x1122334455667788u);
    EXPECT_EQ(p.mem_write_params.cpu, static_cast<void*>(&cpu));
    Event io = event(CallbackType::MemRead);
    io.paddr = ~uint64_t{0};
    call64(io, &cpu, nullptr);
    EXPECT_EQ(p.mem_read_params.cpu_index, 3);
    EXPECT_EQ(p.mem_read_params.vaddr, 0x7ffd12345678u);
    EXPECT_EQ(p.mem_read_params.haddr, ~uintptr_t{0});
    EXPECT_EQ(p.mem_read_params.size, 8u);
    EXPECT_EQ(p.mem_read_params.cpu, static_cast<void*>(&cpu));
    call64(event(CallbackType::MemRead), &cpu, nullptr);
    EXPECT_EQ(p.mem_read_params.paddr, 0x1234000u);
    call64(event(CallbackType::ContextChange), nullptr, nullptr);
    EXPECT_EQ(p.vmi_context_change_params.old_pgd, 0x1000u);
    EXPECT_EQ(p.vmi_context_change_params.new_pgd, 0x2000u);
    call64(event(CallbackType::Keystroke), nullptr, nullptr);
    EXPECT_EQ(p.keystroke_params.keycode, 0x1cu);
    Event nic = event(CallbackType::NicRec);
    const uint8_t frame[4] = {1, 2, 3, 4};
    nic.buffer = frame;
    nic.size = 4;
    call64(nic, nullptr, nullptr);
    EXPECT_EQ(p.nic_rec_params.buf, frame);
    EXPECT_EQ(p.nic_rec_params.size, 4u);
    EXPECT_EQ(p.nic_rec_params.cur_pos, 0u);
    EXPECT_EQ(p.nic_rec_params.start, 0u);
    EXPECT_EQ(p.nic_rec_params.stop, 0u);
    nic.type = CallbackType::NicSend;
    call64(nic, nullptr, nullptr);
    EXPECT_EQ(p.nic_send_params.buf, frame);
    EXPECT_EQ(p.nic_send_params.size, 4u);
    EXPECT_EQ(p.nic_send_params.address, 0u);
}

TEST(TriggerCall, FieldsNotFilledAreZero) {
    // Bytes of the union beyond the member of the event's type read as 0, up
    // to the five words every kind but the system calls' is passed in (the
    // system-call members alone are larger; only they are passed whole).
    call64(event(CallbackType::InsnBegin), nullptr, nullptr);
    const auto* bytes = reinterpret_cast<const unsigned char*>(&t64::g_seen);
    for (size_t i = offsetof(t64::insn_begin_params_t, cpu) + sizeof(void*); i < 5 * 8; ++i) {
        EXPECT_EQ(bytes[i], 0) << "byte " << i;
    }
}

TEST(TriggerCall, SystemCallParametersArePassedWhole) {
    TriggerCpu cpu{1, 0x401000};
    Event e = event(CallbackType::SyscallRet);
    e.pid = 100;
    e.tid = 101;
    e.pgd = 0x9000;
    e.number = 257;
    for (int i = 0; i < 6; ++i) {
        e.args[i] = 0x1000 + static_cast<uint64_t>(i);
    }
    e.pc = 0x401000;
    e.syscall_path = 1;
    e.retval = static_cast<uint64_t>(-2);
    e.child = true;
    call64(e, &cpu, nullptr);
    const auto& p = t64::g_seen.syscall_ret_params;
    EXPECT_EQ(p.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.pid, 100u);
    EXPECT_EQ(p.tid, 101u);
    EXPECT_EQ(p.pgd, 0x9000u);
    EXPECT_EQ(p.number, 257u);
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(p.args[i], 0x1000u + static_cast<uint64_t>(i)) << i;
    }
    EXPECT_EQ(p.pc, 0x401000u);
    EXPECT_EQ(p.path, 1u);
    EXPECT_EQ(p.retval, -2);
    EXPECT_EQ(p.child, 1u);
    e.type = CallbackType::Syscall;
    call64(e, &cpu, nullptr);
    EXPECT_EQ(t64::g_seen.syscall_params.args[5], 0x1005u);
    EXPECT_EQ(t64::g_seen.syscall_params.tid, 101u);
}

}  // namespace
