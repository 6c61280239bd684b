// The parameters an i386 trigger receives: callback_params_t with 4-byte
// target words (trigger_call_test.cpp covers every type for x86_64).
#include "triggers/trigger_call.h"

#include <gtest/gtest.h>

#include "trigger_call_events.h"

#include <cstdint>
#include <cstring>

namespace t32 {
#define TARGET_I386
#include "callbacks.h"
#undef TARGET_I386
callback_params_t g_seen;
int capture(callback_handle_t, callback_params_t params) {
    g_seen = params;
    return 3;
}
}  // namespace t32

namespace {

using pyrebox::CallbackType;
using pyrebox::Event;
using pyrebox::TbInfo;
using pyrebox::triggers::call_trigger_32;
using pyrebox::triggers::TriggerCpu;

Event event(CallbackType type) { return pyrebox::testing::trigger_call_event(type); }

int call32(const Event& e, TriggerCpu* cpu, const TbInfo* tb) {
    std::memset(&t32::g_seen, 0xAA, sizeof t32::g_seen);
    return call_trigger_32(reinterpret_cast<void*>(&t32::capture), 42, e, cpu, tb);
}

TEST(TriggerCall, TargetWordsAreFourBytesForI386) {
    TriggerCpu cpu{3, 0x401000};
    TbInfo tb;
    const auto& p = t32::g_seen;
    Event e = event(CallbackType::MemWrite);
    e.vaddr = 0xbffff010;
    e.data = 0xdeadbeefcafe;
    EXPECT_EQ(call32(e, &cpu, nullptr), 3);
    static_assert(sizeof(p.mem_write_params.vaddr) == 4);
    EXPECT_EQ(p.mem_write_params.cpu_index, 3);
    EXPECT_EQ(p.mem_write_params.vaddr, 0xbffff010u);
    EXPECT_EQ(p.mem_write_params.paddr, 0x1234000u);
    EXPECT_EQ(p.mem_write_params.haddr, 0x1234000u);
    EXPECT_EQ(p.mem_write_params.size, 8u);
    EXPECT_EQ(p.mem_write_params.data, 0xbeefcafeu);  // the target word's low bytes
    EXPECT_EQ(p.mem_write_params.cpu, static_cast<void*>(&cpu));
    call32(event(CallbackType::BlockEnd), &cpu, &tb);
    EXPECT_EQ(p.block_end_params.cpu_index, 3);
    EXPECT_EQ(p.block_end_params.cpu, static_cast<void*>(&cpu));
    EXPECT_EQ(p.block_end_params.tb, static_cast<const void*>(&tb));
    EXPECT_EQ(p.block_end_params.cur_pc, 0x401000u);
    EXPECT_EQ(p.block_end_params.next_pc, 0x401005u);
}

}  // namespace
