/*
 * Physical range breakpoint (MEM_WRITE_CB): only accesses to physical
 * addresses in [begin, end) reach Python, whatever the process.
 * Variables: begin, end.
 */
extern "C" {
#include "qemu_glue.h"
}
#include "range_triggers.h"

PYREBOX_PHYSICAL_RANGE_TRIGGER(MEM_WRITE_CB, mem_write_params)
