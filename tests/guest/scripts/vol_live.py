"""Volatility 3 plugins on the live VM, through api.vol from callbacks (no
terminal): when static_loop and dyn_libc reach the kernel's do_group_exit
(an INSN_BEGIN callback placed from the kernel's base, as in
linux_lists.py), the script runs plugins, takes PyREBox's own lists at the
same moment, and for static_loop writes a memory image (api.save_memory)
with the live pslist of that moment. Writes one RESULT line."""

import json
import os
import time

import api
from api import CallbackManager
from volatility3.framework import interfaces


class Broken(interfaces.plugins.PluginInterface):
    """A plugin that raises (bad-input test)."""

    _required_framework_version = (2, 0, 0)

    @classmethod
    def get_requirements(cls):
        return []

    def run(self):
        raise RuntimeError("this plugin always fails")


cm = None
printer = None
offsets = {}
hook = None
r = {"errors": [], "static_loop": None, "dyn_libc": None, "times": {}, "bad": {}}


def rows_of(plugin, *args):
    start = time.perf_counter()
    rows = api.vol(plugin, *args)
    r["times"].setdefault(plugin, []).append(time.perf_counter() - start)
    return rows


def pslist_rows(rows):
    return sorted([row["PID"], row["PPID"], row["COMM"], row["OFFSET (V)"]] for row in rows)


def on_context_change(old_pgd, new_pgd):
    global hook
    if hook is not None:
        return
    try:
        kernel = api.get_module_list(0)
    except api.IntrospectionError:
        return  # too early in the boot
    hook = kernel[0]["base"] + offsets["do_group_exit"]
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_group_exit, name="group_exit", addr=hook)


def bad_input():
    out = {}
    for key, call in (("unknown", lambda: api.vol("linux.no_such_plugin.Nothing")),
                      ("bad_args", lambda: api.vol("linux.pslist.PsList", "--pid", "zz")),
                      ("raises", lambda: api.vol("scripts.vol_live.Broken")),
                      ("not_str", lambda: api.vol(42))):
        try:
            call()
            out[key] = "no error"
        except api.VolatilityError as e:
            out[key] = str(e)
    return out


def on_group_exit(cpu_index, cpu):
    try:
        pgd = api.get_running_process(cpu_index)
        procs = api.get_process_list()
        me = [p for p in procs if p["pgd"] == pgd]
        if len(me) != 1 or me[0]["name"] not in ("static_loop", "dyn_libc"):
            return
        me = me[0]
        snap = {"pid": me["pid"],
                "processes": sorted([p["pid"], p["name"], p["ppid"]] for p in procs)}
        if me["name"] == "static_loop":
            first = rows_of("linux.pslist.PsList")
            again = rows_of("linux.pslist.PsList")
            snap["pslist"] = [[row["PID"], row["COMM"], row["PPID"]] for row in first]
            snap["pslist_again_same"] = pslist_rows(first) == pslist_rows(again)
            snap["lsmod"] = [[row["Module Name"], row["Offset"], row["Code Size"], row["Taints"]]
                            for row in rows_of("linux.lsmod.Lsmod")]
            snap["modules"] = [[m["name"], m["base"], m["size"]] for m in api.get_module_list(0)[1:]]
            r["bad"] = bad_input()
            image = api.save_memory(os.path.join(os.getcwd(), "guest.mem"))
            snap["image"] = {"size": image["size"], "ranges": image["ranges"]}
            snap["image_pslist"] = pslist_rows(rows_of("linux.pslist.PsList"))
        else:
            maps = rows_of("linux.proc.Maps", "--pid", me["pid"])
            snap["maps"] = [[row["Start"], row["End"], row["Flags"], row["File Path"]]
                            for row in maps]
            snap["maps_pids"] = sorted({row["PID"] for row in maps})
        r[me["name"]] = snap
    except Exception as e:  # noqa: BLE001 - reported to the test
        import traceback
        r["errors"].append(traceback.format_exc())


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
