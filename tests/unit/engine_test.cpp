#include "engine/engine.h"

#include <gtest/gtest.h>

#include "callback_specs.h"

#include <array>
#include <cstring>
#include <memory>
#include <vector>

namespace {

using pyrebox::CallbackHandler;
using pyrebox::CallbackRegistry;
using pyrebox::CallbackSpec;
using pyrebox::CallbackType;
using pyrebox::Engine;
using pyrebox::Event;
using pyrebox::MonitoredSet;
using pyrebox::TbInfo;
using pyrebox::VcpuFlags;
using pyrebox::PagingMode;

constexpr int kVcpus = 2;
constexpr uint64_t kPgdA = 0x1234000;  // 8K-aligned: a KPTI pair with kPgdA | 0x1000
constexpr uint64_t kPgdB = 0x5678000;
constexpr uint64_t kPcidBits = 0x5;
constexpr uint64_t kNoFlushBit = 1ull << 63;
constexpr uint64_t kKptiUserBit = 0x1000;

class Recorder : public CallbackHandler {
public:
    void deliver(const Event& event) override { events.push_back(event); }
    std::vector<Event> events;
};

class FakeFlags : public VcpuFlags {
public:
    void set_monitored(int vcpu, bool value) override {
        monitored.at(static_cast<size_t>(vcpu)) = value;
        ++monitored_calls;
    }
    void set_pending(int vcpu, bool value) override {
        pending.at(static_cast<size_t>(vcpu)) = value;
    }

    std::array<bool, kVcpus> monitored{};
    std::array<bool, kVcpus> pending{};
    int monitored_calls = 0;
};

using pyrebox::testing::at_address;
using pyrebox::testing::generic;
using pyrebox::testing::opcode_range;

constexpr TbInfo kTb1{0x401000, 0x10, 4, 0x40100c};
constexpr TbInfo kTb2{0x402000, 0x8, 2, 0x402005};

class EngineTest : public ::testing::Test {
protected:
    std::shared_ptr<Recorder> record(const CallbackSpec& spec) {
        auto recorder = std::make_shared<Recorder>();
        auto id = registry.add(spec, recorder);
        EXPECT_TRUE(id.ok()) << id.error();
        return recorder;
    }

    void load(int vcpu, uint64_t cr3) { engine.on_cr3_load(vcpu, cr3, PagingMode::Long4); }

    // vCPU 0 in kPgdA (monitored), vCPU 1 in kPgdB (not monitored).
    void monitor_a_on_vcpu0() {
        load(0, kPgdA);
        load(1, kPgdB);
        engine.start_monitoring(kPgdA);
    }

    CallbackRegistry registry;
    MonitoredSet monitored;
    FakeFlags flags;
    Engine engine{registry, monitored, flags, kVcpus};
};

// --- context changes ---

TEST_F(EngineTest, FirstCr3LoadFiresContextChangeFromZero) {
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA);
    ASSERT_EQ(rec->events.size(), 1u);
    const Event& e = rec->events[0];
    EXPECT_EQ(e.type, CallbackType::ContextChange);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.old_pgd, 0u);
    EXPECT_EQ(e.new_pgd, kPgdA);
    EXPECT_EQ(e.pgd, kPgdA);
    EXPECT_EQ(engine.current_pgd(0), kPgdA);
}

TEST_F(EngineTest, Cr3LoadOfADifferentPgdFiresOneContextChangeWithOldAndNew) {
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA);
    load(0, kPgdB | kPcidBits);
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[1].old_pgd, kPgdA);
    EXPECT_EQ(rec->events[1].new_pgd, kPgdB);
    EXPECT_EQ(engine.current_pgd(0), kPgdB);
}

TEST_F(EngineTest, Cr3LoadOfTheSameNormalisedPgdFiresNothing) {
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA);
    load(0, kPgdA);
    load(0, kPgdA | kPcidBits);
    load(0, kPgdA | kNoFlushBit);
    load(0, kPgdA | kNoFlushBit | 0xFFF);
    EXPECT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(engine.current_pgd(0), kPgdA);
}

TEST_F(EngineTest, ContextChangeReachesGatedCallbacksOfUnmonitoredProcesses) {
    auto gated = record(generic(CallbackType::ContextChange));
    auto all = record(generic(CallbackType::ContextChange, true));
    load(0, kPgdA);
    EXPECT_EQ(gated->events.size(), 1u);
    EXPECT_EQ(all->events.size(), 1u);
}

TEST_F(EngineTest, WithoutKptiTheUserPgdIsAnotherProcess) {
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA);
    load(0, kPgdA | kKptiUserBit);
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[1].old_pgd, kPgdA);
    EXPECT_EQ(rec->events[1].new_pgd, kPgdA | kKptiUserBit);
}

TEST_F(EngineTest, WithKptiKernelAndUserPgdAreOneProcess) {
    engine.set_kpti(true);
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA | kKptiUserBit);
    load(0, kPgdA);
    load(0, kPgdA | kKptiUserBit | kPcidBits);
    ASSERT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(rec->events[0].old_pgd, 0u);
    EXPECT_EQ(rec->events[0].new_pgd, kPgdA);
    EXPECT_EQ(engine.current_pgd(0), kPgdA);
}

TEST_F(EngineTest, WithKptiAnotherPairIsAnotherProcess) {
    engine.set_kpti(true);
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA | kKptiUserBit);
    load(0, kPgdB | kKptiUserBit);
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[1].old_pgd, kPgdA);
    EXPECT_EQ(rec->events[1].new_pgd, kPgdB);
}

TEST_F(EngineTest, NormalizeFollowsThePagingMode) {
    EXPECT_EQ(engine.normalize(kPgdA | kNoFlushBit | 0xFFF, PagingMode::Long4), kPgdA);
    EXPECT_EQ(engine.normalize(kPgdA | kKptiUserBit, PagingMode::Long4), kPgdA | kKptiUserBit);
    EXPECT_EQ(engine.normalize(0x1234018, PagingMode::Pae), 0x1234000u);
    EXPECT_EQ(engine.normalize(0x12340FF, PagingMode::Legacy32), 0x1234000u);
    EXPECT_EQ(engine.normalize(kPgdA, PagingMode::None), 0u);
    engine.set_kpti(true);
    EXPECT_EQ(engine.normalize(kPgdA | kKptiUserBit, PagingMode::Long4), kPgdA);
}

TEST_F(EngineTest, Cr3LoadInPaeModeUsesThePaeMask) {
    auto rec = record(generic(CallbackType::ContextChange));
    engine.on_cr3_load(0, 0x1234018, PagingMode::Pae);
    ASSERT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(rec->events[0].new_pgd, 0x1234000u);
}

TEST_F(EngineTest, ContextChangesArePerVcpu) {
    auto rec = record(generic(CallbackType::ContextChange));
    load(0, kPgdA);
    load(1, kPgdB);
    load(1, kPgdA);
    ASSERT_EQ(rec->events.size(), 3u);
    EXPECT_EQ(rec->events[0].cpu_index, 0);
    EXPECT_EQ(rec->events[1].cpu_index, 1);
    EXPECT_EQ(rec->events[1].old_pgd, 0u);
    EXPECT_EQ(rec->events[1].new_pgd, kPgdB);
    EXPECT_EQ(rec->events[2].cpu_index, 1);
    EXPECT_EQ(rec->events[2].old_pgd, kPgdB);
    EXPECT_EQ(rec->events[2].new_pgd, kPgdA);
    EXPECT_EQ(engine.current_pgd(0), kPgdA);
    EXPECT_EQ(engine.current_pgd(1), kPgdA);
}

// --- monitored flags ---

TEST_F(EngineTest, MaxVcpusIsAtLeastOne) {
    EXPECT_EQ(engine.max_vcpus(), kVcpus);
    Engine none(registry, monitored, flags, 0);
    EXPECT_EQ(none.max_vcpus(), 1);
}

TEST_F(EngineTest, StartAndStopMonitoringReportWhetherTheSetChanged) {
    EXPECT_TRUE(engine.start_monitoring(kPgdA));
    EXPECT_FALSE(engine.start_monitoring(kPgdA));
    EXPECT_TRUE(engine.is_monitored(kPgdA));
    EXPECT_FALSE(engine.is_monitored(kPgdB));
    EXPECT_TRUE(engine.stop_monitoring(kPgdA));
    EXPECT_FALSE(engine.stop_monitoring(kPgdA));
    EXPECT_FALSE(engine.is_monitored(kPgdA));
}

TEST_F(EngineTest, StartMonitoringFlagsOnlyTheVcpusInThatProcess) {
    load(0, kPgdA);
    load(1, kPgdB);
    engine.start_monitoring(kPgdA);
    EXPECT_TRUE(flags.monitored[0]);
    EXPECT_FALSE(flags.monitored[1]);
    EXPECT_TRUE(engine.vcpu_monitored(0));
    EXPECT_FALSE(engine.vcpu_monitored(1));

    engine.start_monitoring(kPgdB);
    EXPECT_TRUE(flags.monitored[0]);
    EXPECT_TRUE(flags.monitored[1]);
}

TEST_F(EngineTest, StopMonitoringClearsTheFlagOfVcpusInThatProcess) {
    load(0, kPgdA);
    load(1, kPgdB);
    engine.start_monitoring(kPgdA);
    engine.start_monitoring(kPgdB);
    engine.stop_monitoring(kPgdA);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_TRUE(flags.monitored[1]);
    EXPECT_FALSE(engine.vcpu_monitored(0));
    EXPECT_TRUE(engine.vcpu_monitored(1));
}

TEST_F(EngineTest, MonitoringAPgdNoVcpuRunsSetsNoFlag) {
    load(0, kPgdA);
    load(1, kPgdB);
    engine.start_monitoring(0x9999000);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_FALSE(flags.monitored[1]);
}

TEST_F(EngineTest, ContextSwitchesMoveTheMonitoredFlag) {
    load(0, kPgdA);
    load(1, kPgdB);
    engine.start_monitoring(kPgdA);

    load(1, kPgdA);
    EXPECT_TRUE(flags.monitored[0]);
    EXPECT_TRUE(flags.monitored[1]);

    load(0, kPgdB);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_TRUE(flags.monitored[1]);
    EXPECT_FALSE(engine.vcpu_monitored(0));
    EXPECT_TRUE(engine.vcpu_monitored(1));

    load(1, kPgdB | kKptiUserBit);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_FALSE(flags.monitored[1]);
}

TEST_F(EngineTest, MonitoringBeforeTheProcessRunsFlagsTheVcpuOnSwitch) {
    engine.start_monitoring(kPgdB);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_FALSE(flags.monitored[1]);
    load(1, kPgdB);
    EXPECT_FALSE(flags.monitored[0]);
    EXPECT_TRUE(flags.monitored[1]);
}

TEST_F(EngineTest, KptiUserHalfOfAMonitoredProcessIsMonitored) {
    engine.set_kpti(true);
    load(0, kPgdA);
    engine.start_monitoring(kPgdA);
    load(0, kPgdA | kKptiUserBit);
    EXPECT_TRUE(flags.monitored[0]);
    EXPECT_TRUE(engine.vcpu_monitored(0));
}

TEST_F(EngineTest, SwitchBetweenUnmonitoredProcessesLeavesTheFlagAlone) {
    load(0, kPgdA);
    load(0, kPgdB);
    load(1, kPgdA);
    EXPECT_EQ(flags.monitored_calls, 0);
}

// --- BLOCK_BEGIN / BLOCK_END ---

TEST_F(EngineTest, OnBlockFiresBlockBeginWithTbAndPgd) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::BlockBegin));
    engine.on_block(0, kTb1);
    ASSERT_EQ(rec->events.size(), 1u);
    const Event& e = rec->events[0];
    EXPECT_EQ(e.type, CallbackType::BlockBegin);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, kTb1.pc);
    EXPECT_EQ(e.tb.pc, 0x401000u);
    EXPECT_EQ(e.tb.size, 0x10u);
    EXPECT_EQ(e.tb.icount, 4u);
    EXPECT_EQ(e.tb.last_pc, 0x40100cu);
    EXPECT_EQ(e.pgd, kPgdA);
}

TEST_F(EngineTest, OnBlockInAnUnmonitoredProcessReachesOnlyAllProcessesCallbacks) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::BlockBegin));
    auto all = record(generic(CallbackType::BlockBegin, true));
    engine.on_block(1, kTb2);
    EXPECT_TRUE(gated->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
    EXPECT_EQ(all->events[0].pc, kTb2.pc);
    EXPECT_EQ(all->events[0].pgd, kPgdB);
}

TEST_F(EngineTest, OnBlockWithoutEndCallbacksArmsNothing) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::BlockBegin));
    engine.on_block(0, kTb1);
    EXPECT_FALSE(flags.pending[0]);
    EXPECT_FALSE(flags.pending[1]);
}

TEST_F(EngineTest, OnBlockArmsBlockEndDeliveredWhenTheNextBlockStarts) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::BlockEnd));
    engine.on_block(0, kTb1);
    EXPECT_TRUE(flags.pending[0]);
    EXPECT_FALSE(flags.pending[1]);
    EXPECT_TRUE(rec->events.empty());

    engine.on_pending_at_block(0, kTb2);
    EXPECT_FALSE(flags.pending[0]);
    ASSERT_EQ(rec->events.size(), 1u);
    const Event& e = rec->events[0];
    EXPECT_EQ(e.type, CallbackType::BlockEnd);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, kTb1.last_pc);
    EXPECT_EQ(e.next_pc, kTb2.pc);
    EXPECT_EQ(e.tb.pc, kTb1.pc);
    EXPECT_EQ(e.tb.size, kTb1.size);
    EXPECT_EQ(e.tb.icount, kTb1.icount);
    EXPECT_EQ(e.tb.last_pc, kTb1.last_pc);
    EXPECT_EQ(e.pgd, kPgdA);
}

TEST_F(EngineTest, BlockEndIsDeliveredOnce) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::BlockEnd));
    engine.on_block(0, kTb1);
    engine.on_pending_at_block(0, kTb2);
    engine.on_pending_at_block(0, kTb1);
    engine.on_pending_at_insn(0, 0x500000);
    EXPECT_EQ(rec->events.size(), 1u);
}

TEST_F(EngineTest, PendingOnOneVcpuIsNotDeliveredByAnother) {
    monitor_a_on_vcpu0();
    engine.start_monitoring(kPgdB);
    auto rec = record(generic(CallbackType::BlockEnd));
    engine.on_block(0, kTb1);
    engine.on_pending_at_block(1, kTb2);
    EXPECT_TRUE(rec->events.empty());
    EXPECT_TRUE(flags.pending[0]);
    EXPECT_FALSE(flags.pending[1]);

    engine.on_block(1, kTb2);
    engine.on_pending_at_block(1, kTb1);
    engine.on_pending_at_block(0, kTb2);
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[0].cpu_index, 1);
    EXPECT_EQ(rec->events[0].pc, kTb2.last_pc);
    EXPECT_EQ(rec->events[0].next_pc, kTb1.pc);
    EXPECT_EQ(rec->events[0].pgd, kPgdB);
    EXPECT_EQ(rec->events[1].cpu_index, 0);
    EXPECT_EQ(rec->events[1].pc, kTb1.last_pc);
    EXPECT_EQ(rec->events[1].next_pc, kTb2.pc);
    EXPECT_EQ(rec->events[1].pgd, kPgdA);
}

TEST_F(EngineTest, BlockEndOfAnUnmonitoredBlockReachesOnlyAllProcessesCallbacks) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::BlockEnd));
    auto all = record(generic(CallbackType::BlockEnd, true));
    engine.on_block(1, kTb1);
    EXPECT_TRUE(flags.pending[1]);
    engine.on_pending_at_block(1, kTb2);
    EXPECT_TRUE(gated->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
    EXPECT_EQ(all->events[0].next_pc, kTb2.pc);
}

TEST_F(EngineTest, BlockEndKeepsTheMonitoredStateOfWhenTheBlockStarted) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::BlockEnd));
    engine.on_block(0, kTb1);
    load(0, kPgdB);
    engine.on_pending_at_block(0, kTb2);
    EXPECT_EQ(gated->events.size(), 1u);
}

// --- INSN_BEGIN / INSN_END ---

TEST_F(EngineTest, OnInsnFiresInsnBeginWithPcAndPgd) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::InsnBegin));
    engine.on_insn(0, 0x401004);
    ASSERT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(rec->events[0].type, CallbackType::InsnBegin);
    EXPECT_EQ(rec->events[0].cpu_index, 0);
    EXPECT_EQ(rec->events[0].pc, 0x401004u);
    EXPECT_EQ(rec->events[0].pgd, kPgdA);
    EXPECT_FALSE(flags.pending[0]);
}

TEST_F(EngineTest, OnInsnInAnUnmonitoredProcessReachesOnlyAllProcessesCallbacks) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::InsnBegin));
    auto all = record(generic(CallbackType::InsnBegin, true));
    engine.on_insn(1, 0x401004);
    EXPECT_TRUE(gated->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
}

TEST_F(EngineTest, InsnEndIsDeliveredWhenTheNextInstructionStarts) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::InsnEnd));
    engine.on_insn(0, 0x401004);
    EXPECT_TRUE(flags.pending[0]);
    EXPECT_TRUE(rec->events.empty());

    engine.on_pending_at_insn(0, 0x401007);
    EXPECT_FALSE(flags.pending[0]);
    ASSERT_EQ(rec->events.size(), 1u);
    const Event& e = rec->events[0];
    EXPECT_EQ(e.type, CallbackType::InsnEnd);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, 0x401004u);
    EXPECT_EQ(e.next_pc, 0x401007u);
    EXPECT_EQ(e.pgd, kPgdA);
}

TEST_F(EngineTest, InsnEndOfALastInstructionIsDeliveredAtTheNextBlock) {
    monitor_a_on_vcpu0();
    auto rec = record(generic(CallbackType::InsnEnd));
    engine.on_insn(0, kTb1.last_pc);
    engine.on_pending_at_block(0, kTb2);
    ASSERT_EQ(rec->events.size(), 1u);
    EXPECT_EQ(rec->events[0].pc, kTb1.last_pc);
    EXPECT_EQ(rec->events[0].next_pc, kTb2.pc);
    EXPECT_FALSE(flags.pending[0]);
}

TEST_F(EngineTest, InsnEndOfAnUnmonitoredInstructionReachesOnlyAllProcessesCallbacks) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::InsnEnd));
    auto all = record(generic(CallbackType::InsnEnd, true));
    engine.on_insn(1, 0x401004);
    engine.on_pending_at_insn(1, 0x401006);
    EXPECT_TRUE(gated->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
    EXPECT_EQ(all->events[0].pc, 0x401004u);
    EXPECT_EQ(all->events[0].next_pc, 0x401006u);
}

TEST_F(EngineTest, PendingEndEventsArriveOpcodeThenInsnThenBlock) {
    monitor_a_on_vcpu0();
    auto rec = std::make_shared<Recorder>();
    ASSERT_TRUE(registry.add(generic(CallbackType::BlockEnd), rec).ok());
    ASSERT_TRUE(registry.add(generic(CallbackType::InsnEnd), rec).ok());
    ASSERT_TRUE(registry.add(opcode_range(0x105, 0x105), rec).ok());

    engine.on_block(0, kTb1);
    engine.on_insn(0, kTb1.last_pc);
    engine.on_opcode(0, kTb1.last_pc, 0x105);
    engine.on_pending_at_block(0, kTb2);

    ASSERT_EQ(rec->events.size(), 3u);
    EXPECT_EQ(rec->events[0].type, CallbackType::OpcodeRange);
    EXPECT_EQ(rec->events[1].type, CallbackType::InsnEnd);
    EXPECT_EQ(rec->events[2].type, CallbackType::BlockEnd);
    for (const Event& e : rec->events) {
        EXPECT_EQ(e.pc, kTb1.last_pc);
        EXPECT_EQ(e.next_pc, kTb2.pc);
    }
    EXPECT_FALSE(flags.pending[0]);
}

TEST_F(EngineTest, BlockEndIsNotDeliveredAtTheNextInstructionOfTheSameBlock) {
    monitor_a_on_vcpu0();
    auto block_end = record(generic(CallbackType::BlockEnd));
    auto insn_end = record(generic(CallbackType::InsnEnd));
    engine.on_block(0, kTb1);
    engine.on_insn(0, 0x401000);
    engine.on_pending_at_insn(0, 0x401004);

    ASSERT_EQ(insn_end->events.size(), 1u);
    EXPECT_EQ(insn_end->events[0].pc, 0x401000u);
    EXPECT_EQ(insn_end->events[0].next_pc, 0x401004u);
    EXPECT_TRUE(block_end->events.empty());
    EXPECT_TRUE(flags.pending[0]);

    engine.on_insn(0, kTb1.last_pc);
    engine.on_pending_at_block(0, kTb2);
    ASSERT_EQ(insn_end->events.size(), 2u);
    EXPECT_EQ(insn_end->events[1].pc, kTb1.last_pc);
    EXPECT_EQ(insn_end->events[1].next_pc, kTb2.pc);
    ASSERT_EQ(block_end->events.size(), 1u);
    EXPECT_EQ(block_end->events[0].pc, kTb1.last_pc);
    EXPECT_EQ(block_end->events[0].next_pc, kTb2.pc);
    EXPECT_EQ(block_end->events[0].tb.pc, kTb1.pc);
    EXPECT_FALSE(flags.pending[0]);
}

TEST_F(EngineTest, OpcodeRangeInsideABlockLeavesItsBlockEndPending) {
    monitor_a_on_vcpu0();
    auto block_end = record(generic(CallbackType::BlockEnd));
    auto opcode = record(opcode_range(0x105, 0x105));
    engine.on_block(0, kTb1);
    engine.on_opcode(0, 0x401000, 0x105);
    engine.on_pending_at_insn(0, 0x401002);

    ASSERT_EQ(opcode->events.size(), 1u);
    EXPECT_EQ(opcode->events[0].next_pc, 0x401002u);
    EXPECT_TRUE(block_end->events.empty());
    EXPECT_TRUE(flags.pending[0]);

    engine.on_pending_at_block(0, kTb2);
    ASSERT_EQ(block_end->events.size(), 1u);
    EXPECT_EQ(block_end->events[0].next_pc, kTb2.pc);
    EXPECT_FALSE(flags.pending[0]);
}

TEST_F(EngineTest, InstructionStartWithOnlyBlockEndPendingDeliversNothing) {
    monitor_a_on_vcpu0();
    auto block_end = record(generic(CallbackType::BlockEnd));
    engine.on_block(0, kTb1);
    engine.on_pending_at_insn(0, 0x401004);
    EXPECT_TRUE(block_end->events.empty());
    EXPECT_TRUE(flags.pending[0]);
}

// --- OPCODE_RANGE ---

TEST_F(EngineTest, OpcodeRangeIsDeliveredWhenTheNextInstructionStarts) {
    monitor_a_on_vcpu0();
    auto rec = record(opcode_range(0x105, 0x105));
    engine.on_opcode(0, 0x401000, 0x105);
    EXPECT_TRUE(flags.pending[0]);
    EXPECT_TRUE(rec->events.empty());

    engine.on_pending_at_insn(0, 0x401002);
    EXPECT_FALSE(flags.pending[0]);
    ASSERT_EQ(rec->events.size(), 1u);
    const Event& e = rec->events[0];
    EXPECT_EQ(e.type, CallbackType::OpcodeRange);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, 0x401000u);
    EXPECT_EQ(e.next_pc, 0x401002u);
    EXPECT_EQ(e.opcode, 0x105);
    EXPECT_EQ(e.pgd, kPgdA);
}

TEST_F(EngineTest, OpcodeRangeReachesOnlyCallbacksWhoseRangeHoldsTheOpcode) {
    monitor_a_on_vcpu0();
    auto syscall = record(opcode_range(0x105, 0x105));
    auto low = record(opcode_range(0x00, 0x05));
    auto wide = record(opcode_range(0x100, 0x1FF));
    engine.on_opcode(0, 0x401000, 0x105);
    engine.on_pending_at_insn(0, 0x401002);
    EXPECT_EQ(syscall->events.size(), 1u);
    EXPECT_TRUE(low->events.empty());
    ASSERT_EQ(wide->events.size(), 1u);
    EXPECT_EQ(wide->events[0].opcode, 0x105);
}

TEST_F(EngineTest, OpcodeRangeInAnUnmonitoredProcessReachesOnlyAllProcessesCallbacks) {
    monitor_a_on_vcpu0();
    auto gated = record(opcode_range(0x105, 0x105));
    auto all = record(opcode_range(0x105, 0x105, true));
    engine.on_opcode(1, 0x7000, 0x105);
    engine.on_pending_at_block(1, kTb2);
    EXPECT_TRUE(gated->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
    EXPECT_EQ(all->events[0].pc, 0x7000u);
    EXPECT_EQ(all->events[0].next_pc, kTb2.pc);
    EXPECT_EQ(all->events[0].pgd, kPgdB);
}

// --- address-specific callbacks ---

TEST_F(EngineTest, ExecAddressReachesAddressSpecificBlockAndInsnBegin) {
    load(0, kPgdA);
    auto block = record(at_address(CallbackType::BlockBegin, 0x401000));
    auto insn = record(at_address(CallbackType::InsnBegin, 0x401000));
    engine.on_exec_address(0, 0x401000, kTb1);

    ASSERT_EQ(block->events.size(), 1u);
    EXPECT_EQ(block->events[0].type, CallbackType::BlockBegin);
    EXPECT_EQ(block->events[0].cpu_index, 0);
    EXPECT_EQ(block->events[0].pc, 0x401000u);
    EXPECT_EQ(block->events[0].tb.pc, kTb1.pc);
    EXPECT_EQ(block->events[0].tb.last_pc, kTb1.last_pc);
    EXPECT_EQ(block->events[0].pgd, kPgdA);
    ASSERT_EQ(insn->events.size(), 1u);
    EXPECT_EQ(insn->events[0].type, CallbackType::InsnBegin);
    EXPECT_EQ(insn->events[0].pc, 0x401000u);
    EXPECT_EQ(insn->events[0].pgd, kPgdA);
}

TEST_F(EngineTest, ExecAddressIgnoresTheMonitoredState) {
    monitor_a_on_vcpu0();
    auto insn = record(at_address(CallbackType::InsnBegin, 0x401004));
    engine.on_exec_address(1, 0x401004, kTb1);
    ASSERT_EQ(insn->events.size(), 1u);
    EXPECT_EQ(insn->events[0].cpu_index, 1);
    EXPECT_EQ(insn->events[0].pgd, kPgdB);
}

TEST_F(EngineTest, ExecAddressHonoursThePgdFilter) {
    load(0, kPgdA);
    load(1, kPgdB);
    auto in_a = record(at_address(CallbackType::InsnBegin, 0x401004, kPgdA));
    auto in_b = record(at_address(CallbackType::BlockBegin, 0x401004, kPgdB));
    auto anywhere = record(at_address(CallbackType::InsnBegin, 0x401004));

    engine.on_exec_address(0, 0x401004, kTb1);
    ASSERT_EQ(in_a->events.size(), 1u);
    EXPECT_EQ(in_a->events[0].cpu_index, 0);
    EXPECT_TRUE(in_b->events.empty());
    EXPECT_EQ(anywhere->events.size(), 1u);

    engine.on_exec_address(1, 0x401004, kTb1);
    EXPECT_EQ(in_a->events.size(), 1u);
    ASSERT_EQ(in_b->events.size(), 1u);
    EXPECT_EQ(in_b->events[0].cpu_index, 1);
    EXPECT_EQ(in_b->events[0].pgd, kPgdB);
    EXPECT_EQ(anywhere->events.size(), 2u);
}

TEST_F(EngineTest, ExecAddressDoesNotReachCallbacksAtOtherAddresses) {
    load(0, kPgdA);
    auto other = record(at_address(CallbackType::InsnBegin, 0x401008));
    engine.on_exec_address(0, 0x401004, kTb1);
    EXPECT_TRUE(other->events.empty());
}

TEST_F(EngineTest, ExecAddressDoesNotReachGenericCallbacks) {
    monitor_a_on_vcpu0();
    auto block = record(generic(CallbackType::BlockBegin));
    auto block_all = record(generic(CallbackType::BlockBegin, true));
    auto insn = record(generic(CallbackType::InsnBegin));
    auto insn_all = record(generic(CallbackType::InsnBegin, true));
    auto addr = record(at_address(CallbackType::InsnBegin, 0x401000));
    engine.on_exec_address(0, 0x401000, kTb1);
    EXPECT_TRUE(block->events.empty());
    EXPECT_TRUE(block_all->events.empty());
    EXPECT_TRUE(insn->events.empty());
    EXPECT_TRUE(insn_all->events.empty());
    EXPECT_EQ(addr->events.size(), 1u);
}

TEST_F(EngineTest, GenericPathDoesNotReachAddressSpecificCallbacks) {
    monitor_a_on_vcpu0();
    auto generic_block = record(generic(CallbackType::BlockBegin));
    auto generic_insn = record(generic(CallbackType::InsnBegin));
    auto addr_block = record(at_address(CallbackType::BlockBegin, kTb1.pc));
    auto addr_insn = record(at_address(CallbackType::InsnBegin, kTb1.pc));
    engine.on_block(0, kTb1);
    engine.on_insn(0, kTb1.pc);
    EXPECT_EQ(generic_block->events.size(), 1u);
    EXPECT_EQ(generic_insn->events.size(), 1u);
    EXPECT_TRUE(addr_block->events.empty());
    EXPECT_TRUE(addr_insn->events.empty());
}

// --- memory ---

TEST_F(EngineTest, MemoryReadInAMonitoredProcessIsDelivered) {
    monitor_a_on_vcpu0();
    auto read = record(generic(CallbackType::MemRead));
    auto write = record(generic(CallbackType::MemWrite));
    engine.on_memory(0, 0x401004, false, 0x7ffd1000, 0x3456000, 4, 0, 0);
    EXPECT_TRUE(write->events.empty());
    ASSERT_EQ(read->events.size(), 1u);
    const Event& e = read->events[0];
    EXPECT_EQ(e.type, CallbackType::MemRead);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, 0x401004u);
    EXPECT_EQ(e.vaddr, 0x7ffd1000u);
    EXPECT_EQ(e.paddr, 0x3456000u);
    EXPECT_EQ(e.size, 4u);
    EXPECT_EQ(e.data, 0u);
    EXPECT_EQ(e.pgd, kPgdA);
}

TEST_F(EngineTest, MemoryWriteInAMonitoredProcessIsDeliveredWithItsData) {
    monitor_a_on_vcpu0();
    auto read = record(generic(CallbackType::MemRead));
    auto write = record(generic(CallbackType::MemWrite));
    engine.on_memory(0, 0x401008, true, 0x7ffd1008, ~uint64_t{0}, 8, 0xdeadbeefcafef00d, 0);
    EXPECT_TRUE(read->events.empty());
    ASSERT_EQ(write->events.size(), 1u);
    const Event& e = write->events[0];
    EXPECT_EQ(e.type, CallbackType::MemWrite);
    EXPECT_EQ(e.cpu_index, 0);
    EXPECT_EQ(e.pc, 0x401008u);
    EXPECT_EQ(e.vaddr, 0x7ffd1008u);
    EXPECT_EQ(e.paddr, ~uint64_t{0});
    EXPECT_EQ(e.size, 8u);
    EXPECT_EQ(e.data, 0xdeadbeefcafef00du);
    EXPECT_EQ(e.data_high, 0u);
}

TEST_F(EngineTest, WideMemoryWriteCarriesTheHighHalf) {
    monitor_a_on_vcpu0();
    auto write = record(generic(CallbackType::MemWrite));
    engine.on_memory(0, 0x401008, true, 0x7ffd1010, 0x3456010, 16, 0x1111, 0x2222);
    ASSERT_EQ(write->events.size(), 1u);
    EXPECT_EQ(write->events[0].size, 16u);
    EXPECT_EQ(write->events[0].data, 0x1111u);
    EXPECT_EQ(write->events[0].data_high, 0x2222u);
}

TEST_F(EngineTest, MemoryInAnUnmonitoredProcessIsNotDelivered) {
    monitor_a_on_vcpu0();
    auto read = record(generic(CallbackType::MemRead));
    auto write = record(generic(CallbackType::MemWrite));
    engine.on_memory(1, 0x401004, false, 0x1000, 0x2000, 4, 0, 0);
    engine.on_memory(1, 0x401008, true, 0x1000, 0x2000, 4, 7, 0);
    EXPECT_TRUE(read->events.empty());
    EXPECT_TRUE(write->events.empty());
}

TEST_F(EngineTest, AllProcessesMemoryCallbackSeesUnmonitoredAccesses) {
    monitor_a_on_vcpu0();
    auto gated = record(generic(CallbackType::MemRead));
    auto all = record(generic(CallbackType::MemRead, true));
    auto gated_write = record(generic(CallbackType::MemWrite));
    engine.on_memory(1, 0x401004, false, 0x1000, 0x2000, 2, 0, 0);
    engine.on_memory(1, 0x401008, true, 0x1000, 0x2000, 2, 9, 0);
    EXPECT_TRUE(gated->events.empty());
    EXPECT_TRUE(gated_write->events.empty());
    ASSERT_EQ(all->events.size(), 1u);
    EXPECT_EQ(all->events[0].cpu_index, 1);
    EXPECT_EQ(all->events[0].vaddr, 0x1000u);
    EXPECT_EQ(all->events[0].paddr, 0x2000u);
    EXPECT_EQ(all->events[0].size, 2u);
    EXPECT_EQ(all->events[0].pgd, kPgdB);
}

TEST_F(EngineTest, MemoryDeliveryFollowsMonitoringChanges) {
    load(0, kPgdA);
    auto read = record(generic(CallbackType::MemRead));
    engine.on_memory(0, 0x10, false, 0x1000, 0x2000, 1, 0, 0);
    engine.start_monitoring(kPgdA);
    engine.on_memory(0, 0x20, false, 0x1000, 0x2000, 1, 0, 0);
    engine.stop_monitoring(kPgdA);
    engine.on_memory(0, 0x30, false, 0x1000, 0x2000, 1, 0, 0);
    ASSERT_EQ(read->events.size(), 1u);
    EXPECT_EQ(read->events[0].pc, 0x20u);
}

// --- two vCPUs ---

TEST_F(EngineTest, EventsCarryTheVcpuTheyHappenedOn) {
    load(0, kPgdA);
    load(1, kPgdB);
    engine.start_monitoring(kPgdA);
    engine.start_monitoring(kPgdB);
    auto block = record(generic(CallbackType::BlockBegin));
    auto insn = record(generic(CallbackType::InsnBegin));
    auto mem = record(generic(CallbackType::MemWrite));

    engine.on_block(1, kTb2);
    engine.on_block(0, kTb1);
    engine.on_insn(1, 0x402000);
    engine.on_insn(0, 0x401000);
    engine.on_memory(1, 0x402000, true, 0x1000, 0x2000, 4, 1, 0);
    engine.on_memory(0, 0x401000, true, 0x3000, 0x4000, 4, 2, 0);

    ASSERT_EQ(block->events.size(), 2u);
    EXPECT_EQ(block->events[0].cpu_index, 1);
    EXPECT_EQ(block->events[0].pgd, kPgdB);
    EXPECT_EQ(block->events[1].cpu_index, 0);
    EXPECT_EQ(block->events[1].pgd, kPgdA);
    ASSERT_EQ(insn->events.size(), 2u);
    EXPECT_EQ(insn->events[0].cpu_index, 1);
    EXPECT_EQ(insn->events[1].cpu_index, 0);
    ASSERT_EQ(mem->events.size(), 2u);
    EXPECT_EQ(mem->events[0].cpu_index, 1);
    EXPECT_EQ(mem->events[0].data, 1u);
    EXPECT_EQ(mem->events[1].cpu_index, 0);
    EXPECT_EQ(mem->events[1].data, 2u);
}

}  // namespace

// --- TLB_EXEC ---

namespace {
pyrebox::TbInfo block_at(uint64_t pc) {
    pyrebox::TbInfo tb;
    tb.pc = pc;
    tb.size = 8;
    tb.icount = 2;
    tb.last_pc = pc + 4;
    return tb;
}
}  // namespace

TEST_F(EngineTest, TlbExecFiresOncePerCodePageUntilTheNextFlushingCr3Load) {
    auto rec = record(generic(CallbackType::TlbExec));
    monitor_a_on_vcpu0();
    engine.on_block(0, block_at(0x401000));
    engine.on_block(0, block_at(0x401800));  // same page
    engine.on_block(0, block_at(0x402000));  // new page
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[0].vaddr, 0x401000u);
    EXPECT_EQ(rec->events[1].vaddr, 0x402000u);
    load(0, kPgdA | (uint64_t{1} << 63));  // no-flush reload keeps the TLB
    engine.on_block(0, block_at(0x401000));
    EXPECT_EQ(rec->events.size(), 2u);
    load(0, kPgdA);  // flushing reload of the same address space
    engine.on_block(0, block_at(0x401000));
    ASSERT_EQ(rec->events.size(), 3u);
    EXPECT_EQ(rec->events[2].vaddr, 0x401000u);
}

TEST_F(EngineTest, MonitoredOnlyTlbExecIsNotDeliveredForUnmonitoredProcesses) {
    auto rec = record(generic(CallbackType::TlbExec));
    monitor_a_on_vcpu0();
    engine.on_block(1, block_at(0x401000));
    EXPECT_TRUE(rec->events.empty());
}

TEST_F(EngineTest, TlbExecOfEveryProcessFiresWithNothingMonitored) {
    auto rec = record(generic(CallbackType::TlbExec, /*all_processes=*/true));
    load(0, kPgdA);
    engine.on_block(0, block_at(0x401000));
    engine.on_block(0, block_at(0x401800));  // same page
    load(0, kPgdB);
    engine.on_block(0, block_at(0x401000));  // another address space, flushed
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[0].pgd, kPgdA);
    EXPECT_EQ(rec->events[1].pgd, kPgdB);
    EXPECT_EQ(rec->events[1].vaddr, 0x401000u);
}

// --- KPTI: decided by the KPTI source (the guest kernel), never by CR3 values ---

TEST_F(EngineTest, KptiSourceTurnsPairMergingOnAtTheFirstUserHalfLoad) {
    auto rec = record(generic(CallbackType::ContextChange));
    int asked = 0;
    engine.set_kpti_source([&]() -> std::optional<bool> { ++asked; return true; });
    const uint64_t kernel_half = 0x2000000;  // 8 KiB aligned, as Linux allocates pairs
    const uint64_t user_half = kernel_half | 0x1000;
    load(0, kernel_half);
    EXPECT_EQ(asked, 0);  // bit 12 clear: the same pgd either way, nothing to decide
    const size_t before = rec->events.size();
    load(0, user_half);   // asked before the value is normalised
    EXPECT_EQ(asked, 1);
    EXPECT_TRUE(engine.kpti());
    EXPECT_EQ(engine.current_pgd(0), kernel_half);
    EXPECT_EQ(rec->events.size(), before);  // no context change within the pair
    load(0, kernel_half);
    load(0, user_half);
    EXPECT_EQ(rec->events.size(), before);
    EXPECT_EQ(asked, 1);  // decided once
}

TEST_F(EngineTest, KptiOffKeepsAdjacentPgdsApartHoweverOftenTheySwitch) {
    // A kernel allocating 4 KiB pgds gives neighbours X and X+0x1000.
    int asked = 0;
    engine.set_kpti_source([&]() -> std::optional<bool> { ++asked; return false; });
    auto rec = record(generic(CallbackType::ContextChange));
    for (int i = 0; i < 10; ++i) {
        load(0, 0x2000000);
        load(0, 0x2001000);
    }
    EXPECT_FALSE(engine.kpti());
    EXPECT_EQ(asked, 1);
    EXPECT_EQ(engine.current_pgd(0), 0x2001000u);
    EXPECT_EQ(rec->events.size(), 20u);  // every switch is a context change
}

TEST_F(EngineTest, WithoutAKptiSourceCr3ValuesNeverTurnKptiOn) {
    for (int i = 0; i < 10; ++i) {
        load(0, 0x2000000);
        load(0, 0x2001000);
    }
    EXPECT_FALSE(engine.kpti());
}

TEST_F(EngineTest, AnUndecidedKptiSourceIsAskedAgainWithBackoff) {
    int asked = 0;
    std::optional<bool> answer;
    engine.set_kpti_source([&]() -> std::optional<bool> { ++asked; return answer; });
    for (int i = 0; i < 8; ++i) {
        load(0, 0x2001000);
        load(0, 0x3000000);
    }
    EXPECT_FALSE(engine.kpti());
    EXPECT_EQ(asked, 4);  // at user-half loads 1, 2, 4 and 8
    answer = true;
    for (int i = 0; i < 8; ++i) {
        load(0, 0x2001000);
    }
    EXPECT_TRUE(engine.kpti());
    EXPECT_EQ(asked, 5);  // load 16
    EXPECT_EQ(engine.current_pgd(0), 0x2000000u);
}

TEST_F(EngineTest, KptiMonitorsThePairAsOneProcess) {
    engine.set_kpti_source([]() -> std::optional<bool> { return true; });
    const uint64_t kernel_half = 0x2000000;
    load(0, kernel_half);
    load(0, kernel_half | 0x1000);
    ASSERT_TRUE(engine.kpti());
    engine.start_monitoring(kernel_half);
    load(0, kernel_half);
    load(0, kernel_half | 0x1000);
    EXPECT_TRUE(engine.vcpu_monitored(0));
    EXPECT_EQ(flags.monitored[0], true);
}

TEST_F(EngineTest, ForcedKptiOffIsNotAskedAgain) {
    int asked = 0;
    engine.set_kpti_source([&]() -> std::optional<bool> { ++asked; return true; });
    engine.set_kpti(false);
    for (int i = 0; i < 10; ++i) {
        load(0, 0x2000000);
        load(0, 0x2001000);
    }
    EXPECT_FALSE(engine.kpti());
    EXPECT_EQ(asked, 0);
}

// --- keyboard reads (KEYSTROKE) ---

TEST_F(EngineTest, KeyboardReadIsDeliveredAtTheNextInstructionInAnyProcess) {
    monitor_a_on_vcpu0();  // vCPU 1 runs an unmonitored process
    auto rec = record(generic(CallbackType::Keystroke));
    uint8_t al = 0x9e;  // 'a' released, as the guest reads it (set 1)
    engine.set_keyboard_byte_reader([&al](int) { return al; });
    engine.on_keyboard_read(1);
    EXPECT_TRUE(flags.pending[1]);
    EXPECT_TRUE(rec->events.empty());
    engine.on_pending_at_insn(1, 0x401002);
    ASSERT_EQ(rec->events.size(), 2u);
    EXPECT_EQ(rec->events[0].type, CallbackType::Keystroke);
    EXPECT_EQ(rec->events[0].data, 0xf0u);
    EXPECT_EQ(rec->events[1].data, 0x1cu);
    EXPECT_EQ(rec->events[1].cpu_index, 1);
    EXPECT_FALSE(flags.pending[1]);
    al = 0x1e;  // pressed
    engine.on_keyboard_read(1);
    engine.on_pending_at_block(1, kTb2);
    ASSERT_EQ(rec->events.size(), 3u);
    EXPECT_EQ(rec->events[2].data, 0x1cu);
}

TEST_F(EngineTest, KeyboardAcknowledgementsAreNotKeystrokes) {
    auto rec = record(generic(CallbackType::Keystroke));
    engine.set_keyboard_byte_reader([](int) { return uint8_t{0xfa}; });
    engine.on_keyboard_read(0);
    engine.on_pending_at_insn(0, 0x401002);
    EXPECT_TRUE(rec->events.empty());
    EXPECT_FALSE(flags.pending[0]);
}

// An i386 fast call: `syscall` from 32-bit code enters with ECX in EBP and
// the sixth argument at ESP; it returns at the landing pad introspection
// names, where it pairs with its entry.
TEST_F(EngineTest, A32BitSyscallTakesTheVdsosRegistersAndReturnsAtTheLandingPad) {
    constexpr uint64_t kSite = 0xf7f00570, kPad = 0xf7f00574, kEsp = 0xffd0f000;
    struct Regs { uint64_t number, ebx, ecx, edx, esi, edi, ebp, esp; };
    const Regs regs{4, 1, 0xdead, 14, 0, 0, 0x8049000, kEsp};
    engine.set_syscall_reader([&](int, pyrebox::SyscallPath path, Engine::SyscallRegs& r) {
        EXPECT_EQ(path, pyrebox::SyscallPath::Syscall);  // as decoded
        r.code32 = true;
        r.number = regs.number;
        const uint64_t args[6] = {regs.ebx, regs.ecx, regs.edx, regs.esi, regs.edi, regs.ebp};
        std::copy(std::begin(args), std::end(args), r.args);
        r.sp = regs.esp;
        return true;
    });
    engine.set_user_reader([&](int, uint64_t va, void* out, size_t n) {
        if (va != kEsp || n != 4) {
            return false;
        }
        const uint32_t sixth = 0x66;
        std::memcpy(out, &sixth, 4);
        return true;
    });
    std::vector<uint64_t> watched;
    engine.set_return_site_watcher([&](uint64_t pc) { watched.push_back(pc); });
    engine.set_landing_pad_reader([&](int, uint64_t& pc) {
        pc = kPad;
        return true;
    });
    uint64_t sp = kEsp, ret = 14;
    engine.set_return_reader([&](int, uint64_t& s, uint64_t& r) {
        s = sp;
        r = ret;
        return true;
    });
    auto entry = record(generic(CallbackType::Syscall));
    auto exit = record(generic(CallbackType::SyscallRet));
    monitor_a_on_vcpu0();

    engine.on_syscall(0, kSite, 2, pyrebox::SyscallPath::Syscall);
    ASSERT_EQ(entry->events.size(), 1u);
    const Event& e = entry->events[0];
    EXPECT_EQ(e.syscall_path, static_cast<uint8_t>(pyrebox::SyscallPath::Syscall32));
    EXPECT_EQ(e.number, 4u);
    const uint64_t expected[6] = {1, 0x8049000, 14, 0, 0, 0x66};
    for (int i = 0; i < 6; ++i) {
        EXPECT_EQ(e.args[i], expected[i]) << i;
    }
    EXPECT_EQ(watched, std::vector<uint64_t>{kPad});

    engine.on_syscall_return(0, kSite + 2);  // the vDSO's int 0x80: not where it returns
    EXPECT_TRUE(exit->events.empty());
    engine.on_syscall_return(0, kPad);
    ASSERT_EQ(exit->events.size(), 1u);
    EXPECT_EQ(exit->events[0].retval, 14u);
    EXPECT_EQ(exit->events[0].pc, kSite);
    EXPECT_EQ(exit->events[0].args[1], 0x8049000u);
}

// sysenter: the user stack pointer is EBP (where the kernel returns it and
// reads the sixth argument); without introspection a call from the vDSO
// returns after the `int 0x80` that follows the instruction.
TEST_F(EngineTest, SysenterReturnsWithEbpAsItsStackAfterTheVdsosInt80) {
    constexpr uint64_t kSite = 0xf7f00570, kEbp = 0xffd0f000;
    engine.set_syscall_reader([&](int, pyrebox::SyscallPath, Engine::SyscallRegs& r) {
        r.number = 20;
        const uint64_t args[6] = {0, 0, 0, 0, 0, kEbp};
        std::copy(std::begin(args), std::end(args), r.args);
        r.sp = kEbp - 0x40;  // ESP: the kernel does not use it
        return true;
    });
    engine.set_user_reader([&](int, uint64_t va, void* out, size_t n) {
        if (va == kSite + 2 && n == 2) {
            const uint8_t int80[2] = {0xCD, 0x80};
            std::memcpy(out, int80, 2);
            return true;
        }
        return false;  // the sixth argument is unreadable: 0
    });
    std::vector<uint64_t> watched;
    engine.set_return_site_watcher([&](uint64_t pc) { watched.push_back(pc); });
    uint64_t sp = kEbp;
    engine.set_return_reader([&](int, uint64_t& s, uint64_t& r) {
        s = sp;
        r = 0x77;
        return true;
    });
    auto entry = record(generic(CallbackType::Syscall));
    auto exit = record(generic(CallbackType::SyscallRet));
    monitor_a_on_vcpu0();

    engine.on_syscall(0, kSite, 2, pyrebox::SyscallPath::Sysenter);
    ASSERT_EQ(entry->events.size(), 1u);
    EXPECT_EQ(entry->events[0].args[5], 0u);
    EXPECT_EQ(watched, std::vector<uint64_t>{kSite + 4});
    sp = kEbp - 0x40;
    engine.on_syscall_return(0, kSite + 4);  // another stack: another thread
    EXPECT_TRUE(exit->events.empty());
    sp = kEbp;
    engine.on_syscall_return(0, kSite + 4);
    ASSERT_EQ(exit->events.size(), 1u);
    EXPECT_EQ(exit->events[0].retval, 0x77u);
}
