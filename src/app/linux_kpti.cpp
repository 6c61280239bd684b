#include "app/linux_kpti.h"

#include "base/console.h"
#include "app/linux_introspection.h"
#include "app/session.h"

namespace pyrebox {

std::optional<bool> linux_kpti(Session& s) {
    if (!linux_symbols_settled(s)) {
        return std::nullopt;
    }
    auto kernel = located_linux_kernel(s);
    if (!kernel) {
        return std::nullopt;
    }
    auto kpti = (*kernel)->kpti(s.machine->physical_memory());
    if (!kpti) {
        console().write_lines("[pyrebox] warning: ",
                              kpti.error() + "; taking each CR3 value as its own address space");
        return false;
    }
    console().message(*kpti ? "Linux page-table isolation (KPTI) is on: a process's "
                              "kernel/user page-table pair is one pgd"
                            : "Linux page-table isolation (KPTI) is off");
    return *kpti;
}

}  // namespace pyrebox
