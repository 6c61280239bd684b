"""The demo script of `make demo`.

Shows the script life-cycle, the execution engine and Linux introspection on
the default guest's test programs: it reports each test program's processes
and the files they map as they start and end (exec shows as the old image
ending and the new one starting), kernel modules as they come and go, a few
symbols (libc's in dl_cycle as it unloads its library, those of the kernel
module the guest carries for loading on demand: crc7 on the default guest), and
follows the first static_loop from its creation: it monitors its address
space, shows its process-list entry and mapped files when it first calls
`pyrebox_step`, counts those calls and the one-byte writes into
`pyrebox_buffer`, and reports when the VM powers off.

A PyREBox script defines initialize_callbacks(module_hdl, printer), called
when the script is loaded, and clean(), called when it is unloaded.
"""

import os
import subprocess

import api
import utils
from api import CallbackManager

from pyrebox import paths

# The guest being booted (the default one, or `make demo GUEST_KERNEL=SPEC`'s):
# its test programs, and its on-demand kernel module with a function that
# module exports.
GUEST = paths.running_guest()
PROGRAM = os.path.join(GUEST.dir if GUEST else paths.GUEST, "programs", "static_loop")
ON_DEMAND = GUEST.on_demand_module if GUEST else {"name": None, "symbol": None}
# The test programs in the guest's /usr/local/bin.
TEST_PROGRAMS = {"static_loop", "dyn_libc", "fork_exec", "dl_cycle", "probe", "workload", "wx"}

cm = None
printer = None
symbols = {}
seen = {"steps": 0, "writes": 0, "pgd": None, "shown": False}
followed = {}  # pid -> name, for the test programs' processes


def read_symbols(binary):
    """Symbol addresses of a guest program built on the host (static, non-PIE)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in map(str.split, out.splitlines())
            if len(parts) == 3}


def on_create(pid, pgd, name):
    if name not in TEST_PROGRAMS:
        return
    followed[pid] = name
    printer(f"process {name} pid {pid} started (address space {pgd:#x})")
    if name == "static_loop" and seen["pgd"] is None:
        seen["pgd"] = pgd
        printer(f"following static_loop pid {pid}: monitoring address space {pgd:#x}")
        api.start_monitoring_process(pgd)
        cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_step, addr=symbols["pyrebox_step"],
                        pgd=pgd)
        cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="buffer_writes")


def on_remove(pid, pgd, name):
    if followed.pop(pid, None) is not None:
        printer(f"process {name} pid {pid} ended (address space {pgd:#x})")


def show_symbols(pgd, module, names):
    """A few symbols of a loaded module, and back from their addresses."""
    for symbol in names:
        try:
            addr = api.sym_to_va(pgd, module, symbol)
            back = api.va_to_sym(pgd, addr) if addr is not None else None
        except api.IntrospectionError as e:
            printer(f"    no symbols: {e}")
            return
        if addr is None:
            printer(f"    {module}!{symbol}: not resolvable yet")
        else:
            printer(f"    {module}!{symbol} = {addr:#x} (va_to_sym: {back[0]}!{back[1]})")


def on_load_module(pid, pgd, base, size, name, fullname):
    if pgd == 0:
        printer(f"kernel module {name} loaded at {base:#x} ({size:#x} bytes)")
        show_symbols(0, name, [ON_DEMAND["symbol"]] if name == ON_DEMAND["name"] else [])
    elif pid in followed:
        printer(f"  {followed[pid]} pid {pid} maps {fullname} at {base:#x}")


def on_remove_module(pid, pgd, base, size, name, fullname):
    if pgd == 0:
        printer(f"kernel module {name} removed from {base:#x}")
    elif pid in followed:
        printer(f"  {followed[pid]} pid {pid} unmaps {fullname} from {base:#x}")
        # The program is alive and its libc relocated: its symbols are readable.
        show_symbols(pgd, "libc.so.6", ["getpid", "printf"])


def show_process(pgd):
    """What Linux introspection tells about the process: its entry in the
    process list and the files it maps."""
    try:
        process = next(p for p in api.get_process_list() if p["pgd"] == pgd)
        modules = api.get_module_list(pgd)
    except (api.IntrospectionError, StopIteration) as e:
        printer(f"no process details: {e or 'not in the process list'}")
        return
    printer(f"process {process['name']} pid {process['pid']} (parent {process['ppid']}), "
            f"task_struct at {process['kaddr']:#x}")
    for module in modules:
        printer(f"  maps {module['fullname']} at {module['base']:#x} ({module['size']:#x} bytes)")


def on_step(cpu_index, cpu, tb):
    if not seen["shown"]:
        seen["shown"] = True
        printer(f"static_loop called pyrebox_step at {cpu.RIP:#x}")
        show_process(api.get_running_process(cpu_index))
    seen["steps"] += 1


def on_write(cpu_index, vaddr, size, haddr, data):
    buffer = symbols["pyrebox_buffer"]
    if buffer <= vaddr < buffer + 4096:
        seen["writes"] += 1


def initialize_callbacks(module_hdl, pyrebox_printer):
    global cm, printer, symbols
    printer = pyrebox_printer
    cm = CallbackManager(module_hdl)
    symbols = read_symbols(PROGRAM)
    printer(f"demo script loaded (module handle {module_hdl}); waiting for the test programs")
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="created")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="removed")
    cm.add_callback(CallbackManager.LOADMODULE_CB, on_load_module, name="module_loaded")
    cm.add_callback(CallbackManager.REMOVEMODULE_CB, on_remove_module, name="module_removed")
    utils.pp_print("utils.pp_print reaches the PyREBox console too")


def clean():
    printer(f"static_loop called pyrebox_step {seen['steps']} times and wrote "
            f"{seen['writes']} bytes into pyrebox_buffer")
    cm.clean()
