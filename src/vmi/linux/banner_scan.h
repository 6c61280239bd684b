// Finding the running kernel's linux_banner in guest physical memory with
// no symbol table: the first step of building a table for a kernel nobody
// prepared one for (its text names the kernel, so it keys the table cache).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "vmi/paging.h"

namespace pyrebox::vmi::linux_guest {

struct FoundBanner {
    std::string text;  // "Linux version ...\n", without the NUL
    uint64_t paddr;
};

// The longest banner accepted, NUL excluded (the kernel's is ~150 bytes;
// a compiler string can make it longer).
constexpr size_t kMaxBannerLength = 1024;

// The lowest physical address in `ram` (pairs of start, size) holding
// linux_banner's shape: "Linux version ", printable ASCII, "\n", NUL, at
// most kMaxBannerLength bytes. The kernel log keeps copies of the text but
// not that ending. Unreadable pages are skipped. Reads at most the sizes
// given, in 2 MiB steps.
std::optional<FoundBanner> find_linux_banner(PhysicalMemory& mem,
                                             const std::vector<std::pair<uint64_t, uint64_t>>& ram);

}  // namespace pyrebox::vmi::linux_guest
