#include "app/machine_resume.h"

#include <cstdio>
#include <set>
#include <string>

#include "base/console.h"
#include "app/session.h"

namespace pyrebox {

namespace {

void prune_monitored(Session& s) {
    if (!s.linux_kernel || !s.linux_kernel->located()) {
        return;
    }
    const auto monitored = s.monitored.list();
    if (monitored.empty()) {
        return;
    }
    auto procs = s.linux_kernel->processes(s.machine->physical_memory(), s.engine->kpti());
    if (!procs) {
        return;  // keep the set as it is when the list cannot be read
    }
    std::set<uint64_t> alive;
    for (const auto& p : *procs) {
        alive.insert(p.pgd);
    }
    std::string dropped;
    for (uint64_t pgd : monitored) {
        if (pgd != 0 && alive.count(pgd) == 0) {
            s.engine->stop_monitoring(pgd);
            char text[24];
            std::snprintf(text, sizeof text, "%s0x%llx", dropped.empty() ? "" : ", ",
                          static_cast<unsigned long long>(pgd));
            dropped += text;
        }
    }
    if (!dropped.empty()) {
        console().message("no process has pgd " + dropped +
                          " after the VM resumed (loadvm?): no longer monitored");
    }
}

}  // namespace

void on_machine_resume(Session& s) {
    s.vm_started.store(true);
    if (!s.engine || !s.machine) {
        return;
    }
    for (int cpu = 0; cpu < s.machine->num_cpus() && cpu < s.engine->max_vcpus(); ++cpu) {
        auto cr3 = s.machine->read_register(cpu, "cr3");
        if (cr3) {
            s.engine->resync(cpu, *cr3, s.machine->paging_mode(cpu));
        }
    }
    s.process_events.resync();
    prune_monitored(s);
}

}  // namespace pyrebox
