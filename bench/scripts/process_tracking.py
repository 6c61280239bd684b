"""Configuration: process and module tracking on (CREATEPROC, REMOVEPROC,
LOADMODULE, REMOVEMODULE callbacks with trivial bodies: the kernel hooks run
in C, Python is called once per event). When the workload execs, the time
per call of get_process_list() and get_module_list() is measured there and
reported."""

import time

import api
from api import CallbackManager

from bench.scripts.common import report

CALLS = 50

cm = None
printer = None
count = [0]
timings = {}


def time_calls(fn, *args):
    start = time.perf_counter()
    for _ in range(CALLS):
        fn(*args)
    return (time.perf_counter() - start) / CALLS


def on_process(pid, pgd, name):
    count[0] += 1
    if name == "workload" and not timings:
        init_pgd = next(p["pgd"] for p in api.get_process_list() if p["pid"] == 1)
        timings["get_process_list"] = time_calls(api.get_process_list)
        timings["get_module_list(init)"] = time_calls(api.get_module_list, init_pgd)
        timings["get_module_list(0)"] = time_calls(api.get_module_list, 0)


def on_module(pid, pgd, base, size, name, fullname):
    count[0] += 1


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_process)
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_process)
    cm.add_callback(CallbackManager.LOADMODULE_CB, on_module)
    cm.add_callback(CallbackManager.REMOVEMODULE_CB, on_module)


def clean():
    for what, seconds in timings.items():
        printer(f"BENCH call {what}={seconds * 1e3:.3f}")
    report(printer, count[0])
    cm.clean()
