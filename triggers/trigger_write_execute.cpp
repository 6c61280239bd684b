/*
 * Write-then-execute detection: a block that starts in a user-space page the
 * same process wrote earlier reaches Python (BLOCK_BEGIN); nothing else does.
 * Attach it to two callbacks of one script: MEM_WRITE_CB (records the
 * written pages, never calls Python; set its trigger variable
 * "is_write_callback" to 1) and BLOCK_BEGIN_CB (reports execution from
 * them). Both share this library's state. Kernel-space pages are left out:
 * the kernel patches its own code at run time.
 */
#include <mutex>
#include <set>
#include <utility>

extern "C" {
#include "qemu_glue.h"
}
#include "callbacks.h"
#include "trigger_helpers.h"

namespace {
std::mutex lock;
std::set<std::pair<pyrebox_target_ulong, pyrebox_target_ulong>> written;  // (pgd, page)
const pyrebox_target_ulong kPageMask = ~(pyrebox_target_ulong)0xfff;
}  // namespace

extern "C" {

callback_type_t get_type() { return BLOCK_BEGIN_CB; }

int accepts_type(callback_type_t type) { return type == BLOCK_BEGIN_CB || type == MEM_WRITE_CB; }

int trigger(callback_handle_t handle, callback_params_t params) {
    if (get_var(handle, "is_write_callback") != nullptr) {
        const pyrebox_target_ulong vaddr = params.mem_write_params.vaddr;
        if (vaddr <= PYREBOX_USER_SPACE_END) {
            const pyrebox_target_ulong pgd = get_running_process(params.mem_write_params.cpu_index);
            std::lock_guard<std::mutex> guard(lock);
            written.insert({pgd, vaddr & kPageMask});
        }
        return 0;
    }
    const pyrebox_target_ulong pc = get_tb_addr(params.block_begin_params.tb);
    if (pc > PYREBOX_USER_SPACE_END) {
        return 0;
    }
    const pyrebox_target_ulong pgd = get_pgd(params.block_begin_params.cpu);
    std::lock_guard<std::mutex> guard(lock);
    return written.count({pgd, pc & kPageMask}) != 0;
}

void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
}
