// CallbackSpec builders shared by the registry and engine tests.
#pragma once

#include <cstdint>
#include <optional>

#include "engine/callback_registry.h"

namespace pyrebox::testing {

inline CallbackSpec generic(CallbackType type, bool all_processes = false) {
    CallbackSpec spec;
    spec.type = type;
    spec.all_processes = all_processes;
    return spec;
}

inline CallbackSpec at_address(CallbackType type, uint64_t addr,
                               std::optional<uint64_t> pgd = std::nullopt) {
    CallbackSpec spec;
    spec.type = type;
    spec.addr = addr;
    spec.pgd = pgd;
    return spec;
}

inline CallbackSpec opcode_range(uint16_t first, uint16_t last, bool all_processes = false) {
    CallbackSpec spec;
    spec.type = CallbackType::OpcodeRange;
    spec.opcode_first = first;
    spec.opcode_last = last;
    spec.all_processes = all_processes;
    return spec;
}

}  // namespace pyrebox::testing
