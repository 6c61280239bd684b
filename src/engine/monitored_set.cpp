#include "engine/monitored_set.h"

#include <algorithm>

namespace pyrebox {

bool MonitoredSet::add(uint64_t pgd) {
    std::lock_guard<std::mutex> guard(lock_);
    return pgds_.insert(pgd).second;
}

bool MonitoredSet::remove(uint64_t pgd) {
    std::lock_guard<std::mutex> guard(lock_);
    return pgds_.erase(pgd) != 0;
}

bool MonitoredSet::contains(uint64_t pgd) const {
    std::lock_guard<std::mutex> guard(lock_);
    return pgds_.count(pgd) != 0;
}

std::vector<uint64_t> MonitoredSet::list() const {
    std::lock_guard<std::mutex> guard(lock_);
    std::vector<uint64_t> out(pgds_.begin(), pgds_.end());
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace pyrebox
