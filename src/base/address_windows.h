// Change notice for handlers' address windows (CallbackHandler::vaddr_window).
//
// A window may depend on state outside the registry (a trigger's variables,
// set from Python or by the trigger itself). Whoever changes such state calls
// address_windows_changed(); every thread's memory pre-filter is recomputed
// at its next memory event.
#pragma once

#include <atomic>
#include <cstdint>

namespace pyrebox {

inline std::atomic<uint64_t> g_address_window_epoch{1};

inline void address_windows_changed() {
    g_address_window_epoch.fetch_add(1, std::memory_order_acq_rel);
}

inline uint64_t address_window_epoch() {
    return g_address_window_epoch.load(std::memory_order_acquire);
}

}  // namespace pyrebox
