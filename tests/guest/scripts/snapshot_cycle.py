"""api.save_vm / api.load_vm from callbacks: when static_loop is created
the VM is saved as "mid"; when it is removed the first time, "mid" is
loaded, so the guest runs static_loop's end again from the snapshot. Python
state is not part of a snapshot, so the second removal does not reload.
Records the process events, and the process list as static_loop is reaped
in the restored timeline.
Writes one RESULT line."""

import json

import api
from api import CallbackManager

cm = None
printer = None
r = {"events": [], "loads": 0, "after_load": None, "errors": []}


def on_create(pid, pgd, name):
    r["events"].append(["create", pid, pgd, name])
    if name == "static_loop" and r["loads"] == 0:
        api.save_vm("mid")


def on_remove(pid, pgd, name):
    r["events"].append(["remove", pid, pgd, name])
    if name != "static_loop":
        return
    if r["loads"] == 0:
        r["loads"] += 1
        api.load_vm("mid")
    elif r["after_load"] is None:
        # Reaped again in the restored timeline: the list read from the
        # restored memory still has it (release_task is removing it).
        r["after_load"] = [[p["pid"], p["name"]] for p in api.get_process_list()
                           if p["pid"] == pid]


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
