// The set of monitored processes, by normalised pgd.
//
// Thread-safe. Read on context switches (vCPU threads), written by scripts.
#pragma once

#include <cstdint>
#include <mutex>
#include <unordered_set>
#include <vector>

namespace pyrebox {

class MonitoredSet {
public:
    // True when the pgd was not monitored before.
    bool add(uint64_t pgd);
    // True when the pgd was monitored.
    bool remove(uint64_t pgd);
    bool contains(uint64_t pgd) const;
    std::vector<uint64_t> list() const;

private:
    mutable std::mutex lock_;
    std::unordered_set<uint64_t> pgds_;
};

}  // namespace pyrebox
