// Guest RAM for unit tests: the pages a test writes, zero-filled on first
// touch; reading an untouched page fails like unbacked physical memory.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

#include "vmi/paging.h"

namespace pyrebox::testing {

class FakeRam : public vmi::PhysicalMemory {
public:
    bool read(uint64_t paddr, void* buf, size_t len) override {
        auto* out = static_cast<uint8_t*>(buf);
        for (size_t i = 0; i < len; ++i) {
            auto it = pages_.find((paddr + i) & ~0xFFFull);
            if (it == pages_.end()) {
                return false;
            }
            out[i] = it->second[(paddr + i) & 0xFFF];
        }
        return true;
    }

    // Read-only: the code under test must not write guest memory.
    bool write(uint64_t, const void*, size_t) override { return false; }

    // Stores the low `size` bytes of `value`, little-endian.
    void put(uint64_t paddr, uint64_t value, size_t size = 8) {
        for (size_t i = 0; i < size; ++i) {
            byte(paddr + i) = static_cast<uint8_t>(value >> (8 * i));
        }
    }

    // Stores `s` with its terminating NUL.
    void put_string(uint64_t paddr, const std::string& s) {
        for (size_t i = 0; i <= s.size(); ++i) {
            byte(paddr + i) = i < s.size() ? static_cast<uint8_t>(s[i]) : 0;
        }
    }

private:
    uint8_t& byte(uint64_t paddr) {
        auto [it, inserted] = pages_.try_emplace(paddr & ~0xFFFull);
        if (inserted) {
            it->second.fill(0);
        }
        return it->second[paddr & 0xFFF];
    }

    std::map<uint64_t, std::array<uint8_t, 4096>> pages_;
};

}  // namespace pyrebox::testing
