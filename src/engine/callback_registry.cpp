#include "engine/callback_registry.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "base/hex.h"

namespace pyrebox {

namespace {

constexpr uint16_t kMaxOpcode = 0x3FF;  // 0F 3A xx is the highest map

std::optional<std::string> validate(const CallbackSpec& spec) {
    const auto name = std::string(callback_type_name(spec.type));
    const bool addressable =
        spec.type == CallbackType::BlockBegin || spec.type == CallbackType::InsnBegin;
    const bool module_event =
        spec.type == CallbackType::LoadModule || spec.type == CallbackType::RemoveModule;
    if (!is_engine_type(spec.type) && !is_process_event_type(spec.type) &&
        !is_device_type(spec.type)) {
        return name + " is not delivered by this version of PyREBox";
    }
    if (spec.addr && !addressable) {
        return "addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not " + name;
    }
    const bool syscall_event =
        spec.type == CallbackType::Syscall || spec.type == CallbackType::SyscallRet;
    if (spec.pgd && !spec.addr && !module_event && !syscall_event) {
        return "pgd needs addr (an address-specific BLOCK_BEGIN_CB or INSN_BEGIN_CB), "
               "a LOADMODULE_CB / REMOVEMODULE_CB or a SYSCALL_CB / SYSCALL_RET_CB";
    }
    if (spec.type == CallbackType::OpcodeRange) {
        if (spec.opcode_first > spec.opcode_last) {
            return "opcode range start " + hex(spec.opcode_first) + " is greater than end " +
                   hex(spec.opcode_last);
        }
        if (spec.opcode_last > kMaxOpcode) {
            return "opcode " + hex(spec.opcode_last) + " is beyond the highest opcode " +
                   hex(kMaxOpcode);
        }
    } else if (spec.opcode_first != 0 || spec.opcode_last != 0) {
        return "start_opcode/end_opcode apply to OPCODE_RANGE_CB only, not " + name;
    }
    return std::nullopt;
}

std::atomic<uint64_t> g_instances{0};

// Dispatches running on this thread (they nest: a callback can cause
// events), and the snapshots a refresh replaced while one was running: the
// outer loops still iterate over them.
// initial-exec: read on every event; the default TLS model of a dlopen'ed
// plugin calls __tls_get_addr each time. These are small (the static TLS
// space such libraries may use is limited).
#define PYREBOX_HOT_TLS __attribute__((tls_model("initial-exec")))
thread_local int t_dispatch_depth PYREBOX_HOT_TLS = 0;

}  // namespace

struct CallbackRegistry::Snapshot {
    std::shared_ptr<const List> lists[kCallbackTypeSlots];
    std::shared_ptr<const Plan> plan;
    // What dispatch walks: per type, the entries in registration order with
    // their handler and filter kind at hand (the lists above own them).
    enum class Kind : uint8_t { Gated, Ungated, Address, Process };
    struct Target {
        CallbackHandler* handler;
        const Entry* entry;  // live flag, spec
        Kind kind;
    };
    std::vector<Target> targets[kCallbackTypeSlots];
};

CallbackRegistry::CallbackRegistry() : instance_(++g_instances) {
    std::lock_guard<std::mutex> guard(lock_);
    republish_locked();
}

namespace {

// Per thread, allocated on the thread's first event and kept for its life
// (vCPU threads live as long as QEMU). Reached through a plain pointer so
// that the thread-local needs no construction guard on the hot path.
struct SnapshotCache {
    uint64_t instance = 0;
    uint64_t generation = 0;
    std::shared_ptr<const void> snapshot;
    std::vector<std::shared_ptr<const void>> retired;
};
thread_local SnapshotCache* t_cache PYREBOX_HOT_TLS = nullptr;

SnapshotCache& thread_cache() {
    if (t_cache == nullptr) {
        t_cache = new SnapshotCache;
    }
    return *t_cache;
}

}  // namespace

// The steady state (this thread saw the current generation) is a few loads,
// inlined into dispatch; a refresh takes the lock.
inline const CallbackRegistry::Snapshot& CallbackRegistry::current() const {
    const SnapshotCache* cache = t_cache;
    if (cache != nullptr && cache->instance == instance_ &&
        cache->generation == generation_.load(std::memory_order_acquire)) [[likely]] {
        return *static_cast<const Snapshot*>(cache->snapshot.get());
    }
    return refresh_current();
}

const CallbackRegistry::Snapshot& CallbackRegistry::refresh_current() const {
    SnapshotCache& cache = thread_cache();
    std::shared_ptr<const void> replaced;
    {
        std::lock_guard<std::mutex> guard(lock_);
        replaced = std::exchange(cache.snapshot, snapshot_);
        cache.instance = instance_;
        cache.generation = generation_.load(std::memory_order_relaxed);
        t_registry_view = {instance_, cache.generation, snapshot_->plan.get()};
    }
    // Released without the lock: the last reference to a handler may take
    // another lock (a Python handler takes the GIL). Outer dispatches on
    // this thread may still iterate over it.
    if (t_dispatch_depth > 0 && replaced) {
        cache.retired.push_back(std::move(replaced));
    }
    return *static_cast<const Snapshot*>(cache.snapshot.get());
}

__thread RegistryView t_registry_view __attribute__((tls_model("initial-exec"))) = {};
__thread MemoryFilterCache t_memory_filter __attribute__((tls_model("initial-exec"))) = {};

void CallbackRegistry::refresh_memory_filter() const {
    // Read before the windows: a change made while they are read moves
    // them again, and the next access recomputes.
    const uint64_t epoch = address_window_epoch();
    const uint64_t generation = generation_.load(std::memory_order_acquire);
    const Snapshot& snapshot = current();
    MemoryFilterCache& cache = t_memory_filter;
    for (const bool write : {false, true}) {
        MemoryFilter filter;
        uint64_t low = UINT64_MAX, high = 0;
        const auto slot = static_cast<int>(write ? CallbackType::MemWrite : CallbackType::MemRead);
        for (const Snapshot::Target& target : snapshot.targets[slot]) {
            if (target.kind == Snapshot::Kind::Gated) {
                filter.gated = true;
                continue;
            }
            uint64_t begin = 0, end = 0;
            if (!target.handler->vaddr_window(begin, end)) {
                filter.any = true;
            } else if (begin < end) {
                low = std::min(low, begin);
                high = std::max(high, end);
            }
        }
        if (low < high) {
            filter.begin = low;
            filter.size = high - low;
        }
        (write ? cache.write : cache.read) = filter;
    }
    cache.instance = instance_;
    cache.generation = generation;
    cache.epoch = epoch;
}

bool Plan::matches_opcode(uint16_t opcode) const {
    for (const auto& [first, last] : opcode_ranges) {
        if (opcode >= first && opcode <= last) {
            return true;
        }
    }
    return false;
}

Expected<CallbackRegistry::Id> CallbackRegistry::add(const CallbackSpec& spec,
                                                     std::shared_ptr<CallbackHandler> handler) {
    if (auto error = validate(spec)) {
        return Error{*error};
    }
    if (!handler) {
        return Error{"no handler given"};
    }
    std::function<void()> notify;
    Id id;
    {
        std::lock_guard<std::mutex> guard(lock_);
        id = next_id_++;
        auto entry = std::make_shared<Entry>();
        entry->id = id;
        entry->spec = spec;
        entry->handler = std::move(handler);
        const int slot = static_cast<int>(spec.type);
        auto list = lists_[slot] ? std::make_shared<List>(*lists_[slot]) : std::make_shared<List>();
        list->push_back(std::move(entry));
        lists_[slot] = std::move(list);
        ++count_;
        if (changed_locked()) {
            notify = on_change_;
        }
    }
    if (notify) {
        notify();
    }
    return id;
}

bool CallbackRegistry::remove(Id id) {
    std::function<void()> notify;
    // Released after the lock: destroying the last reference to a handler
    // may need another lock (a Python handler takes the GIL).
    std::shared_ptr<const List> replaced;
    {
        std::lock_guard<std::mutex> guard(lock_);
        bool found = false;
        for (auto& list : lists_) {
            if (!list) {
                continue;
            }
            for (size_t i = 0; i < list->size(); ++i) {
                if ((*list)[i]->id == id) {
                    (*list)[i]->live.store(false);
                    auto copy = std::make_shared<List>(*list);
                    copy->erase(copy->begin() + static_cast<long>(i));
                    replaced = std::exchange(list, std::move(copy));
                    found = true;
                    break;
                }
            }
            if (found) {
                break;
            }
        }
        if (!found) {
            return false;
        }
        --count_;
        if (changed_locked()) {
            notify = on_change_;
        }
    }
    if (notify) {
        notify();
    }
    return true;
}

bool CallbackRegistry::contains(Id id) const {
    std::lock_guard<std::mutex> guard(lock_);
    for (const auto& list : lists_) {
        if (list) {
            for (const auto& entry : *list) {
                if (entry->id == id) {
                    return true;
                }
            }
        }
    }
    return false;
}

size_t CallbackRegistry::size() const {
    std::lock_guard<std::mutex> guard(lock_);
    return count_;
}

void CallbackRegistry::dispatch(const Event& event, bool monitored, bool at_address) const {
    const int slot = static_cast<int>(event.type);
    if (slot < 0 || slot >= kCallbackTypeSlots) {
        return;
    }
    // The cache holds the snapshot while it is used: a callback that adds or
    // removes callbacks refreshes this thread's cache only on its next
    // dispatch, after this loop.
    struct Depth {
        const CallbackRegistry& registry;
        explicit Depth(const CallbackRegistry& r) : registry(r) { ++t_dispatch_depth; }
        ~Depth() {
            // Callbacks removed during this dispatch are released now, on
            // this thread, rather than at its next event.
            if (--t_dispatch_depth == 0 && t_cache != nullptr &&
                (t_cache->generation != registry.generation_.load(std::memory_order_acquire) ||
                 !t_cache->retired.empty())) [[unlikely]] {
                registry.current();
                t_cache->retired.clear();
            }
        }
    } depth(*this);
    using Kind = Snapshot::Kind;
    for (const Snapshot::Target& target : current().targets[slot]) {
        if (!target.entry->live.load(std::memory_order_relaxed)) {
            continue;  // removed during this dispatch
        }
        const CallbackSpec& spec = target.entry->spec;
        switch (target.kind) {
            case Kind::Process:
                if (spec.pgd && *spec.pgd != event.pgd) {
                    continue;
                }
                break;
            case Kind::Address:
                if (!at_address || *spec.addr != event.pc ||
                    (spec.pgd && *spec.pgd != event.pgd)) {
                    continue;
                }
                break;
            case Kind::Gated:
            case Kind::Ungated:
                if (at_address || (target.kind == Kind::Gated && !monitored)) {
                    continue;
                }
                // A system-call callback of one address space (pgd=).
                if (spec.pgd && *spec.pgd != event.pgd) {
                    continue;
                }
                if (event.type == CallbackType::OpcodeRange &&
                    (event.opcode < spec.opcode_first || event.opcode > spec.opcode_last)) {
                    continue;
                }
                break;
        }
        target.handler->deliver(event);
    }
}

std::shared_ptr<const Plan> CallbackRegistry::plan() const {
    return current().plan;
}

const Plan& CallbackRegistry::current_plan_slow() const {
    return *current().plan;
}

void CallbackRegistry::set_change_listener(std::function<void()> listener) {
    std::lock_guard<std::mutex> guard(lock_);
    on_change_ = std::move(listener);
}

void CallbackRegistry::begin_batch() {
    std::lock_guard<std::mutex> guard(lock_);
    ++batch_depth_;
}

bool CallbackRegistry::end_batch() {
    std::function<void()> notify;
    {
        std::lock_guard<std::mutex> guard(lock_);
        if (batch_depth_ == 0) {
            return false;
        }
        if (--batch_depth_ > 0 || !std::exchange(batch_dirty_, false)) {
            return true;
        }
        if (republish_locked()) {
            notify = on_change_;
        }
    }
    if (notify) {
        notify();
    }
    return true;
}

int CallbackRegistry::batch_depth() const {
    std::lock_guard<std::mutex> guard(lock_);
    return batch_depth_;
}

CallbackRegistry::Stats CallbackRegistry::stats() const {
    std::lock_guard<std::mutex> guard(lock_);
    return stats_;
}

bool CallbackRegistry::changed_locked() {
    if (batch_depth_ > 0) {
        batch_dirty_ = true;
        return false;
    }
    return republish_locked();
}

bool CallbackRegistry::republish_locked() {
    auto plan = std::make_shared<Plan>();
    for (const auto& list : lists_) {
        if (!list) {
            continue;
        }
        for (const auto& entry : *list) {
            const CallbackSpec& s = entry->spec;
            if (s.addr) {
                plan->exec_addrs.insert(*s.addr);
                continue;
            }
            // pgd= on a system-call callback: that process, monitored or not.
            const bool all = s.all_processes || s.pgd.has_value();
            plan->process_events |= is_process_event_type(s.type);
            switch (s.type) {
                case CallbackType::BlockBegin: (all ? plan->block_begin_all : plan->block_begin) = true; break;
                case CallbackType::BlockEnd: (all ? plan->block_end_all : plan->block_end) = true; break;
                case CallbackType::InsnBegin: (all ? plan->insn_begin_all : plan->insn_begin) = true; break;
                case CallbackType::InsnEnd: (all ? plan->insn_end_all : plan->insn_end) = true; break;
                case CallbackType::MemRead: plan->mem_read = true; plan->mem_all |= all; break;
                case CallbackType::MemWrite: plan->mem_write = true; plan->mem_all |= all; break;
                case CallbackType::TlbExec: (all ? plan->tlb_exec_all : plan->tlb_exec) = true; break;
                case CallbackType::Keystroke: plan->keystroke = true; break;
                case CallbackType::OpcodeRange:
                    plan->opcode_ranges.emplace_back(s.opcode_first, s.opcode_last);
                    plan->opcode_all |= all;
                    break;
                case CallbackType::Syscall: (all ? plan->syscall_all : plan->syscall) = true; break;
                case CallbackType::SyscallRet:
                    (all ? plan->syscall_ret_all : plan->syscall_ret) = true;
                    break;
                default: break;
            }
        }
    }
    const bool changed = !(*plan == *plan_);
    plan_ = std::move(plan);
    ++stats_.publications;
    stats_.plan_changes += changed ? 1 : 0;
    auto snapshot = std::make_shared<Snapshot>();
    for (int slot = 0; slot < kCallbackTypeSlots; ++slot) {
        snapshot->lists[slot] = lists_[slot];
        if (!lists_[slot]) {
            continue;
        }
        for (const auto& entry : *lists_[slot]) {
            const CallbackSpec& spec = entry->spec;
            using Kind = Snapshot::Kind;
            const Kind kind = is_process_event_type(spec.type) ? Kind::Process
                              : spec.addr                      ? Kind::Address
                              : spec.all_processes || spec.pgd ? Kind::Ungated
                                                               : Kind::Gated;
            snapshot->targets[slot].push_back({entry->handler.get(), entry.get(), kind});
        }
    }
    snapshot->plan = plan_;
    snapshot_ = std::move(snapshot);
    generation_.fetch_add(1, std::memory_order_release);
    return changed;
}

}  // namespace pyrebox
