"""System-call events of the monitored test programs (workload, fork_exec
and its static_loop children), counted per number on entry and return,
with getppid's return values, the children's returns, and the kernel's
names of a few numbers. Writes one RESULT line at the end."""

import json

import api
from api import CallbackManager
from pyrebox import syscall_names

WATCH = ("workload", "fork_exec", "static_loop", "syscall_seq", "syscall32", "sigrestart")

cm = None
printer = None
r = {"enter": {}, "ret": {}, "getppid": [], "children": [], "names": None, "errors": [],
     "unpaired": 0, "old_style": 0, "seq": [], "open_args": [], "read_buf": None,
     "i386": [], "signals": []}
names_of = {}  # pgd -> name of the watched processes


def on_create(params):
    if params["name"] in WATCH:
        names_of[params["pgd"]] = params["name"]
        api.start_monitoring_process(params["pgd"])


def on_remove(params):
    if params["name"] in WATCH:
        api.stop_monitoring_process(params["pgd"])


def count(table, number):
    table[str(number)] = table.get(str(number), 0) + 1


def i386_event(kind, params):
    """syscall32's calls: (kind, path, number, name, raw, retval, error,
    pid, decoded arguments as strings, a write's bytes)."""
    ret = kind == "R"
    r["i386"].append([kind, params["path"], params["number"], params["name"],
                      list(params["raw"]), params["retval"] if ret else None,
                      params["error"] if ret else None, params["pid"],
                      {k: repr(v) for k, v in params["args"].items()},
                      bytes(params["args"]["buf"]).decode() if params["name"] == "write" else None])


def signal_event(kind, params):
    """sigrestart's calls: (kind, pid, number, first argument, retval, error)."""
    ret = kind == "R"
    r["signals"].append([kind, params["pid"], params["number"], params["raw"][0],
                         params["retval"] if ret else None, params["error"] if ret else None])


def on_enter(params):
    if names_of.get(params["pgd"]) == "sigrestart":
        signal_event("E", params)
        return
    if names_of.get(params["pgd"]) == "syscall32":
        i386_event("E", params)
        return
    if names_of.get(params["pgd"]) == "syscall_seq":
        r["seq"].append(["E", params["pgd"], params["number"], params["path"],
                         list(params["raw"]), None, 0, params["name"], params["pid"],
                         params["tid"]])
        if params["name"] == "openat":
            r["open_args"].append({k: repr(v) for k, v in params["args"].items()})
        return
    count(r["enter"], params["number"])
    if r["names"] is None:
        names = syscall_names.table(params["pgd"])
        r["names"] = {"count": len(names), **{str(n): names.get(n) for n in (0, 1, 59, 110, 231)}}


def on_ret(params):
    if names_of.get(params["pgd"]) == "sigrestart":
        signal_event("R", params)
        return
    if names_of.get(params["pgd"]) == "syscall32":
        i386_event("R", params)
        return
    if names_of.get(params["pgd"]) == "syscall_seq":
        r["seq"].append(["R", params["pgd"], params["number"], params["path"],
                         list(params["raw"]), params["retval"], params["child"], params["name"],
                         params["pid"], params["tid"], params["error"]])
        if params["name"] == "read" and params["args"]["fd"] == 3:
            r["read_buf"] = bytes(params["args"]["buf"]).decode()
        return
    count(r["ret"], params["number"])
    if params["number"] == 110:
        r["getppid"].append(params["retval"])
    if params["child"]:
        r["children"].append({"pgd": params["pgd"], "number": params["number"],
                              "retval": params["retval"]})


def on_ret_old(cpu_index, cpu, pid, tid, pgd, number, name, args, raw, retval, error):
    if number == 110 and name == "getppid" and names_of.get(pgd) == "workload" and error is None:
        r["old_style"] += 1


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    cm.add_callback(CallbackManager.SYSCALL_CB, on_enter, name="enter")
    cm.add_callback(CallbackManager.SYSCALL_RET_CB, on_ret, name="ret")
    old = CallbackManager(module_hdl)
    old.add_callback(CallbackManager.SYSCALL_RET_CB, on_ret_old, name="ret_old")
    r["_old"] = None
    globals()["old_cm"] = old


def clean():
    r.pop("_old", None)
    printer("RESULT " + json.dumps(r))
    cm.clean()
    old_cm.clean()
