"""The demo script of `make demo`.

Shows the script life-cycle, the execution engine and Linux introspection on
the default guest's static_loop program: when static_loop reaches `main`, the
script shows its process-list entry and mapped files, starts monitoring its
address space, counts the calls to `pyrebox_step` and the one-byte writes
into `pyrebox_buffer`, and reports when the VM powers off.

A PyREBox script defines initialize_callbacks(module_hdl, printer), called
when the script is loaded, and clean(), called when it is unloaded.
"""

import os
import subprocess

import api
import utils
from api import CallbackManager

from pyrebox import paths

PROGRAM = os.path.join(paths.GUEST, "programs", "static_loop")

cm = None
printer = None
symbols = {}
seen = {"steps": 0, "writes": 0, "pgd": None}


def read_symbols(binary):
    """Symbol addresses of a guest program built on the host (static, non-PIE)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    return {parts[2]: int(parts[0], 16) for parts in map(str.split, out.splitlines())
            if len(parts) == 3}


def on_main(cpu_index, cpu):
    pgd = api.get_running_process(cpu_index)
    if seen["pgd"] is not None:
        return  # the first static_loop is the one we follow
    seen["pgd"] = pgd
    printer(f"static_loop reached main at {cpu.RIP:#x} in address space {pgd:#x}; "
            f"monitoring it")
    api.start_monitoring_process(pgd)
    show_process(pgd)
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_step, addr=symbols["pyrebox_step"],
                    pgd=pgd)
    cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="buffer_writes")


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
    printer(f"demo script loaded (module handle {module_hdl}); waiting for static_loop "
            f"to reach main at {symbols['main']:#x}")
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=symbols["main"])
    utils.pp_print("utils.pp_print reaches the PyREBox console too")


def clean():
    printer(f"static_loop called pyrebox_step {seen['steps']} times and wrote "
            f"{seen['writes']} bytes into pyrebox_buffer")
    cm.clean()
