#include "engine/callback_registry.h"

#include <gtest/gtest.h>

#include "callback_specs.h"

#include <functional>
#include <memory>
#include <ostream>
#include <set>
#include <utility>
#include <vector>

namespace pyrebox {

static void PrintTo(const Plan& p, std::ostream* os) {
    *os << "{block_begin=" << p.block_begin << " block_end=" << p.block_end
        << " insn_begin=" << p.insn_begin << " insn_end=" << p.insn_end
        << " mem_read=" << p.mem_read << " mem_write=" << p.mem_write
        << " tlb_exec=" << p.tlb_exec << " tlb_exec_all=" << p.tlb_exec_all << " block_begin_all=" << p.block_begin_all
        << " block_end_all=" << p.block_end_all << " insn_begin_all=" << p.insn_begin_all
        << " insn_end_all=" << p.insn_end_all << " mem_all=" << p.mem_all
        << " opcode_all=" << p.opcode_all << " exec_addrs={";
    for (uint64_t a : std::set<uint64_t>(p.exec_addrs.begin(), p.exec_addrs.end())) {
        *os << std::hex << "0x" << a << std::dec << ",";
    }
    *os << "} opcode_ranges={";
    for (const auto& [first, last] : p.opcode_ranges) {
        *os << std::hex << "[0x" << first << ",0x" << last << "]" << std::dec;
    }
    *os << "}}";
}

}  // namespace pyrebox

namespace {

using pyrebox::CallbackHandler;
using pyrebox::CallbackRegistry;
using pyrebox::CallbackSpec;
using pyrebox::CallbackType;
using pyrebox::Event;
using pyrebox::Plan;

class Recorder : public CallbackHandler {
public:
    void deliver(const Event& event) override {
        events.push_back(event);
        if (action) {
            action(event);
        }
    }

    std::vector<Event> events;
    std::function<void(const Event&)> action;
};

class LifetimeProbe : public Recorder {
public:
    explicit LifetimeProbe(bool* destroyed) : destroyed_(destroyed) {}
    ~LifetimeProbe() override { *destroyed_ = true; }

private:
    bool* destroyed_;
};

using pyrebox::testing::at_address;
using pyrebox::testing::generic;
using pyrebox::testing::opcode_range;

Event event_of(CallbackType type, uint64_t pc = 0, uint64_t pgd = 0) {
    Event e;
    e.type = type;
    e.pc = pc;
    e.pgd = pgd;
    return e;
}

class CallbackRegistryTest : public ::testing::Test {
protected:
    void SetUp() override {
        registry.set_change_listener([this] { ++changes; });
    }

    CallbackRegistry::Id add(const CallbackSpec& spec, std::shared_ptr<CallbackHandler> handler) {
        auto id = registry.add(spec, std::move(handler));
        EXPECT_TRUE(id.ok()) << id.error();
        return id.ok() ? *id : 0;
    }

    std::shared_ptr<Recorder> add_recorder(const CallbackSpec& spec) {
        auto recorder = std::make_shared<Recorder>();
        add(spec, recorder);
        return recorder;
    }

    // Adds `spec` expecting it to be rejected with `message`, with no effect.
    void expect_rejected(const CallbackSpec& spec, const std::string& message,
                         std::shared_ptr<CallbackHandler> handler = std::make_shared<Recorder>()) {
        const size_t size_before = registry.size();
        const Plan plan_before = *registry.plan();
        const int changes_before = changes;
        auto id = registry.add(spec, std::move(handler));
        ASSERT_FALSE(id.ok());
        EXPECT_EQ(id.error(), message);
        EXPECT_EQ(registry.size(), size_before);
        EXPECT_EQ(*registry.plan(), plan_before);
        EXPECT_EQ(changes, changes_before);
    }

    CallbackRegistry registry;
    int changes = 0;
};

// --- add / remove / contains ---

TEST_F(CallbackRegistryTest, AddReturnsIncreasingIdsStartingAtOne) {
    EXPECT_EQ(add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>()), 1u);
    EXPECT_EQ(add(generic(CallbackType::MemRead), std::make_shared<Recorder>()), 2u);
    EXPECT_EQ(add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>()), 3u);
    EXPECT_EQ(registry.size(), 3u);
}

TEST_F(CallbackRegistryTest, IdsAreNotReusedAfterRemove) {
    const auto first = add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    ASSERT_TRUE(registry.remove(first));
    EXPECT_EQ(add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>()), first + 1);
}

TEST_F(CallbackRegistryTest, RejectedAddDoesNotConsumeAnId) {
    expect_rejected(generic(static_cast<CallbackType>(99)),
                    "UNKNOWN_CB is not delivered by this version of PyREBox");
    EXPECT_EQ(add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>()), 1u);
}

TEST_F(CallbackRegistryTest, ContainsFollowsAddAndRemove) {
    const auto id = add(generic(CallbackType::InsnEnd), std::make_shared<Recorder>());
    EXPECT_TRUE(registry.contains(id));
    EXPECT_FALSE(registry.contains(id + 1));
    ASSERT_TRUE(registry.remove(id));
    EXPECT_FALSE(registry.contains(id));
    EXPECT_EQ(registry.size(), 0u);
}

TEST_F(CallbackRegistryTest, RemoveOfUnknownIdReturnsFalseAndChangesNothing) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    const int changes_before = changes;
    EXPECT_FALSE(registry.remove(42));
    EXPECT_EQ(registry.size(), 1u);
    EXPECT_EQ(changes, changes_before);
}

TEST_F(CallbackRegistryTest, RemoveTwiceReturnsFalseTheSecondTime) {
    const auto id = add(generic(CallbackType::MemWrite), std::make_shared<Recorder>());
    EXPECT_TRUE(registry.remove(id));
    EXPECT_FALSE(registry.remove(id));
    EXPECT_EQ(registry.size(), 0u);
}

TEST_F(CallbackRegistryTest, RemoveTakesOnlyTheGivenCallback) {
    const auto a = add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    const auto b = add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    const auto c = add(generic(CallbackType::MemRead), std::make_shared<Recorder>());
    ASSERT_TRUE(registry.remove(b));
    EXPECT_TRUE(registry.contains(a));
    EXPECT_FALSE(registry.contains(b));
    EXPECT_TRUE(registry.contains(c));
    EXPECT_EQ(registry.size(), 2u);
}

TEST_F(CallbackRegistryTest, RemovedHandlerIsReleased) {
    bool destroyed = false;
    const auto id = add(generic(CallbackType::BlockBegin), std::make_shared<LifetimeProbe>(&destroyed));
    EXPECT_FALSE(destroyed);
    ASSERT_TRUE(registry.remove(id));
    EXPECT_TRUE(destroyed);
}

// --- validation ---

TEST_F(CallbackRegistryTest, RejectsAddrOnBlockEnd) {
    expect_rejected(at_address(CallbackType::BlockEnd, 0x401000),
                    "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not BLOCK_END_CB");
}

TEST_F(CallbackRegistryTest, RejectsAddrOnInsnEnd) {
    expect_rejected(at_address(CallbackType::InsnEnd, 0x401000),
                    "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not INSN_END_CB");
}

TEST_F(CallbackRegistryTest, RejectsAddrOnMemRead) {
    expect_rejected(at_address(CallbackType::MemRead, 0x401000),
                    "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not MEM_READ_CB");
}

TEST_F(CallbackRegistryTest, RejectsAddrOnContextChange) {
    expect_rejected(at_address(CallbackType::ContextChange, 0x401000),
                    "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not CONTEXTCHANGE_CB");
}

TEST_F(CallbackRegistryTest, RejectsPgdWithoutAddr) {
    CallbackSpec spec = generic(CallbackType::BlockBegin);
    spec.pgd = 0x1000;
    expect_rejected(spec, "pgd needs addr (an address-specific BLOCK_BEGIN_CB or INSN_BEGIN_CB), "
                          "a LOADMODULE_CB / REMOVEMODULE_CB or a SYSCALL_CB / SYSCALL_RET_CB");
    CallbackSpec create = generic(CallbackType::CreateProc);
    create.pgd = 0x1000;
    expect_rejected(create, "pgd needs addr (an address-specific BLOCK_BEGIN_CB or INSN_BEGIN_CB), "
                            "a LOADMODULE_CB / REMOVEMODULE_CB or a SYSCALL_CB / SYSCALL_RET_CB");
}

TEST_F(CallbackRegistryTest, SystemCallsOfOnePgdReachItsCallbackMonitoredOrNot) {
    auto one = std::make_shared<Recorder>();
    auto monitored = std::make_shared<Recorder>();
    CallbackSpec filtered = generic(CallbackType::SyscallRet);
    filtered.pgd = 0x2000;
    add(filtered, one);
    add(generic(CallbackType::SyscallRet), monitored);
    // pgd= instruments every process (the filter is applied at dispatch).
    EXPECT_TRUE(registry.plan()->syscall_ret_all);
    EXPECT_TRUE(registry.plan()->syscall_ret);

    Event e;
    e.type = CallbackType::SyscallRet;
    e.pgd = 0x1000;
    registry.dispatch(e, /*monitored=*/true);
    e.pgd = 0x2000;
    registry.dispatch(e, /*monitored=*/false);
    ASSERT_EQ(one->events.size(), 1u);
    EXPECT_EQ(one->events[0].pgd, 0x2000u);
    ASSERT_EQ(monitored->events.size(), 1u);
    EXPECT_EQ(monitored->events[0].pgd, 0x1000u);
}

TEST_F(CallbackRegistryTest, ProcessEventsReachEveryCallbackOfTheirTypeModulesByPgd) {
    auto create = std::make_shared<Recorder>();
    auto any_module = std::make_shared<Recorder>();
    auto one_module = std::make_shared<Recorder>();
    add(generic(CallbackType::CreateProc), create);
    add(generic(CallbackType::LoadModule), any_module);
    CallbackSpec filtered = generic(CallbackType::LoadModule);
    filtered.pgd = 0x2000;
    add(filtered, one_module);
    EXPECT_TRUE(registry.plan()->process_events);

    Event e;
    e.type = CallbackType::CreateProc;
    e.pid = 7;
    e.pgd = 0x1000;
    registry.dispatch(e, /*monitored=*/false);
    e.type = CallbackType::LoadModule;
    registry.dispatch(e, false);
    e.pgd = 0x2000;
    registry.dispatch(e, false);
    EXPECT_EQ(create->events.size(), 1u);
    EXPECT_EQ(any_module->events.size(), 2u);
    ASSERT_EQ(one_module->events.size(), 1u);
    EXPECT_EQ(one_module->events[0].pgd, 0x2000u);
}

TEST_F(CallbackRegistryTest, RejectsOpcodeRangeWithStartAfterEnd) {
    expect_rejected(opcode_range(0x20, 0x10),
                    "opcode range start 0x20 is greater than end 0x10");
}

TEST_F(CallbackRegistryTest, RejectsOpcodeBeyondHighest) {
    expect_rejected(opcode_range(0x3F0, 0x400),
                    "opcode 0x400 is beyond the highest opcode 0x3ff");
}

TEST_F(CallbackRegistryTest, AcceptsOpcodeRangeUpToHighest) {
    add(opcode_range(0x3FF, 0x3FF), std::make_shared<Recorder>());
    add(opcode_range(0, 0), std::make_shared<Recorder>());
    EXPECT_EQ(registry.size(), 2u);
}

TEST_F(CallbackRegistryTest, RejectsOpcodeFieldsOnOtherTypes) {
    CallbackSpec last_only = generic(CallbackType::InsnBegin);
    last_only.opcode_last = 5;
    expect_rejected(last_only, "start_opcode/end_opcode apply to OPCODE_RANGE_CB only, not INSN_BEGIN_CB");
    CallbackSpec first_only = generic(CallbackType::BlockEnd);
    first_only.opcode_first = 1;
    first_only.opcode_last = 1;
    expect_rejected(first_only, "start_opcode/end_opcode apply to OPCODE_RANGE_CB only, not BLOCK_END_CB");
}

TEST_F(CallbackRegistryTest, EveryPyreboxTypeIsAccepted) {
    for (int t = pyrebox::kFirstCallbackType; t <= pyrebox::kLastCallbackType; ++t) {
        if (t == static_cast<int>(CallbackType::OpcodeRange)) {
            continue;  // needs a range (tested above)
        }
        EXPECT_TRUE(registry.add(generic(static_cast<CallbackType>(t)),
                                 std::make_shared<Recorder>()).ok()) << t;
    }
}

TEST_F(CallbackRegistryTest, AcceptsDeviceTypesAndPlansKeyboardReads) {
    for (auto type : {CallbackType::Keystroke, CallbackType::NicSend, CallbackType::NicRec}) {
        add(generic(type), std::make_shared<Recorder>());
    }
    EXPECT_TRUE(registry.plan()->keystroke);
    EXPECT_TRUE(registry.plan()->any_end_events());
    CallbackSpec addressed = generic(CallbackType::Keystroke);
    addressed.addr = 0x1000;
    expect_rejected(addressed, "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not KEYSTROKE_CB");
}

TEST_F(CallbackRegistryTest, RejectsTypeOutsideTheEnumeration) {
    expect_rejected(generic(static_cast<CallbackType>(99)),
                    "UNKNOWN_CB is not delivered by this version of PyREBox");
    expect_rejected(generic(static_cast<CallbackType>(0)),
                    "UNKNOWN_CB is not delivered by this version of PyREBox");
}

TEST_F(CallbackRegistryTest, RejectsNullHandler) {
    expect_rejected(generic(CallbackType::BlockBegin), "no handler given", nullptr);
}

TEST_F(CallbackRegistryTest, RejectedAddAfterValidOnesLeavesThemInPlace) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    add(at_address(CallbackType::InsnBegin, 0x1000), std::make_shared<Recorder>());
    expect_rejected(opcode_range(5, 4), "opcode range start 0x5 is greater than end 0x4");
    expect_rejected(generic(CallbackType::InsnBegin), "no handler given", nullptr);
    EXPECT_EQ(registry.size(), 2u);
}

// --- plan ---

TEST_F(CallbackRegistryTest, EmptyRegistryHasEmptyPlan) {
    EXPECT_EQ(*registry.plan(), Plan{});
    EXPECT_FALSE(registry.plan()->any_end_events());
}

struct PlanCase {
    CallbackSpec spec;
    Plan expected;
};

Plan plan_with(std::function<void(Plan&)> set) {
    Plan p;
    set(p);
    return p;
}

TEST_F(CallbackRegistryTest, PlanFlagsPerType) {
    const std::vector<PlanCase> cases = {
        {generic(CallbackType::BlockBegin), plan_with([](Plan& p) { p.block_begin = true; })},
        {generic(CallbackType::BlockBegin, true), plan_with([](Plan& p) { p.block_begin_all = true; })},
        {generic(CallbackType::BlockEnd), plan_with([](Plan& p) { p.block_end = true; })},
        {generic(CallbackType::BlockEnd, true), plan_with([](Plan& p) { p.block_end_all = true; })},
        {generic(CallbackType::InsnBegin), plan_with([](Plan& p) { p.insn_begin = true; })},
        {generic(CallbackType::InsnBegin, true), plan_with([](Plan& p) { p.insn_begin_all = true; })},
        {generic(CallbackType::InsnEnd), plan_with([](Plan& p) { p.insn_end = true; })},
        {generic(CallbackType::InsnEnd, true), plan_with([](Plan& p) { p.insn_end_all = true; })},
        {generic(CallbackType::MemRead), plan_with([](Plan& p) { p.mem_read = true; })},
        {generic(CallbackType::MemRead, true),
         plan_with([](Plan& p) { p.mem_read = true; p.mem_all = true; })},
        {generic(CallbackType::MemWrite), plan_with([](Plan& p) { p.mem_write = true; })},
        {generic(CallbackType::MemWrite, true),
         plan_with([](Plan& p) { p.mem_write = true; p.mem_all = true; })},
        {generic(CallbackType::TlbExec), plan_with([](Plan& p) { p.tlb_exec = true; })},
        {generic(CallbackType::TlbExec, true), plan_with([](Plan& p) { p.tlb_exec_all = true; })},
        {opcode_range(0x10, 0x20), plan_with([](Plan& p) { p.opcode_ranges = {{0x10, 0x20}}; })},
        {opcode_range(0x10, 0x20, true),
         plan_with([](Plan& p) { p.opcode_ranges = {{0x10, 0x20}}; p.opcode_all = true; })},
        {generic(CallbackType::ContextChange), Plan{}},
        {generic(CallbackType::ContextChange, true), Plan{}},
        {at_address(CallbackType::BlockBegin, 0x401000),
         plan_with([](Plan& p) { p.exec_addrs = {0x401000}; })},
        {at_address(CallbackType::InsnBegin, 0x401004, 0x1234000),
         plan_with([](Plan& p) { p.exec_addrs = {0x401004}; })},
    };
    for (const auto& c : cases) {
        CallbackRegistry fresh;
        auto id = fresh.add(c.spec, std::make_shared<Recorder>());
        ASSERT_TRUE(id.ok()) << id.error();
        SCOPED_TRACE(std::string(pyrebox::callback_type_name(c.spec.type)) +
                     (c.spec.all_processes ? " all" : "") + (c.spec.addr ? " addr" : ""));
        EXPECT_EQ(*fresh.plan(), c.expected);
    }
}

TEST_F(CallbackRegistryTest, PlanCombinesCallbacksOfDifferentTypes) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    add(generic(CallbackType::InsnEnd, true), std::make_shared<Recorder>());
    add(generic(CallbackType::MemWrite), std::make_shared<Recorder>());
    add(at_address(CallbackType::BlockBegin, 0x1000), std::make_shared<Recorder>());
    add(at_address(CallbackType::InsnBegin, 0x2000, 0x5000), std::make_shared<Recorder>());
    add(opcode_range(0x105, 0x105), std::make_shared<Recorder>());
    add(opcode_range(0x0, 0x5, true), std::make_shared<Recorder>());

    Plan expected;
    expected.block_begin = true;
    expected.insn_end_all = true;
    expected.mem_write = true;
    expected.exec_addrs = {0x1000, 0x2000};
    expected.opcode_ranges = {{0x105, 0x105}, {0x0, 0x5}};
    expected.opcode_all = true;
    EXPECT_EQ(*registry.plan(), expected);
}

TEST_F(CallbackRegistryTest, AddressSpecificCallbacksDoNotSetGenericFlags) {
    add(at_address(CallbackType::BlockBegin, 0x1000), std::make_shared<Recorder>());
    add(at_address(CallbackType::InsnBegin, 0x2000), std::make_shared<Recorder>());
    const auto plan = registry.plan();
    EXPECT_FALSE(plan->block_begin);
    EXPECT_FALSE(plan->block_begin_all);
    EXPECT_FALSE(plan->insn_begin);
    EXPECT_FALSE(plan->insn_begin_all);
    EXPECT_EQ(plan->exec_addrs, (std::unordered_set<uint64_t>{0x1000, 0x2000}));
}

TEST_F(CallbackRegistryTest, PlanDropsWhatRemovedCallbacksNeeded) {
    const auto gated = add(generic(CallbackType::BlockEnd), std::make_shared<Recorder>());
    const auto all = add(generic(CallbackType::BlockEnd, true), std::make_shared<Recorder>());
    const auto addr = add(at_address(CallbackType::InsnBegin, 0x3000), std::make_shared<Recorder>());
    const auto op = add(opcode_range(1, 2), std::make_shared<Recorder>());

    ASSERT_TRUE(registry.remove(all));
    EXPECT_TRUE(registry.plan()->block_end);
    EXPECT_FALSE(registry.plan()->block_end_all);
    ASSERT_TRUE(registry.remove(addr));
    EXPECT_TRUE(registry.plan()->exec_addrs.empty());
    ASSERT_TRUE(registry.remove(op));
    EXPECT_TRUE(registry.plan()->opcode_ranges.empty());
    ASSERT_TRUE(registry.remove(gated));
    EXPECT_EQ(*registry.plan(), Plan{});
}

TEST_F(CallbackRegistryTest, PublishedPlanIsNotChangedByLaterAdds) {
    const auto before = registry.plan();
    add(generic(CallbackType::InsnBegin), std::make_shared<Recorder>());
    EXPECT_EQ(*before, Plan{});
    EXPECT_TRUE(registry.plan()->insn_begin);
}

TEST(PlanTest, MatchesOpcodeWithinInclusiveRanges) {
    Plan plan;
    plan.opcode_ranges = {{0x10, 0x20}, {0x105, 0x105}};
    EXPECT_TRUE(plan.matches_opcode(0x10));
    EXPECT_TRUE(plan.matches_opcode(0x18));
    EXPECT_TRUE(plan.matches_opcode(0x20));
    EXPECT_TRUE(plan.matches_opcode(0x105));
    EXPECT_FALSE(plan.matches_opcode(0x0F));
    EXPECT_FALSE(plan.matches_opcode(0x21));
    EXPECT_FALSE(plan.matches_opcode(0x104));
    EXPECT_FALSE(plan.matches_opcode(0x106));
}

TEST(PlanTest, EmptyPlanMatchesNoOpcode) {
    Plan plan;
    EXPECT_FALSE(plan.matches_opcode(0));
    EXPECT_FALSE(plan.matches_opcode(0x3FF));
}

TEST(PlanTest, AnyEndEventsCountsEveryEndKind) {
    EXPECT_FALSE(Plan{}.any_end_events());
    EXPECT_TRUE(plan_with([](Plan& p) { p.block_end = true; }).any_end_events());
    EXPECT_TRUE(plan_with([](Plan& p) { p.block_end_all = true; }).any_end_events());
    EXPECT_TRUE(plan_with([](Plan& p) { p.insn_end = true; }).any_end_events());
    EXPECT_TRUE(plan_with([](Plan& p) { p.insn_end_all = true; }).any_end_events());
    EXPECT_TRUE(plan_with([](Plan& p) { p.opcode_ranges = {{1, 1}}; }).any_end_events());
    EXPECT_FALSE(plan_with([](Plan& p) {
                     p.block_begin = true;
                     p.insn_begin_all = true;
                     p.mem_read = true;
                     p.mem_all = true;
                     p.exec_addrs = {0x1000};
                 }).any_end_events());
}

// --- change listener ---

TEST_F(CallbackRegistryTest, ListenerRunsWhenFirstCallbackOfATypeIsAdded) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 1);
}

TEST_F(CallbackRegistryTest, ListenerDoesNotRunForASecondIdenticalGenericCallback) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 1);
}

TEST_F(CallbackRegistryTest, ListenerRunsForAnAddressSpecificCallbackAtANewAddress) {
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    add(at_address(CallbackType::BlockBegin, 0x401000), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 2);
    add(at_address(CallbackType::InsnBegin, 0x401010), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 3);
}

TEST_F(CallbackRegistryTest, ListenerDoesNotRunForAnotherCallbackAtAKnownAddress) {
    add(at_address(CallbackType::BlockBegin, 0x401000), std::make_shared<Recorder>());
    add(at_address(CallbackType::InsnBegin, 0x401000), std::make_shared<Recorder>());
    add(at_address(CallbackType::InsnBegin, 0x401000, 0x1234000), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 1);
}

TEST_F(CallbackRegistryTest, ListenerRunsWhenGatedAndAllProcessesDiffer) {
    add(generic(CallbackType::InsnEnd), std::make_shared<Recorder>());
    add(generic(CallbackType::InsnEnd, true), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 2);
}

TEST_F(CallbackRegistryTest, ListenerDoesNotRunForContextChangeCallbacks) {
    const auto id = add(generic(CallbackType::ContextChange), std::make_shared<Recorder>());
    EXPECT_EQ(changes, 0);
    ASSERT_TRUE(registry.remove(id));
    EXPECT_EQ(changes, 0);
}

TEST_F(CallbackRegistryTest, ListenerRunsOnRemoveOnlyWhenThePlanChanges) {
    const auto a = add(generic(CallbackType::MemRead), std::make_shared<Recorder>());
    const auto b = add(generic(CallbackType::MemRead), std::make_shared<Recorder>());
    ASSERT_EQ(changes, 1);
    ASSERT_TRUE(registry.remove(a));
    EXPECT_EQ(changes, 1);
    ASSERT_TRUE(registry.remove(b));
    EXPECT_EQ(changes, 2);
}

TEST_F(CallbackRegistryTest, ListenerRunsOutsideTheRegistryLock) {
    std::vector<size_t> sizes_seen;
    std::vector<bool> block_begin_seen;
    registry.set_change_listener([&] {
        sizes_seen.push_back(registry.size());
        block_begin_seen.push_back(registry.plan()->block_begin);
    });
    const auto id = add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    ASSERT_TRUE(registry.remove(id));
    EXPECT_EQ(sizes_seen, (std::vector<size_t>{1, 0}));
    EXPECT_EQ(block_begin_seen, (std::vector<bool>{true, false}));
}

// --- dispatch ---

TEST_F(CallbackRegistryTest, DispatchDeliversTheEventUnchanged) {
    auto rec = add_recorder(generic(CallbackType::BlockEnd));
    Event e;
    e.type = CallbackType::BlockEnd;
    e.cpu_index = 1;
    e.pc = 0x40100c;
    e.next_pc = 0x402000;
    e.tb = {0x401000, 0x10, 4, 0x40100c};
    e.vaddr = 0x11;
    e.paddr = 0x22;
    e.size = 0x33;
    e.data = 0x44;
    e.data_high = 0x55;
    e.opcode = 0x66;
    e.old_pgd = 0x77000;
    e.new_pgd = 0x88000;
    e.pgd = 0x99000;
    registry.dispatch(e, true);

    ASSERT_EQ(rec->events.size(), 1u);
    const Event& got = rec->events[0];
    EXPECT_EQ(got.type, CallbackType::BlockEnd);
    EXPECT_EQ(got.cpu_index, 1);
    EXPECT_EQ(got.pc, 0x40100cu);
    EXPECT_EQ(got.next_pc, 0x402000u);
    EXPECT_EQ(got.tb.pc, 0x401000u);
    EXPECT_EQ(got.tb.size, 0x10u);
    EXPECT_EQ(got.tb.icount, 4u);
    EXPECT_EQ(got.tb.last_pc, 0x40100cu);
    EXPECT_EQ(got.vaddr, 0x11u);
    EXPECT_EQ(got.paddr, 0x22u);
    EXPECT_EQ(got.size, 0x33u);
    EXPECT_EQ(got.data, 0x44u);
    EXPECT_EQ(got.data_high, 0x55u);
    EXPECT_EQ(got.opcode, 0x66);
    EXPECT_EQ(got.old_pgd, 0x77000u);
    EXPECT_EQ(got.new_pgd, 0x88000u);
    EXPECT_EQ(got.pgd, 0x99000u);
}

TEST_F(CallbackRegistryTest, DispatchReachesOnlyCallbacksOfTheEventType) {
    auto begin = add_recorder(generic(CallbackType::BlockBegin));
    auto end = add_recorder(generic(CallbackType::BlockEnd));
    auto read = add_recorder(generic(CallbackType::MemRead));
    registry.dispatch(event_of(CallbackType::BlockEnd), true);
    EXPECT_EQ(begin->events.size(), 0u);
    EXPECT_EQ(end->events.size(), 1u);
    EXPECT_EQ(read->events.size(), 0u);
}

TEST_F(CallbackRegistryTest, DispatchOfATypeWithoutCallbacksDoesNothing) {
    auto rec = add_recorder(generic(CallbackType::BlockBegin));
    registry.dispatch(event_of(CallbackType::InsnEnd), true);
    registry.dispatch(event_of(CallbackType::ContextChange), true);
    EXPECT_TRUE(rec->events.empty());
}

TEST_F(CallbackRegistryTest, DispatchFollowsRegistrationOrder) {
    std::vector<int> order;
    auto first = std::make_shared<Recorder>();
    first->action = [&](const Event&) { order.push_back(1); };
    auto second = std::make_shared<Recorder>();
    second->action = [&](const Event&) { order.push_back(2); };
    auto third = std::make_shared<Recorder>();
    third->action = [&](const Event&) { order.push_back(3); };
    add(generic(CallbackType::InsnBegin), first);
    add(generic(CallbackType::InsnBegin, true), second);
    add(generic(CallbackType::InsnBegin), third);
    registry.dispatch(event_of(CallbackType::InsnBegin), true);
    EXPECT_EQ(order, (std::vector<int>{1, 2, 3}));
}

TEST_F(CallbackRegistryTest, GatedCallbackRunsOnlyWhenMonitored) {
    auto gated = add_recorder(generic(CallbackType::InsnBegin));
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x10), false);
    EXPECT_TRUE(gated->events.empty());
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x20), true);
    ASSERT_EQ(gated->events.size(), 1u);
    EXPECT_EQ(gated->events[0].pc, 0x20u);
}

TEST_F(CallbackRegistryTest, AllProcessesCallbackRunsWhetherMonitoredOrNot) {
    auto all = add_recorder(generic(CallbackType::InsnBegin, true));
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x10), false);
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x20), true);
    ASSERT_EQ(all->events.size(), 2u);
    EXPECT_EQ(all->events[0].pc, 0x10u);
    EXPECT_EQ(all->events[1].pc, 0x20u);
}

TEST_F(CallbackRegistryTest, GenericCallbacksDoNotRunFromTheAddressPath) {
    auto gated = add_recorder(generic(CallbackType::BlockBegin));
    auto all = add_recorder(generic(CallbackType::BlockBegin, true));
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000), true, /*at_address=*/true);
    EXPECT_TRUE(gated->events.empty());
    EXPECT_TRUE(all->events.empty());
}

TEST_F(CallbackRegistryTest, AddressSpecificCallbacksDoNotRunFromTheGenericPath) {
    auto addr = add_recorder(at_address(CallbackType::BlockBegin, 0x401000));
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000), true);
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000), false);
    EXPECT_TRUE(addr->events.empty());
}

TEST_F(CallbackRegistryTest, AddressSpecificCallbackRunsAtItsAddressOnly) {
    auto addr = add_recorder(at_address(CallbackType::InsnBegin, 0x401000));
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x401001), true, true);
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x400fff), true, true);
    EXPECT_TRUE(addr->events.empty());
    registry.dispatch(event_of(CallbackType::InsnBegin, 0x401000, 0xABC000), true, true);
    ASSERT_EQ(addr->events.size(), 1u);
    EXPECT_EQ(addr->events[0].pc, 0x401000u);
    EXPECT_EQ(addr->events[0].pgd, 0xABC000u);
}

TEST_F(CallbackRegistryTest, AddressSpecificCallbackIgnoresTheMonitoredFlag) {
    auto addr = add_recorder(at_address(CallbackType::BlockBegin, 0x401000));
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000), false, true);
    EXPECT_EQ(addr->events.size(), 1u);
}

TEST_F(CallbackRegistryTest, AddressSpecificCallbackWithPgdRunsOnlyInThatAddressSpace) {
    auto in_a = add_recorder(at_address(CallbackType::BlockBegin, 0x401000, 0x1000000));
    auto in_b = add_recorder(at_address(CallbackType::BlockBegin, 0x401000, 0x2000000));
    auto anywhere = add_recorder(at_address(CallbackType::BlockBegin, 0x401000));
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000, 0x1000000), true, true);
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x401000, 0x3000000), true, true);
    ASSERT_EQ(in_a->events.size(), 1u);
    EXPECT_EQ(in_a->events[0].pgd, 0x1000000u);
    EXPECT_TRUE(in_b->events.empty());
    ASSERT_EQ(anywhere->events.size(), 2u);
    EXPECT_EQ(anywhere->events[0].pgd, 0x1000000u);
    EXPECT_EQ(anywhere->events[1].pgd, 0x3000000u);
}

TEST_F(CallbackRegistryTest, OpcodeRangeCallbackRunsOnlyForOpcodesInItsRange) {
    auto low = add_recorder(opcode_range(0x10, 0x20));
    auto syscall = add_recorder(opcode_range(0x105, 0x105));
    for (uint16_t opcode : {0x0F, 0x10, 0x18, 0x20, 0x21, 0x104, 0x105, 0x106}) {
        Event e = event_of(CallbackType::OpcodeRange);
        e.opcode = opcode;
        registry.dispatch(e, true);
    }
    ASSERT_EQ(low->events.size(), 3u);
    EXPECT_EQ(low->events[0].opcode, 0x10);
    EXPECT_EQ(low->events[1].opcode, 0x18);
    EXPECT_EQ(low->events[2].opcode, 0x20);
    ASSERT_EQ(syscall->events.size(), 1u);
    EXPECT_EQ(syscall->events[0].opcode, 0x105);
}

TEST_F(CallbackRegistryTest, OpcodeRangeCallbackIsGatedUnlessAllProcesses) {
    auto gated = add_recorder(opcode_range(0x10, 0x20));
    auto all = add_recorder(opcode_range(0x10, 0x20, true));
    Event e = event_of(CallbackType::OpcodeRange);
    e.opcode = 0x15;
    registry.dispatch(e, false);
    EXPECT_TRUE(gated->events.empty());
    EXPECT_EQ(all->events.size(), 1u);
}

TEST_F(CallbackRegistryTest, RemovedCallbackIsNotDispatched) {
    auto rec = std::make_shared<Recorder>();
    const auto id = add(generic(CallbackType::MemWrite), rec);
    ASSERT_TRUE(registry.remove(id));
    registry.dispatch(event_of(CallbackType::MemWrite), true);
    EXPECT_TRUE(rec->events.empty());
}

// --- changes during dispatch ---

TEST_F(CallbackRegistryTest, HandlerRemovingItselfIsCalledOnceAndOthersStillRun) {
    auto before = add_recorder(generic(CallbackType::BlockBegin));
    auto self = std::make_shared<Recorder>();
    const auto self_id = add(generic(CallbackType::BlockBegin), self);
    self->action = [&](const Event&) { EXPECT_TRUE(registry.remove(self_id)); };
    auto after = add_recorder(generic(CallbackType::BlockBegin));

    registry.dispatch(event_of(CallbackType::BlockBegin, 1), true);
    registry.dispatch(event_of(CallbackType::BlockBegin, 2), true);

    EXPECT_EQ(self->events.size(), 1u);
    EXPECT_EQ(before->events.size(), 2u);
    EXPECT_EQ(after->events.size(), 2u);
    EXPECT_FALSE(registry.contains(self_id));
    EXPECT_EQ(registry.size(), 2u);
}

TEST_F(CallbackRegistryTest, HandlerRemovedByAnEarlierHandlerIsNotCalled) {
    auto first = std::make_shared<Recorder>();
    add(generic(CallbackType::InsnEnd), first);
    auto victim = std::make_shared<Recorder>();
    const auto victim_id = add(generic(CallbackType::InsnEnd), victim);
    auto last = add_recorder(generic(CallbackType::InsnEnd));
    first->action = [&](const Event&) { registry.remove(victim_id); };

    registry.dispatch(event_of(CallbackType::InsnEnd), true);

    EXPECT_EQ(first->events.size(), 1u);
    EXPECT_TRUE(victim->events.empty());
    EXPECT_EQ(last->events.size(), 1u);
}

TEST_F(CallbackRegistryTest, HandlerAddedDuringDispatchRunsFromTheNextDispatch) {
    auto adder = std::make_shared<Recorder>();
    add(generic(CallbackType::InsnBegin), adder);
    auto added = std::make_shared<Recorder>();
    adder->action = [&](const Event&) {
        if (adder->events.size() == 1) {
            add(generic(CallbackType::InsnBegin), added);
        }
    };
    registry.dispatch(event_of(CallbackType::InsnBegin), true);
    EXPECT_TRUE(added->events.empty());
    registry.dispatch(event_of(CallbackType::InsnBegin), true);
    EXPECT_EQ(added->events.size(), 1u);
}

TEST_F(CallbackRegistryTest, HandlerRemovingItselfStaysAliveUntilDispatchReturns) {
    bool destroyed = false;
    bool destroyed_inside_deliver = true;
    CallbackRegistry::Id id = 0;
    {
        auto probe = std::make_shared<LifetimeProbe>(&destroyed);
        probe->action = [&](const Event&) {
            registry.remove(id);
            destroyed_inside_deliver = destroyed;
        };
        id = add(generic(CallbackType::BlockBegin), probe);
    }
    registry.dispatch(event_of(CallbackType::BlockBegin), true);
    EXPECT_FALSE(destroyed_inside_deliver);
    EXPECT_TRUE(destroyed);
}

TEST_F(CallbackRegistryTest, HandlerRemovedByAnotherStaysAliveUntilDispatchReturns) {
    bool destroyed = false;
    bool destroyed_after_remove = true;
    CallbackRegistry::Id victim_id = 0;
    auto remover = std::make_shared<Recorder>();
    remover->action = [&](const Event&) {
        registry.remove(victim_id);
        destroyed_after_remove = destroyed;
    };
    add(generic(CallbackType::BlockBegin), remover);
    victim_id = add(generic(CallbackType::BlockBegin), std::make_shared<LifetimeProbe>(&destroyed));

    registry.dispatch(event_of(CallbackType::BlockBegin), true);

    EXPECT_FALSE(destroyed_after_remove);
    EXPECT_TRUE(destroyed);
    EXPECT_EQ(registry.size(), 1u);
}

TEST_F(CallbackRegistryTest, RemoveDuringDispatchRunsTheListenerWhenThePlanChanges) {
    auto self = std::make_shared<Recorder>();
    const auto id = add(generic(CallbackType::InsnEnd), self);
    self->action = [&](const Event&) { registry.remove(id); };
    ASSERT_EQ(changes, 1);
    registry.dispatch(event_of(CallbackType::InsnEnd), true);
    EXPECT_EQ(changes, 2);
    EXPECT_FALSE(registry.plan()->insn_end);
}

// A handler with an address window (as a range trigger exports one).
class WindowedRecorder : public Recorder {
public:
    WindowedRecorder(uint64_t begin, uint64_t end) : begin(begin), end(end) {}
    bool vaddr_window(uint64_t& b, uint64_t& e) const override {
        ++asked;
        b = begin;
        e = end;
        return true;
    }
    uint64_t begin, end;
    mutable int asked = 0;
};

TEST_F(CallbackRegistryTest, MemoryFilterWithoutCallbacksWantsNothing) {
    EXPECT_FALSE(registry.memory_wanted(true, 0x1000, true));
    EXPECT_FALSE(registry.memory_wanted(false, 0x1000, false));
    add_recorder(generic(CallbackType::BlockBegin, true));
    EXPECT_FALSE(registry.memory_wanted(true, 0x1000, true));
}

TEST_F(CallbackRegistryTest, MemoryFilterGatedCallbacksWantOnlyMonitoredAccessesOfTheirKind) {
    add_recorder(generic(CallbackType::MemWrite));
    EXPECT_TRUE(registry.memory_wanted(true, 0x1000, true));
    EXPECT_FALSE(registry.memory_wanted(true, 0x1000, false));
    EXPECT_FALSE(registry.memory_wanted(false, 0x1000, true));
}

TEST_F(CallbackRegistryTest, MemoryFilterUngatedCallbackWithoutWindowWantsEverything) {
    add_recorder(generic(CallbackType::MemRead, true));
    EXPECT_TRUE(registry.memory_wanted(false, 0, false));
    EXPECT_TRUE(registry.memory_wanted(false, ~uint64_t{0}, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0x1000, false));
}

TEST_F(CallbackRegistryTest, MemoryFilterWindowsBoundWhatIsWanted) {
    add(generic(CallbackType::MemWrite, true), std::make_shared<WindowedRecorder>(0x1000, 0x2000));
    EXPECT_FALSE(registry.memory_wanted(true, 0xfff, false));
    EXPECT_TRUE(registry.memory_wanted(true, 0x1000, false));
    EXPECT_TRUE(registry.memory_wanted(true, 0x1fff, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0x2000, false));
    EXPECT_TRUE(registry.memory_wanted(true, 0x1800, true));
    // A second window: their bounding range.
    add(generic(CallbackType::MemWrite, true), std::make_shared<WindowedRecorder>(0x5000, 0x5010));
    EXPECT_TRUE(registry.memory_wanted(true, 0x1000, false));
    EXPECT_TRUE(registry.memory_wanted(true, 0x500f, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0x5010, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0xfff, false));
    // A gated callback adds the monitored process's accesses, all of them.
    add_recorder(generic(CallbackType::MemWrite));
    EXPECT_TRUE(registry.memory_wanted(true, 0x9000, true));
    EXPECT_FALSE(registry.memory_wanted(true, 0x9000, false));
}

TEST_F(CallbackRegistryTest, MemoryFilterEmptyWindowWantsNothing) {
    add(generic(CallbackType::MemRead, true), std::make_shared<WindowedRecorder>(0, 0));
    EXPECT_FALSE(registry.memory_wanted(false, 0, false));
    EXPECT_FALSE(registry.memory_wanted(false, 0x1234, true));
}

TEST_F(CallbackRegistryTest, MemoryFilterFollowsWindowChangesAfterTheNotice) {
    auto windowed = std::make_shared<WindowedRecorder>(0x1000, 0x2000);
    add(generic(CallbackType::MemWrite, true), windowed);
    EXPECT_TRUE(registry.memory_wanted(true, 0x1000, false));
    const int asked = windowed->asked;
    // Steady state: the window is not asked again per access.
    EXPECT_FALSE(registry.memory_wanted(true, 0x3000, false));
    EXPECT_EQ(windowed->asked, asked);
    windowed->begin = 0x3000;
    windowed->end = 0x4000;
    pyrebox::address_windows_changed();
    EXPECT_TRUE(registry.memory_wanted(true, 0x3000, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0x1000, false));
    EXPECT_EQ(windowed->asked, asked + 1);
}

TEST_F(CallbackRegistryTest, MemoryFilterFollowsRegistrationChanges) {
    const auto id = add(generic(CallbackType::MemWrite, true), std::make_shared<Recorder>());
    EXPECT_TRUE(registry.memory_wanted(true, 0x3000, false));
    registry.remove(id);
    EXPECT_FALSE(registry.memory_wanted(true, 0x3000, false));
    // Another registry on the same thread has its own filter.
    CallbackRegistry other;
    ASSERT_TRUE(other.add(generic(CallbackType::MemWrite, true), std::make_shared<Recorder>()).ok());
    EXPECT_TRUE(other.memory_wanted(true, 0x3000, false));
    EXPECT_FALSE(registry.memory_wanted(true, 0x3000, false));
}

}  // namespace

// --- batches ---

TEST_F(CallbackRegistryTest, BatchOfAddsPublishesOnceAndChangesThePlanOnce) {
    const auto before = registry.stats();
    registry.begin_batch();
    std::vector<std::shared_ptr<Recorder>> recorders;
    for (uint64_t i = 0; i < 100; ++i) {
        recorders.push_back(add_recorder(at_address(CallbackType::InsnBegin, 0x1000 + i)));
    }
    // Nothing published yet: the plan is the one before the batch.
    EXPECT_TRUE(registry.plan()->exec_addrs.empty());
    EXPECT_EQ(registry.size(), 100u);
    EXPECT_EQ(registry.stats().publications, before.publications);
    EXPECT_EQ(changes, 0);
    ASSERT_TRUE(registry.end_batch());
    const auto after = registry.stats();
    EXPECT_EQ(after.publications - before.publications, 1u);
    EXPECT_EQ(after.plan_changes - before.plan_changes, 1u);
    EXPECT_EQ(changes, 1);
    EXPECT_EQ(registry.plan()->exec_addrs.size(), 100u);
}

TEST_F(CallbackRegistryTest, WithoutABatchEveryAddPublishes) {
    const auto before = registry.stats();
    for (uint64_t i = 0; i < 10; ++i) {
        add(at_address(CallbackType::InsnBegin, 0x1000 + i), std::make_shared<Recorder>());
    }
    const auto after = registry.stats();
    EXPECT_EQ(after.publications - before.publications, 10u);
    EXPECT_EQ(after.plan_changes - before.plan_changes, 10u);
    EXPECT_EQ(changes, 10);
}

TEST_F(CallbackRegistryTest, NestedBatchesFoldIntoTheOutermost) {
    const auto before = registry.stats();
    registry.begin_batch();
    add(generic(CallbackType::BlockBegin), std::make_shared<Recorder>());
    registry.begin_batch();
    add(generic(CallbackType::MemRead), std::make_shared<Recorder>());
    EXPECT_EQ(registry.batch_depth(), 2);
    ASSERT_TRUE(registry.end_batch());
    EXPECT_EQ(registry.stats().publications, before.publications);
    EXPECT_FALSE(registry.plan()->block_begin);
    ASSERT_TRUE(registry.end_batch());
    EXPECT_EQ(registry.batch_depth(), 0);
    EXPECT_EQ(registry.stats().publications - before.publications, 1u);
    EXPECT_EQ(changes, 1);
    EXPECT_TRUE(registry.plan()->block_begin);
    EXPECT_TRUE(registry.plan()->mem_read);
}

TEST_F(CallbackRegistryTest, ReplacingACallbackInABatchIsOneChange) {
    // What add_trigger does: the replacement, then the removal.
    const auto old_id = add(generic(CallbackType::InsnBegin), std::make_shared<Recorder>());
    const auto before = registry.stats();
    changes = 0;
    registry.begin_batch();
    add(generic(CallbackType::InsnBegin, /*all_processes=*/true), std::make_shared<Recorder>());
    ASSERT_TRUE(registry.remove(old_id));
    ASSERT_TRUE(registry.end_batch());
    EXPECT_EQ(registry.stats().publications - before.publications, 1u);
    EXPECT_EQ(changes, 1);
    EXPECT_FALSE(registry.plan()->insn_begin);
    EXPECT_TRUE(registry.plan()->insn_begin_all);
}

TEST_F(CallbackRegistryTest, BatchThatRestoresThePlanPublishesWithoutAPlanChange) {
    const auto before = registry.stats();
    registry.begin_batch();
    const auto id = add(generic(CallbackType::BlockEnd), std::make_shared<Recorder>());
    ASSERT_TRUE(registry.remove(id));
    ASSERT_TRUE(registry.end_batch());
    const auto after = registry.stats();
    EXPECT_EQ(after.publications - before.publications, 1u);
    EXPECT_EQ(after.plan_changes, before.plan_changes);
    EXPECT_EQ(changes, 0);
}

TEST_F(CallbackRegistryTest, EmptyBatchPublishesNothing) {
    const auto before = registry.stats();
    registry.begin_batch();
    ASSERT_TRUE(registry.end_batch());
    EXPECT_EQ(registry.stats().publications, before.publications);
    EXPECT_EQ(changes, 0);
}

TEST_F(CallbackRegistryTest, EndBatchWithoutABatchIsRefused) {
    EXPECT_FALSE(registry.end_batch());
    EXPECT_EQ(registry.batch_depth(), 0);
}

TEST_F(CallbackRegistryTest, InABatchAddedCallbacksWaitAndRemovedOnesStopAtOnce) {
    auto kept = add_recorder(generic(CallbackType::BlockBegin));
    auto removed = std::make_shared<Recorder>();
    const auto removed_id = add(generic(CallbackType::BlockBegin), removed);
    registry.begin_batch();
    auto added = add_recorder(generic(CallbackType::BlockBegin));
    ASSERT_TRUE(registry.remove(removed_id));
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x10), /*monitored=*/true);
    EXPECT_EQ(kept->events.size(), 1u);
    EXPECT_EQ(removed->events.size(), 0u);
    EXPECT_EQ(added->events.size(), 0u);
    ASSERT_TRUE(registry.end_batch());
    registry.dispatch(event_of(CallbackType::BlockBegin, 0x20), /*monitored=*/true);
    EXPECT_EQ(kept->events.size(), 2u);
    EXPECT_EQ(removed->events.size(), 0u);
    EXPECT_EQ(added->events.size(), 1u);
}
