// Guest memory for the fuzz harnesses: the fuzzer's input as physical memory
// from address 0 (or a chosen base), zero-padded to whole pages, so a page
// reads entirely or not at all, as in the unit tests' FakeRam. Nothing
// beyond the input's last page reads.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "vmi/paging.h"

namespace pyrebox::fuzz {

class FlatRam : public vmi::PhysicalMemory {
public:
    FlatRam(const uint8_t* data, size_t size, uint64_t base = 0, bool writable = false)
        : base_(base), writable_(writable), bytes_((size + 4095) & ~size_t{4095}, 0) {
        if (size > 0) {
            std::memcpy(bytes_.data(), data, size);
        }
    }

    bool read(uint64_t paddr, void* buf, size_t len) override {
        if (!in_range(paddr, len)) {
            return false;
        }
        if (len > 0) {
            std::memcpy(buf, bytes_.data() + (paddr - base_), len);
        }
        return true;
    }

    // Writable only when constructed so (the paging harness checks
    // write_virtual); the walkers under test must never write.
    bool write(uint64_t paddr, const void* buf, size_t len) override {
        if (!writable_ || !in_range(paddr, len)) {
            return false;
        }
        if (len > 0) {
            std::memcpy(bytes_.data() + (paddr - base_), buf, len);
        }
        return true;
    }

    bool in_range(uint64_t paddr, size_t len) const {
        return paddr >= base_ && paddr - base_ <= bytes_.size() &&
               len <= bytes_.size() - (paddr - base_);
    }

    uint64_t base() const { return base_; }
    size_t size() const { return bytes_.size(); }

    // The little-endian value of `len` bytes at `paddr` (0 where unbacked).
    uint64_t get(uint64_t paddr, size_t len = 8) const {
        uint64_t v = 0;
        for (size_t i = len; i-- > 0;) {
            const uint64_t a = paddr + i;
            v = (v << 8) | (in_range(a, 1) ? bytes_[a - base_] : 0);
        }
        return v;
    }

private:
    uint64_t base_;
    bool writable_;
    std::vector<uint8_t> bytes_;
};

// Aborts (a libFuzzer finding) when a documented property of a result does
// not hold: a wrong answer is a bug as much as a crash is.
#define FUZZ_CHECK(cond)                                                           \
    do {                                                                           \
        if (!(cond)) {                                                             \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, \
                         #cond);                                                   \
            std::abort();                                                          \
        }                                                                          \
    } while (0)

}  // namespace pyrebox::fuzz
