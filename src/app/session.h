// The process-wide PyREBox state shared by the QEMU boundary and the
// bindings: the callback registry, the monitored set, the engine and the
// machine accessor. Created once, by the plugin entry at install, which hands
// it to the QEMU boundary, the Python bindings and the trigger SDK; lives
// until the process ends. There is no global way to reach it.
#pragma once

#include <atomic>
#include <cstdint>
#include <future>
#include <memory>
#include <string>

#include "engine/callback_registry.h"
#include "engine/engine.h"
#include "app/kernel_table.h"
#include "base/machine.h"
#include "engine/monitored_set.h"
#include "app/process_events.h"
#include "vmi/linux/linux_kernel.h"

namespace pyrebox {

struct Session {
    CallbackRegistry registry;
    MonitoredSet monitored;
    std::unique_ptr<Engine> engine;  // set at install
    Machine* machine = nullptr;      // set at install; owned by the boundary
    bool is_64bit = true;            // qemu-system-x86_64 vs qemu-system-i386
    std::string qmp_path;            // plugin argument qmp= (empty: none)
    bool nic_observed = false;       // plugin arguments nic_send= / nic_recv= given

    // Linux introspection: the plugin's isf= and ram= arguments; the kernel
    // once its symbol table is loaded (located in memory on first use).
    std::string isf_path;
    std::atomic<bool> vm_started{false};  // QEMU's main loop has started the VM once
    uint64_t ram_bytes = 0;
    // The console server's socket and the QMP socket it uses (plugin
    // arguments console= and console_qmp=); empty when not given.
    std::string console_path;
    std::string console_qmp_path;
    std::unique_ptr<vmi::linux_guest::LinuxKernel> linux_kernel;
    std::string linux_off_reason;  // why linux_kernel is null, for messages
    std::string linux_locate_error;  // a final failure to locate the kernel
    // The symbol table loads in the background (a large ISF takes a few
    // hundred ms and is not needed until a script asks): the first use waits.
    std::shared_future<void> linux_loading;
    // With no table given: builds one from guest memory once the kernel runs.
    TableFromMemory table_from_memory{*this};
    // Translation-cache flushes the plugin queued (plan changes that
    // retranslate code), for the registry_stats binding.
    std::atomic<uint64_t> flushes_requested{0};
    // CREATEPROC / REMOVEPROC / LOADMODULE / REMOVEMODULE delivery.
    ProcessEvents process_events{*this};
};

}  // namespace pyrebox
