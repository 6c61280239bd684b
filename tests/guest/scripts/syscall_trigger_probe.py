"""Native triggers on SYSCALL_CB and SYSCALL_RET_CB: the workload's getppid
calls counted in C, for every process (no process monitored, no Python call
per event). Writes one RESULT line at the end."""

import json

import api
from api import CallbackManager

GETPPID = 110
cm = None
printer = None
r = {"python_calls": 0, "workload": None}


def on_never(params):
    r["python_calls"] += 1  # the triggers let nothing through


def on_create(params):
    if params["name"] == "workload" and r["workload"] is None:
        ppid = next(p["ppid"] for p in api.get_process_list() if p["pid"] == params["pid"])
        r["workload"] = {"pid": params["pid"], "ppid": ppid}
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
