#include "engine/syscall_tracker.h"

namespace pyrebox {

void SyscallTracker::enter(const SyscallCall& call) {
    std::lock_guard<std::mutex> guard(lock_);
    SyscallCall c = call;
    c.serial = ++serial_;
    const Key key{c.pgd, c.sp, c.return_pc};
    pending_[key] = c;
    order_.emplace_back(c.serial, key);
    if (c.has_child) {
        children_.emplace(ChildKey{c.child_sp, c.return_pc},
                          ChildWait{c.pgd, c.child_same_pgd, c});
    }
    while (pending_.size() + children_.size() > kMaxPending) {
        drop_oldest_locked();
    }
    // The order queue keeps entries already answered until they reach its
    // front; keep it bounded by what is pending.
    while (order_.size() > 2 * kMaxPending) {
        order_.pop_front();
    }
}

void SyscallTracker::drop_oldest_locked() {
    while (!order_.empty()) {
        const auto [serial, key] = order_.front();
        order_.pop_front();
        auto it = pending_.find(key);
        if (it != pending_.end() && it->second.serial == serial) {
            pending_.erase(it);
            ++dropped_;
            return;
        }
    }
    if (!children_.empty()) {  // only child waits are left
        children_.erase(children_.begin());
        ++dropped_;
    }
}

std::optional<SyscallCall> SyscallTracker::resume(uint64_t pgd, uint64_t sp, uint64_t pc,
                                                   uint64_t retval, bool& child) {
    std::lock_guard<std::mutex> guard(lock_);
    child = false;
    if (auto it = pending_.find(Key{pgd, sp, pc}); it != pending_.end()) {
        SyscallCall c = it->second;
        if (c.has_child && c.child_same_pgd && c.child_sp == sp && retval == 0) {
            // vfork / clone(CLONE_VM) on the caller's stack: this is the
            // child; the parent returns later at the same key.
            forget_child_locked(c.serial);
            child = true;
            c.has_child = false;
            it->second.has_child = false;
            return c;
        }
        pending_.erase(it);
        if (c.has_child && static_cast<int64_t>(retval) < 0) {
            forget_child_locked(c.serial);  // no child was made
        }
        return c;
    }
    auto [first, last] = children_.equal_range(ChildKey{sp, pc});
    for (auto it = first; it != last; ++it) {
        const ChildWait& w = it->second;
        if (w.same_pgd ? w.parent_pgd == pgd : w.parent_pgd != pgd) {
            SyscallCall c = w.call;
            c.pgd = pgd;
            children_.erase(it);
            child = true;
            return c;
        }
    }
    return std::nullopt;
}

void SyscallTracker::forget_child_locked(uint64_t serial) {
    for (auto it = children_.begin(); it != children_.end(); ++it) {
        if (it->second.call.serial == serial) {
            children_.erase(it);
            return;
        }
    }
}

void SyscallTracker::clear() {
    std::lock_guard<std::mutex> guard(lock_);
    pending_.clear();
    children_.clear();
    order_.clear();
}

size_t SyscallTracker::pending() const {
    std::lock_guard<std::mutex> guard(lock_);
    return pending_.size() + children_.size();
}

uint64_t SyscallTracker::dropped() const {
    std::lock_guard<std::mutex> guard(lock_);
    return dropped_;
}

}  // namespace pyrebox
