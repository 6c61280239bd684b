// The registry of callbacks, and the instrumentation plan derived from it.
//
// Contracts:
// - add/remove may be called from any thread at any time, including from
//   inside a callback being dispatched (removing itself): dispatch works on a
//   snapshot of the list and skips entries removed since it was taken.
// - Every change recomputes the Plan (what translation must instrument). When
//   the plan differs from the previous one, the change listener runs (the
//   QEMU boundary flushes translated code so the new plan applies to code
//   already translated).
// - Batches: between begin_batch() and the matching end_batch(), add and
//   remove change the lists (contains/size see them at once) but publish
//   nothing; the outermost end_batch() publishes once, so a batch makes at
//   most one plan change and one listener call. Nested batches fold into
//   the outermost. Until it ends, dispatch keeps using the last published
//   snapshot: callbacks added in a batch fire only after it, removed ones
//   stop at once (their entry is marked dead).
// - Handlers are owned by the registry entry (shared_ptr): a handler removed
//   while it is being dispatched stays alive until that dispatch returns.
// - Dispatch and plan() take no lock and touch no shared reference count in
//   the steady state: every change publishes an immutable snapshot (lists
//   and plan) under a new generation number, and each thread keeps its own
//   reference to the snapshot it last saw, refreshed (under the lock) only
//   when the generation moved. Events are on the hottest paths (every
//   memory access with MEM_* callbacks), so this matters.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_set>
#include <utility>
#include <vector>

#include "base/address_windows.h"
#include "base/callback_types.h"
#include "base/event.h"
#include "base/expected.h"

namespace pyrebox {

class CallbackHandler {
public:
    virtual ~CallbackHandler() = default;
    // Thread: the vCPU thread the event happened on. Must not throw.
    virtual void deliver(const Event& event) = 0;
    // MEM_READ / MEM_WRITE handlers: true when the handler drops, without
    // any side effect, every event whose vaddr is outside [begin, end)
    // (begin >= end: it drops every event), so that accesses outside every
    // handler's window need not be dispatched at all. False (the default):
    // any access may matter. Called on vCPU threads when the registry or the
    // address-window epoch (base/address_windows.h) changed; must not throw.
    virtual bool vaddr_window(uint64_t& /*begin*/, uint64_t& /*end*/) const { return false; }
};

// A conservative pre-filter over one kind of memory access (reads or
// writes): false only when no callback would take the access.
struct MemoryFilter {
    bool any = false;    // a handler without a window takes accesses of every process
    bool gated = false;  // a handler takes the accesses of monitored processes
    uint64_t begin = 0;  // [begin, begin + size): the union of the other
    uint64_t size = 0;   // handlers' windows (their bounding range)
    bool wants(uint64_t vaddr, bool monitored) const {
        return any || vaddr - begin < size || (monitored && gated);
    }
};

struct Plan;

// This thread's view of the registry snapshot it holds (see current()): the
// plan, read inline on every block and instruction event.
struct RegistryView {
    uint64_t instance;  // 0: none
    uint64_t generation;
    const Plan* plan;
};
extern __thread RegistryView t_registry_view __attribute__((tls_model("initial-exec")));

// This thread's memory pre-filters and what they were computed from.
// Plain data in __thread storage with the initial-exec model: read on every
// memory access, inline, without a TLS wrapper call.
struct MemoryFilterCache {
    uint64_t instance;  // 0: never computed
    uint64_t generation;
    uint64_t epoch;
    MemoryFilter read;
    MemoryFilter write;
};
extern __thread MemoryFilterCache t_memory_filter __attribute__((tls_model("initial-exec")));

struct CallbackSpec {
    CallbackType type = CallbackType::BlockBegin;
    // BLOCK_BEGIN / INSN_BEGIN only: fire at this address, monitored or not.
    std::optional<uint64_t> addr;
    // With addr: only in this address space (normalised pgd).
    std::optional<uint64_t> pgd;
    // OPCODE_RANGE only: inclusive range in QEMU's opcode numbering.
    uint16_t opcode_first = 0;
    uint16_t opcode_last = 0;
    // Deliver events of every process, not only monitored ones (callbacks
    // with a native trigger, which filters itself).
    bool all_processes = false;
};

// What translation must instrument. Immutable once published.
struct Plan {
    // Per-type "deliver for monitored processes" needs.
    bool block_begin = false;
    bool block_end = false;
    bool insn_begin = false;
    bool insn_end = false;
    bool mem_read = false;
    bool mem_write = false;
    bool tlb_exec = false;
    // KEYSTROKE: reads of the keyboard data port are instrumented (in every
    // process; the byte read is known when the next instruction starts).
    bool keystroke = false;
    // The same, for callbacks that want every process (ungated).
    bool block_begin_all = false;
    bool block_end_all = false;
    bool insn_begin_all = false;
    bool insn_end_all = false;
    bool mem_all = false;
    bool opcode_all = false;
    // TLB_EXEC in every address space (PyREBox's default; the gated
    // tlb_exec is the monitored-only option).
    bool tlb_exec_all = false;
    // SYSCALL / SYSCALL_RET: monitored processes, or (_all) every process.
    bool syscall = false;
    bool syscall_all = false;
    bool syscall_ret = false;
    bool syscall_ret_all = false;
    bool any_syscall_entry() const { return syscall || syscall_all; }
    bool any_syscall_return() const { return syscall_ret || syscall_ret_all; }
    bool any_syscall() const { return any_syscall_entry() || any_syscall_return(); }
    bool syscall_every_process() const { return syscall_all || syscall_ret_all; }
    // Addresses with address-specific BLOCK_BEGIN / INSN_BEGIN callbacks.
    std::unordered_set<uint64_t> exec_addrs;
    // Some CREATEPROC/REMOVEPROC/LOADMODULE/REMOVEMODULE callback exists
    // (Linux introspection then tracks processes and modules).
    bool process_events = false;
    // OPCODE_RANGE ranges (inclusive), merged as registered.
    std::vector<std::pair<uint16_t, uint16_t>> opcode_ranges;

    bool matches_opcode(uint16_t opcode) const;
    bool any_end_events() const {
        return block_end || insn_end || block_end_all || insn_end_all ||
               !opcode_ranges.empty() || keystroke;
    }
    bool operator==(const Plan& other) const = default;
};

class CallbackRegistry {
public:
    using Id = uint64_t;

    CallbackRegistry();
    CallbackRegistry(const CallbackRegistry&) = delete;
    CallbackRegistry& operator=(const CallbackRegistry&) = delete;

    // Validates the spec (which fields apply to the type, opcode range order
    // and bounds); an invalid spec registers nothing.
    Expected<Id> add(const CallbackSpec& spec, std::shared_ptr<CallbackHandler> handler);
    // False when `id` is not registered.
    bool remove(Id id);
    bool contains(Id id) const;
    size_t size() const;

    // Delivers `event` to every live callback of event.type whose filters
    // match: gated ones only when `monitored`; address-specific ones only
    // when `at_address` and the address/pgd match (they never fire from the
    // generic path, and generic ones never from the address path).
    // Process and module events reach every callback of their type whose
    // pgd (LOADMODULE/REMOVEMODULE only) is unset or equals event.pgd.
    void dispatch(const Event& event, bool monitored, bool at_address = false) const;

    // Whether some MEM_READ (write false) or MEM_WRITE callback may take an
    // access at vaddr on a vCPU whose process is (not) monitored. False only
    // when dispatch would deliver it to no handler, or only to handlers
    // whose address window excludes it. Per-thread, inline, no lock.
    bool memory_wanted(bool write, uint64_t vaddr, bool monitored) const {
        const MemoryFilterCache& c = t_memory_filter;
        if (c.instance != instance_ ||
            c.generation != generation_.load(std::memory_order_acquire) ||
            c.epoch != address_window_epoch()) [[unlikely]] {
            refresh_memory_filter();
        }
        return (write ? c.write : c.read).wants(vaddr, monitored);
    }

    std::shared_ptr<const Plan> plan() const;
    // The same without a reference count, for the hot paths: valid until
    // this thread's next call into the registry (dispatch included).
    const Plan& current_plan() const {
        const RegistryView& view = t_registry_view;
        if (view.instance == instance_ &&
            view.generation == generation_.load(std::memory_order_acquire)) [[likely]] {
            return *view.plan;
        }
        return current_plan_slow();
    }
    void set_change_listener(std::function<void()> listener);

    // See the batch contract at the top. end_batch() returns false (and
    // does nothing) when no batch is open.
    void begin_batch();
    bool end_batch();
    int batch_depth() const;

    // Counters since construction: snapshots published (each add/remove
    // outside a batch, each outermost batch that changed something) and
    // plan changes (each one calls the change listener).
    struct Stats {
        uint64_t publications = 0;
        uint64_t plan_changes = 0;
    };
    Stats stats() const;

private:
    struct Snapshot;
    // The current snapshot, through this thread's cache.
    const Snapshot& current() const;
    const Plan& current_plan_slow() const;
    // current()'s slow path: takes this thread's reference to the snapshot.
    const Snapshot& refresh_current() const;

    struct Entry {
        Id id;
        CallbackSpec spec;
        std::shared_ptr<CallbackHandler> handler;
        std::atomic<bool> live{true};
    };
    using List = std::vector<std::shared_ptr<Entry>>;

    // Recomputes this thread's t_memory_filter from the current snapshot and
    // the handlers' windows.
    void refresh_memory_filter() const;

    // Rebuilds the plan; returns true when it changed. Caller holds lock_.
    bool republish_locked();
    // After a change to the lists: publishes (true when the plan changed),
    // or, inside a batch, only records that the outermost end must.
    bool changed_locked();

    mutable std::mutex lock_;
    std::shared_ptr<const List> lists_[kCallbackTypeSlots];
    std::shared_ptr<const Plan> plan_ = std::make_shared<Plan>();
    std::shared_ptr<const Snapshot> snapshot_;
    std::atomic<uint64_t> generation_{0};
    // Tells this registry's snapshots from another's in the thread caches.
    const uint64_t instance_;
    std::function<void()> on_change_;
    Id next_id_ = 1;
    size_t count_ = 0;
    int batch_depth_ = 0;
    bool batch_dirty_ = false;  // the lists changed inside the open batch
    Stats stats_;
};

}  // namespace pyrebox
