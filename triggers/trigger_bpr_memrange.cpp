/*
 * Range breakpoint (MEM_READ_CB): only memory accesses in [begin, end) of
 * address space pgd reach Python. Variables (set with set_trigger_var):
 *   begin, end   the virtual range
 *   pgd          the process, or (pyrebox_target_ulong)-1 for any
 * Until all three are set, nothing passes. The range is also exported as
 * the trigger's vaddr_window, so accesses outside it never reach the trigger.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "range_triggers.h"

PYREBOX_VIRTUAL_RANGE_TRIGGER(MEM_READ_CB, mem_read_params)
