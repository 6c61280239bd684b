"""Configuration: a C trigger counting BLOCK_BEGIN in all processes from
start-up (Python is never called per block)."""

import os

from api import CallbackManager

from bench.scripts.common import report
from pyrebox import paths

cm = None
printer = None


def never(cpu_index, cpu, tb):
    raise AssertionError("the counting trigger lets no event through")


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    name = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, never, name="blocks")
    cm.add_trigger(name, os.path.join(paths.ROOT, "triggers", "trigger_block_counter"))


def clean():
    report(printer, cm.get_trigger_var("blocks", "count") or 0)
    cm.clean()
