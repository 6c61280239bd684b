"""Process and module lists, taken when static_loop and dyn_libc exit: an
INSN_BEGIN callback at the kernel's do_group_exit (placed once the kernel is
located, from the kernel's base in get_module_list(0)) snapshots the list of
processes and the exiting process's modules. Writes one RESULT line."""

import json
import os
import time

import api
from api import CallbackManager

TARGETS = ("static_loop", "dyn_libc")

cm = None
printer = None
offsets = {}
r = {"kernel": None, "hook": None, "snapshots": {}, "kthreadd": None, "os_bits": None,
     "times_process_list": [], "times_module_list": [], "errors": [], "locate_failures": 0}


def timed(kind, fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    r[kind].append(time.perf_counter() - start)
    return value


def on_context_change(old_pgd, new_pgd):
    if r["hook"] is not None:
        return
    try:
        kernel = timed("times_module_list", api.get_module_list, 0)
    except api.IntrospectionError:
        r["locate_failures"] += 1  # too early in the boot
        return
    r["kernel"] = kernel
    r["os_bits"] = api.get_os_bits()
    r["hook"] = kernel[0]["base"] + offsets["do_group_exit"]
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_group_exit, name="group_exit",
                    addr=r["hook"])


def on_group_exit(cpu_index, cpu):
    try:
        pgd = api.get_running_process(cpu_index)
        procs = timed("times_process_list", api.get_process_list)
        me = [p for p in procs if p["pgd"] == pgd]
        if len(me) != 1 or me[0]["name"] not in TARGETS:
            return
        mods = timed("times_module_list", api.get_module_list, pgd)
        r["snapshots"][me[0]["name"]] = {"running_pgd": pgd, "me": me[0], "modules": mods,
                                         "processes": procs}
        r["kthreadd"] = next((p for p in procs if p["pid"] == 2), None)
    except Exception as e:  # noqa: BLE001 - reported to the test
        r["errors"].append(f"{type(e).__name__}: {e}")


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    with open(os.path.join(os.getcwd(), "kernel_offsets.json")) as f:
        offsets.update(json.load(f))
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CONTEXTCHANGE_CB, on_context_change, name="ctx")


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
