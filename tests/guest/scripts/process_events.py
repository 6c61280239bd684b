"""Process and module events as a PyREBox user scripts them: every
CREATEPROC / REMOVEPROC / LOADMODULE / REMOVEMODULE is recorded; the first
dl_cycle process is monitored from its CREATEPROC on (its first user-mode
block, the process list and get_running_process there); the module lists
are snapshot when libdltest.so is unloaded and when the guest's on-demand
kernel module (paths.running_guest()) is loaded.
Writes one RESULT line at the end."""

import json

import api
from api import CallbackManager

from pyrebox import paths

USER_TOP = 0x800000000000
WATCHED = "dl_cycle"
MODULE = paths.running_guest().on_demand_module["name"]  # crc7 on the default guest

cm = None
printer = None
r = {"events": [], "watched": None, "first_block": None, "at_dlclose": None,
     "at_insmod": None, "errors": []}


def record(kind, **fields):
    r["events"].append({"ev": kind, **fields})


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported to the test
            r["errors"].append(f"{fn.__name__}: {type(e).__name__}: {e}")
    wrapper.__name__ = fn.__name__
    return wrapper


@guarded
def on_create(pid, pgd, name):
    record("create", pid=pid, pgd=pgd, name=name)
    if name == WATCHED and r["watched"] is None:
        r["watched"] = {"pid": pid, "pgd": pgd}
        api.start_monitoring_process(pgd)
        cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, first_block, name="first_block")


@guarded
def first_block(cpu_index, cpu, tb):
    pc = cpu.RIP
    if pc >= USER_TOP:
        return
    running = api.get_running_process(cpu_index)
    entry = [p for p in api.get_process_list() if p["pid"] == r["watched"]["pid"]]
    r["first_block"] = {"pc": pc, "running_pgd": running, "list_entry": entry}
    cm.rm_callback("first_block")


@guarded
def on_remove(pid, pgd, name):
    record("remove", pid=pid, pgd=pgd, name=name)


@guarded
def on_load_module(pid, pgd, base, size, name, fullname):
    record("load", pid=pid, pgd=pgd, base=base, size=size, name=name, fullname=fullname)
    if pgd == 0 and name == MODULE:
        r["at_insmod"] = api.get_module_list(0)


@guarded
def on_remove_module(pid, pgd, base, size, name, fullname):
    record("unload", pid=pid, pgd=pgd, base=base, size=size, name=name, fullname=fullname)
    if name == "libdltest.so":
        r["at_dlclose"] = api.get_module_list(pgd)


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    cm.add_callback(CallbackManager.LOADMODULE_CB, on_load_module, name="load")
    cm.add_callback(CallbackManager.REMOVEMODULE_CB, on_remove_module, name="unload")


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
