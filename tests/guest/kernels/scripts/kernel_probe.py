"""Introspection of another kernel's guest, checked by tests/guest/kernels:
every CREATEPROC / REMOVEPROC / LOADMODULE / REMOVEMODULE is recorded, and
when a process named in probe.json's "watch" reaches the kernel's
do_group_exit (an INSN_BEGIN callback placed from the kernel's base once it
is located) the script records the running pgd, the process list, each
process's mm->pgd read here from memory with the ISF's offsets, the
exiting process's modules, the kernel modules, and for some programs
sym_to_va of libc's getpid in dyn_wait and Volatility's pslist and lsmod rows.
Writes one RESULT line at the end."""

import json
import os
import struct

import _pyrebox
import api
from api import CallbackManager

cm = None
printer = None
conf = {}
r = {"events": [], "exits": [], "errors": [], "kernel": None, "kpti": None}


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported to the test
            r["errors"].append(f"{fn.__name__}: {type(e).__name__}: {e}")
    wrapper.__name__ = fn.__name__
    return wrapper


def u64(pgd, va):
    return struct.unpack("<Q", api.r_va(pgd, va, 8))[0]


def mm_pgds(pgd, procs, slide):
    """pid -> mm->pgd - page_offset_base for every process with an mm."""
    o = conf["offsets"]
    page_offset = u64(pgd, o["page_offset_base"] + slide)
    out = {}
    for p in procs:
        mm = u64(pgd, p["kaddr"] + o["task_mm"])
        if mm:
            out[str(p["pid"])] = u64(pgd, mm + o["mm_pgd"]) - page_offset
    return out


def plain_rows(rows):
    return [{k: v if isinstance(v, (int, str, float, type(None))) else str(v)
             for k, v in row.items()} for row in rows]


@guarded
def on_ctx(old_pgd, new_pgd):
    if r["kernel"] is not None:
        return
    try:
        kernel = api.get_module_list(0)
    except api.IntrospectionError:
        return  # too early in the boot
    r["kernel"] = kernel[0]
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_exit, name="exit",
                    addr=kernel[0]["base"] + conf["offsets"]["do_group_exit"])


@guarded
def on_exit(cpu_index, cpu):
    pgd = api.get_running_process(cpu_index)
    procs = api.get_process_list()
    me = [p for p in procs if p["pgd"] == pgd]
    if len(me) != 1 or me[0]["name"] not in conf["watch"]:
        return
    name = me[0]["name"]
    slide = r["kernel"]["base"] - conf["offsets"]["_text"]
    snap = {"name": name, "running_pgd": pgd, "me": me[0], "procs": procs,
            "mm_pgds": mm_pgds(pgd, procs, slide), "modules": api.get_module_list(pgd),
            "kernel_modules": api.get_module_list(0)}
    if name == "dyn_wait":
        snap["getpid"] = api.sym_to_va(pgd, "libc.so.6", "getpid")
    if name in conf.get("vol", ()):
        snap["pslist"] = plain_rows(api.vol("linux.pslist.PsList"))
        snap["lsmod"] = plain_rows(api.vol("linux.lsmod.Lsmod"))
    r["kpti"] = _pyrebox.kpti()  # the engine's decision, for the report
    r["exits"].append(snap)


@guarded
def on_create(pid, pgd, name):
    r["events"].append({"ev": "create", "pid": pid, "pgd": pgd, "name": name})


@guarded
def on_remove(pid, pgd, name):
    r["events"].append({"ev": "remove", "pid": pid, "pgd": pgd, "name": name})


@guarded
def on_load(pid, pgd, base, size, name, fullname):
    r["events"].append({"ev": "load", "pid": pid, "pgd": pgd, "base": base, "size": size,
                        "name": name})


@guarded
def on_unload(pid, pgd, base, size, name, fullname):
    r["events"].append({"ev": "unload", "pid": pid, "pgd": pgd, "base": base, "size": size,
                        "name": name})


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    with open(os.path.join(os.getcwd(), "probe.json")) as f:
        conf.update(json.load(f))
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CONTEXTCHANGE_CB, on_ctx, name="ctx")
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    cm.add_callback(CallbackManager.LOADMODULE_CB, on_load, name="load")
    cm.add_callback(CallbackManager.REMOVEMODULE_CB, on_unload, name="unload")


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
