"""Native triggers on SYSCALL_CB and SYSCALL_RET_CB: the workload's getppid
calls counted in C, for every process (no process monitored, no Python call
per event); and a Python SYSCALL_RET_CB of the workload's pgd only, for
its first BY_PGD getppid returns. Writes
one RESULT line at the end."""

import json

import api
from api import CallbackManager

GETPPID = 110
BY_PGD = 100_000  # the Python callback's calls: it removes itself after these
cm = None
printer = None
r = {"python_calls": 0, "workload": None, "by_pgd": 0, "by_pgd_other": 0}


def on_workload_return(params):
    # pgd= selects the workload (not monitored): only its calls arrive.
    if params["pgd"] != r["workload"]["pgd"]:
        r["by_pgd_other"] += 1
    elif params["name"] == "getppid" and params["retval"] == r["workload"]["ppid"]:
        r["by_pgd"] += 1
        if r["by_pgd"] == BY_PGD:
            cm.rm_callback("by_pgd")  # the triggers count the rest


def on_never(params):
    r["python_calls"] += 1  # the triggers let nothing through


def on_create(params):
    if params["name"] == "workload" and r["workload"] is None:
        ppid = next(p["ppid"] for p in api.get_process_list() if p["pid"] == params["pid"])
        r["workload"] = {"pid": params["pid"], "ppid": ppid, "pgd": params["pgd"]}
        cm.add_callback(CallbackManager.SYSCALL_RET_CB, on_workload_return, name="by_pgd",
                        pgd=params["pgd"])
        for name in ("enter", "ret"):
            cm.set_trigger_var(name, "pid", params["pid"])
            cm.set_trigger_var(name, "number", GETPPID)
        cm.set_trigger_var("ret", "retval", ppid)


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.SYSCALL_CB, on_never, name="enter")
    cm.add_trigger("enter", "triggers/trigger_syscall_counter")
    cm.add_callback(CallbackManager.SYSCALL_RET_CB, on_never, name="ret")
    cm.add_trigger("ret", "triggers/trigger_syscall_ret_counter")


def clean():
    r["entries"] = cm.get_trigger_var("enter", "count")
    r["returns"] = cm.get_trigger_var("ret", "count")
    r["returned_ppid"] = cm.get_trigger_var("ret", "matched")
    printer("RESULT " + json.dumps(r))
    cm.clean()
