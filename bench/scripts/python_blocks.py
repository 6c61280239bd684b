"""Configuration: one monitored process, a Python BLOCK_BEGIN callback with a
trivial body (counts events)."""

import api
from api import CallbackManager

from bench.scripts.common import report, symbols

cm = None
printer = None
count = 0


def on_block(cpu_index, cpu, tb):
    global count
    count += 1


def on_main(cpu_index, cpu):
    api.start_monitoring_process(api.get_running_process(cpu_index))
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_block)


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=symbols()["main"])


def clean():
    report(printer, count)
    cm.clean()
