"""Configuration: MEM_WRITE in the monitored workload, filtered in Python to
the writes into work_buffer (one per round)."""

import api
from api import CallbackManager

from bench.scripts.common import report, symbols

cm = None
printer = None
count = 0
SYMBOLS = symbols()
BEGIN = SYMBOLS["work_buffer"]
END = BEGIN + 4096


def on_write(cpu_index, vaddr, size, haddr, data):
    global count
    if BEGIN <= vaddr < END:
        count += 1


def on_main(cpu_index, cpu):
    api.start_monitoring_process(api.get_running_process(cpu_index))
    cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write)


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=SYMBOLS["main"])


def clean():
    report(printer, count)
    cm.clean()
