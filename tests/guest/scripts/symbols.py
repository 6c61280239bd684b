"""Symbols of modules (api.get_symbol_list, sym_to_va, va_to_sym), taken
while the test programs run:
- dyn_libc, as it exits (INSN_BEGIN at the kernel's do_group_exit);
- dl_cycle, at each of its write system calls (ksys_write) while
  libdltest.so is mapped, and as it exits (after dlclose);
- grep, as it exits, after the guest's on-demand kernel module was inserted
  (kernel symbols; its name and one exported function are in the guest's
  manifest, paths.running_guest()).
Hook addresses come from the kernel's base in get_module_list(0) plus the
offsets the test passes (kernel_offsets.json). Writes one RESULT line."""

import json
import os
import time

import api
from api import CallbackManager

from pyrebox import paths

# The kernel module the test inserts (crc7 on the default guest) and one
# function it exports.
MODULE = paths.running_guest().on_demand_module
MOD, MOD_SYM = MODULE["name"], MODULE["symbol"]

cm = None
printer = None
offsets = {}
r = {"hooks": None, "dyn_libc": None, "dl_loaded": None, "dl_exit": None, "kernel": None,
     "errors": [], "times": {}}
# pgd -> name of a process we watch, for the write hook (forgotten at its
# exit: a pgd may be reused by a later process). Other processes are looked
# up on every call (an exec replaces the pgd without an exit).
WATCHED = ("dyn_libc", "dl_cycle", "grep")
names = {}


def timed(kind, fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    r["times"].setdefault(kind, []).append(time.perf_counter() - start)
    return value


def me(pgd):
    if pgd not in names:
        procs = api.get_process_list()
        found = [p["name"] for p in procs if p["pgd"] == pgd]
        if not found or found[0] not in WATCHED:
            return None
        names[pgd] = found[0]
    return names[pgd]


def on_context_change(old_pgd, new_pgd):
    if r["hooks"] is not None:
        return
    try:
        kernel = api.get_module_list(0)
    except api.IntrospectionError:
        return  # too early in the boot
    base = kernel[0]["base"]
    r["hooks"] = {k: base + v for k, v in offsets.items()}
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_group_exit, name="group_exit",
                    addr=r["hooks"]["do_group_exit"])
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_write, name="write",
                    addr=r["hooks"]["ksys_write"])


def modules_by_name(pgd):
    return {m["name"]: m for m in api.get_module_list(pgd)}


def dyn_libc_snapshot(pgd):
    getpid = timed("sym_to_va", api.sym_to_va, pgd, "libc.so.6", "getpid")
    mods = modules_by_name(pgd)
    libc = mods["libc.so.6"]
    for _ in range(20):  # warm calls, for the per-call times
        timed("sym_to_va", api.sym_to_va, pgd, "libc.so.6", "getpid")
        timed("va_to_sym", api.va_to_sym, pgd, getpid + 3)
    for _ in range(5):
        timed("get_module_list(pgd)", api.get_module_list, pgd)
    syms = timed("get_symbol_list(pgd)", api.get_symbol_list, pgd)
    everything = timed("get_symbol_list(None)", api.get_symbol_list)
    return {
        "modules": list(mods.values()),
        "getpid": getpid,
        "getpid_by_path": api.sym_to_va(pgd, libc["fullname"], "getpid"),
        "va_to_sym": timed("va_to_sym", api.va_to_sym, pgd, getpid),
        "va_to_sym_inside": api.va_to_sym(pgd, getpid + 3) if getpid else None,
        "unknown_symbol": api.sym_to_va(pgd, "libc.so.6", "no_such_symbol_here"),
        "unknown_module": api.sym_to_va(pgd, "libnothing.so", "getpid"),
        "no_module_address": api.va_to_sym(pgd, 0x1000),
        "unknown_pgd": api.sym_to_va(0x1000, "libc.so.6", "getpid"),
        "list_getpid": [s for s in syms if s["name"] == "getpid"],
        "list_count": len(syms),
        "list_modules": sorted({s["mod"] for s in syms}),
        "all_getpid": [s for s in everything if s["name"] == "getpid"],
        "all_count": len(everything),
        "all_has_kernel": any(s["mod"] == "vmlinux" for s in everything[:10]),
        "main_symbol": api.sym_to_va(pgd, "dyn_libc", "main"),
        "kernel_from_process": api.sym_to_va(pgd, "vmlinux", "do_group_exit"),
    }


def dl_snapshot(pgd):
    mods = modules_by_name(pgd)
    out = {"modules": list(mods.values())}
    answer = api.sym_to_va(pgd, "libdltest.so", "dltest_answer")
    out["dltest_answer"] = answer
    out["dltest_answer_by_path"] = api.sym_to_va(pgd, "/usr/local/lib/libdltest.so",
                                                 "dltest_answer")
    out["va_to_sym"] = api.va_to_sym(pgd, answer) if answer else None
    out["getpid"] = api.sym_to_va(pgd, "libc.so.6", "getpid")
    return out


def kernel_snapshot(pgd):
    exported = timed("sym_to_va(kernel module)", api.sym_to_va, 0, MOD, MOD_SYM)
    dge = timed("sym_to_va(vmlinux)", api.sym_to_va, 0, "vmlinux", "do_group_exit")
    for _ in range(20):
        timed("sym_to_va(kernel module)", api.sym_to_va, 0, MOD, MOD_SYM)
        timed("sym_to_va(vmlinux)", api.sym_to_va, 0, "vmlinux", "do_group_exit")
        timed("va_to_sym(kernel)", api.va_to_sym, 0, dge + 5)
    syms = timed("get_symbol_list(0)", api.get_symbol_list, 0)
    return {
        "modules": api.get_module_list(0),
        "module_symbol": exported,
        "module_symbol_from_process": api.sym_to_va(pgd, MOD, MOD_SYM),
        "module_va_to_sym": api.va_to_sym(0, exported + 1) if exported else None,
        "do_group_exit": dge,
        "init_task": api.sym_to_va(0, "vmlinux", "init_task"),
        "dge_va_to_sym": timed("va_to_sym(kernel)", api.va_to_sym, 0, dge + 5) if dge else None,
        "dge_va_to_sym_from_process": api.va_to_sym(pgd, dge) if dge else None,
        "unknown_symbol": api.sym_to_va(0, "vmlinux", "no_such_kernel_symbol"),
        "unknown_module": api.sym_to_va(0, "nomodule", MOD_SYM),
        "list_module_symbol": [s for s in syms if s["name"] == MOD_SYM],
        "list_do_group_exit": [s for s in syms if s["name"] == "do_group_exit"],
        "list_count": len(syms),
    }


def on_group_exit(cpu_index, cpu):
    try:
        pgd = api.get_running_process(cpu_index)
        name = me(pgd)
        names.pop(pgd, None)
        if name == "dyn_libc":
            r["dyn_libc"] = dyn_libc_snapshot(pgd)
        elif name == "dl_cycle":
            r["dl_exit"] = dl_snapshot(pgd)
        elif name == "grep" and r["kernel"] is None:
            r["kernel"] = kernel_snapshot(pgd)
    except Exception as e:  # noqa: BLE001 - reported to the test
        r["errors"].append(f"{type(e).__name__}: {e}")


def on_write(cpu_index, cpu):
    try:
        pgd = api.get_running_process(cpu_index)
        if me(pgd) != "dl_cycle":
            return
        snap = dl_snapshot(pgd)
        if "libdltest.so" in {m["name"] for m in snap["modules"]}:
            r["dl_loaded"] = snap
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
