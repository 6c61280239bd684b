"""Configuration: an address-specific INSN_BEGIN callback on the workload's
pyrebox_work_step (hit once per round, whatever process is monitored)."""

from api import CallbackManager

from bench.scripts.common import report, symbols

cm = None
printer = None
count = 0


def on_step(cpu_index, cpu):
    global count
    count += 1


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_step, addr=symbols()["pyrebox_work_step"])


def clean():
    report(printer, count)
    cm.clean()
