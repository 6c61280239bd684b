// Whether the guest's Linux kernel isolates page tables (KPTI), as the
// engine's KPTI source asks it (Engine::set_kpti_source).
#pragma once

#include <optional>

namespace pyrebox {

// The kernel's own answer (LinuxKernel::kpti: the X86_FEATURE_PTI bit of
// boot_cpu_data), printed once when known. nullopt while it cannot be read
// (no symbol table yet, the kernel not located yet). A kernel whose flag
// cannot be read (a symbol table without boot_cpu_data, unreadable memory)
// is taken as not isolating, with a warning. Any thread.
struct Session;

std::optional<bool> linux_kpti(Session& s);

}  // namespace pyrebox
