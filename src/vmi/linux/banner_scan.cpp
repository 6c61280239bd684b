#include "vmi/linux/banner_scan.h"

#include <cstring>
#include <string_view>

namespace pyrebox::vmi::linux_guest {

namespace {

constexpr std::string_view kPrefix = "Linux version ";
constexpr uint64_t kChunk = 2ull << 20;
constexpr uint64_t kPage = 4096;

// The banner starting at buf[at], if the bytes there have its shape; `end`
// bounds what is readable.
std::optional<std::string> banner_at(const char* buf, size_t at, size_t end) {
    size_t i = at + kPrefix.size();
    const size_t limit = std::min(end, at + kMaxBannerLength + 1);
    for (; i < limit; ++i) {
        const auto c = static_cast<unsigned char>(buf[i]);
        if (c == '\n') {
            if (i + 1 < end && buf[i + 1] == '\0') {
                return std::string(buf + at, i + 1 - at);
            }
            return std::nullopt;
        }
        if (c < 0x20 || c > 0x7e) {
            return std::nullopt;
        }
    }
    return std::nullopt;
}

// Reads [paddr, paddr + len) into buf; unreadable pages read as zeros
// (which can never be part of a banner). False when nothing was readable.
bool read_chunk(PhysicalMemory& mem, uint64_t paddr, char* buf, size_t len) {
    if (mem.read(paddr, buf, len)) {
        return true;
    }
    bool any = false;
    for (size_t off = 0; off < len; off += kPage) {
        const size_t n = std::min<size_t>(kPage, len - off);
        if (mem.read(paddr + off, buf + off, n)) {
            any = true;
        } else {
            std::memset(buf + off, 0, n);
        }
    }
    return any;
}

}  // namespace

std::optional<FoundBanner> find_linux_banner(
    PhysicalMemory& mem, const std::vector<std::pair<uint64_t, uint64_t>>& ram) {
    // Each step reads a chunk plus the longest banner, so a banner that
    // crosses a chunk's end is seen whole in the step where it starts.
    const size_t overlap = kMaxBannerLength + 2;
    std::string buf(kChunk + overlap, '\0');
    for (const auto& [start, size] : ram) {
        const uint64_t end = start + size;
        for (uint64_t pa = start; pa < end; pa += kChunk) {
            const size_t len = static_cast<size_t>(std::min<uint64_t>(kChunk + overlap, end - pa));
            if (!read_chunk(mem, pa, buf.data(), len)) {
                continue;
            }
            const size_t starts = static_cast<size_t>(std::min<uint64_t>(kChunk, end - pa));
            std::string_view view(buf.data(), len);
            for (size_t at = view.find(kPrefix); at != std::string_view::npos && at < starts;
                 at = view.find(kPrefix, at + 1)) {
                if (auto text = banner_at(buf.data(), at, len)) {
                    return FoundBanner{std::move(*text), pa + at};
                }
            }
        }
    }
    return std::nullopt;
}

}  // namespace pyrebox::vmi::linux_guest
