"""The introspection API while a kernel module of ours corrupts the kernel's
structures (tests/guest/kmod/pyrebox_corrupt.c): at each call of
hostile_probe's pyrebox_probe(phase) (its address from hostile_probe.json
in the working directory; phase 1 corrupt, phase 2 restored) the process
list, the kernel's and the probe's module lists, the fake DAG process's
module list, kernel symbol lookups and the symbol lists, each timed, with
QEMU's resident memory. Writes one RESULT line at the end."""

import json
import os
import time

import api
from api import CallbackManager

printer = None
old_cm = None
r = {"phases": {}, "errors": []}
with open(os.path.join(os.getcwd(), "hostile_probe.json")) as f:
    PROBE = json.load(f)["probe"]


def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmRSS:"))


def timed(phase, what, fn):
    """fn()'s result, or ["error", type, message]; its time and memory kept."""
    start, before = time.monotonic(), rss_mib()
    try:
        value = fn()
    except Exception as e:  # noqa: BLE001 - the test looks at it
        value = ["error", type(e).__name__, str(e)]
    phase.setdefault("cost", {})[what] = [round(time.monotonic() - start, 3), rss_mib() - before]
    return value


def on_probe(cpu_index, cpu):
    phase_number = cpu.RDI
    if phase_number not in (1, 2):
        return
    p = r["phases"][str(phase_number)] = {}
    pgd = api.get_running_process(cpu_index)
    procs = timed(p, "get_process_list", api.get_process_list)
    p["procs"] = procs if procs and procs[0] == "error" else [
        [x["pid"], x["ppid"], x["name"], x["pgd"], x["partial"]] for x in procs]
    kmods = timed(p, "get_module_list(0)", lambda: api.get_module_list(0))
    p["kernel_modules"] = kmods if kmods and kmods[0] == "error" else [
        [m["name"], m["base"], m["size"], m["partial"]] for m in kmods]
    own = timed(p, "get_module_list(pgd)", lambda: api.get_module_list(pgd))
    p["own_modules"] = own if own and own[0] == "error" else [
        [m["name"], m["fullname"], m["base"], m["size"], m["partial"]] for m in own]
    dag = [x for x in (procs if procs and procs[0] != "error" else []) if x["name"] == "pyrebox_dag"]
    if dag:
        p["dag_modules"] = timed(p, "get_module_list(dag)", lambda: api.get_module_list(dag[0]["pgd"]))
    p["init_task"] = timed(p, "sym_to_va(vmlinux)", lambda: api.sym_to_va(0, "vmlinux", "init_task"))
    if isinstance(p["init_task"], int):
        p["init_task_sym"] = timed(p, "va_to_sym", lambda: api.va_to_sym(0, p["init_task"]))
    p["control_write"] = timed(p, "sym_to_va(pyrebox_corrupt)",
                               lambda: api.sym_to_va(0, "pyrebox_corrupt", "control_write"))
    kernel_symbols = timed(p, "get_symbol_list(0)", lambda: api.get_symbol_list(0))
    p["kernel_symbols"] = kernel_symbols if kernel_symbols and kernel_symbols[0] == "error" \
        else len(kernel_symbols)
    everyone = timed(p, "get_symbol_list(None)", lambda: api.get_symbol_list(None))
    p["all_symbols"] = everyone if everyone and everyone[0] == "error" else len(everyone)
    p["rss_mib"] = rss_mib()


def initialize_callbacks(module_hdl, p):
    global printer, old_cm
    printer = p
    old_cm = CallbackManager(module_hdl)
    old_cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_probe, addr=PROBE, name="probe")


def clean():
    printer("RESULT " + json.dumps(r))
    old_cm.clean()
