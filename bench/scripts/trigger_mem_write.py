"""Configuration: MEM_WRITE with the range trigger over work_buffer in the
workload process: only the in-range writes reach Python (one per round)."""

import os

import api
from api import CallbackManager

from bench.scripts.common import report, symbols
from pyrebox import paths

cm = None
printer = None
count = 0
SYMBOLS = symbols()


def on_write(cpu_index, vaddr, size, haddr, data):
    global count
    count += 1


def on_main(cpu_index, cpu):
    name = cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="writes")
    cm.add_trigger(name, os.path.join(paths.ROOT, "triggers", "trigger_bpw_memrange"))
    cm.set_trigger_var(name, "begin", SYMBOLS["work_buffer"])
    cm.set_trigger_var(name, "end", SYMBOLS["work_buffer"] + 4096)
    cm.set_trigger_var(name, "pgd", api.get_running_process(cpu_index))


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=SYMBOLS["main"])


def clean():
    report(printer, count)
    cm.clean()
