"""Configuration: the workload monitored, Python SYSCALL_CB and
SYSCALL_RET_CB callbacks with a trivial body (count events; the decoded
arguments are not looked at, so they are not read)."""

import api
from api import CallbackManager

from bench.scripts.common import report, symbols

cm = None
printer = None
count = 0


def on_syscall(params):
    global count
    count += 1


def on_main(cpu_index, cpu):
    api.start_monitoring_process(api.get_running_process(cpu_index))
    with cm.batch():
        cm.add_callback(CallbackManager.SYSCALL_CB, on_syscall, name="enter")
        cm.add_callback(CallbackManager.SYSCALL_RET_CB, on_syscall, name="ret")


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl, new_style=True)
    main = CallbackManager(module_hdl)
    main.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=symbols()["main"])
    globals()["main_cm"] = main


def clean():
    report(printer, count)
    cm.clean()
    main_cm.clean()
