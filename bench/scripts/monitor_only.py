"""Configuration: the workload process is monitored, no other callback (the
cost of context-switch tracking and inline gating)."""

import api
from api import CallbackManager

from bench.scripts.common import report, symbols

cm = None
printer = None


def on_main(cpu_index, cpu):
    api.start_monitoring_process(api.get_running_process(cpu_index))


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=symbols()["main"])


def clean():
    report(printer, 0)
    cm.clean()
