// A bare QEMU TCG plugin (not PyREBox) that calls an empty C function at the
// start of every translation block, to measure what QEMU itself charges for
// a per-block plugin callback: the floor under any per-block trigger.
//
//   -plugin libpyrebox_bench_floor.so[,regs=none|rw][,mem=w]
//
// regs=rw registers the callback as PyREBox does (registers readable and
// writable in the callback, which makes QEMU save and reload the guest
// registers around the call); regs=none (default) as cheaply as QEMU allows.
// mem=w instead calls an empty function after every store of every
// instruction (the floor under MEM_WRITE callbacks that see every process).
// At exit it prints "BENCH events=<blocks or stores>" on stderr.
#include <cstdio>
#include <cstring>

#include "qemu/plugin_api.h"

extern "C" {
__attribute__((visibility("default"))) int qemu_plugin_version = 4;
}

namespace {

qemu_plugin_cb_flags g_flags = QEMU_PLUGIN_CB_NO_REGS;
bool g_stores = false;

// One counter per vCPU, each on its own cache line: only that vCPU's thread
// writes it, so no atomic is needed; read at exit.
constexpr unsigned kMaxVcpus = 256;
struct alignas(64) Counter {
    unsigned long long blocks = 0;
};
Counter g_counters[kMaxVcpus];

void on_block(unsigned int vcpu, void* /*udata*/) {
    ++g_counters[vcpu % kMaxVcpus].blocks;
}

void on_store(unsigned int vcpu, qemu_plugin_meminfo_t /*info*/, uint64_t /*vaddr*/,
              void* /*udata*/) {
    ++g_counters[vcpu % kMaxVcpus].blocks;
}

void on_translate(qemu_plugin_id_t /*id*/, qemu_plugin_tb* tb) {
    if (!g_stores) {
        qemu_plugin_register_vcpu_tb_exec_cb(tb, on_block, g_flags, nullptr);
        return;
    }
    const size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; ++i) {
        qemu_plugin_register_vcpu_mem_cb(qemu_plugin_tb_get_insn(tb, i), on_store, g_flags,
                                         QEMU_PLUGIN_MEM_W, nullptr);
    }
}

void on_exit(qemu_plugin_id_t /*id*/, void* /*udata*/) {
    unsigned long long total = 0;
    for (const Counter& c : g_counters) {
        total += c.blocks;
    }
    std::fprintf(stderr, "BENCH events=%llu\n", total);
}

}  // namespace

extern "C" __attribute__((visibility("default"))) int qemu_plugin_install(
    qemu_plugin_id_t id, const qemu_info_t* /*info*/, int argc, char** argv) {
    for (int i = 0; i < argc; ++i) {
        if (std::strcmp(argv[i], "regs=rw") == 0) {
            g_flags = QEMU_PLUGIN_CB_RW_REGS;
        } else if (std::strcmp(argv[i], "mem=w") == 0) {
            g_stores = true;
        } else if (std::strcmp(argv[i], "regs=none") != 0) {
            std::fprintf(stderr, "floor plugin: unknown argument %s (regs=none|rw, mem=w)\n",
                         argv[i]);
            return -1;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_exit, nullptr);
    return 0;
}
