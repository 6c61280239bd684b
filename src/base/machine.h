// Access to the emulated machine's state, as the core and the bindings need
// it. Implemented by the QEMU boundary (src/qemu/machine.cpp); tests give a
// fake. Errors are values naming the address or register.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "base/x86_paging.h"

namespace pyrebox {

class Machine {
public:
    virtual ~Machine() = default;

    virtual int num_cpus() const = 0;
    // Register names as QEMU exposes them for this target (gdb order).
    virtual std::vector<std::string> register_names() const = 0;
    // Reads a register of vCPU `cpu` (little-endian value; wider registers
    // are truncated to 64 bits: use read_register_bytes for them).
    virtual Expected<uint64_t> read_register(int cpu, const std::string& name) = 0;
    virtual Expected<std::string> read_register_bytes(int cpu, const std::string& name) = 0;
    // Writes a register. Writing the program counter from inside a callback
    // redirects execution once the callback returns.
    virtual Expected<bool> write_register(int cpu, const std::string& name, uint64_t value) = 0;
    // QEMU's full-state dump of vCPU `cpu` (real EFLAGS, segment caches,
    // descriptor tables), as text.
    virtual Expected<std::string> dump_state(int cpu) = 0;

    virtual PhysicalMemory& physical_memory() = 0;
    // The guest-physical ranges backed by RAM or ROM (not MMIO, not
    // unassigned), as sorted, merged [start, end) pairs.
    virtual Expected<std::vector<std::pair<uint64_t, uint64_t>>> memory_map() {
        return Error{"this QEMU does not expose its memory map"};
    }
    // Paging mode vCPU `cpu` is in now (CR0/CR4/EFER).
    virtual PagingMode paging_mode(int cpu) = 0;

    virtual Expected<uint64_t> io_read(uint32_t port, int size) = 0;
    virtual Expected<bool> io_write(uint32_t port, int size, uint64_t value) = 0;
    // True on a vCPU thread inside a PyREBox callback: the VM cannot be
    // stopped from there until the callback returns.
    virtual bool in_callback() const = 0;

    // The vCPU whose callback this thread is running, or -1 (not inside a
    // callback, or not a vCPU thread).
    virtual int callback_vcpu() const { return -1; }
    // Inside a callback: keeps every other vCPU from executing guest code
    // until thaw_other_vcpus(). Returns false when that is not possible
    // here (then nothing was done). Must be called without the GIL.
    virtual bool freeze_other_vcpus() { return false; }
    virtual void thaw_other_vcpus() {}
    // Stops the guest's clock (virtual time and the TSC), as pausing the VM
    // does, until start_guest_clock(): time spent in a shell opened from a
    // callback is not seen by the guest. Returns false when that is not
    // possible here (then nothing was done). Must be called without the GIL.
    // start_guest_clock() leaves the clock stopped when the VM was stopped
    // meanwhile (a savevm/loadvm queued from the shell waits for the
    // callback to return): resuming the VM starts it then, so a snapshot
    // taken there holds the clock exactly as one taken with `stop`.
    virtual bool stop_guest_clock() { return false; }
    virtual void start_guest_clock() {}
};

}  // namespace pyrebox
