"""Write-then-execute detection with triggers/trigger_write_execute on the
wx program (writes code into a page and runs it) and on probe (does not)."""

import json
import os
import subprocess

import api
from api import CallbackManager

from pyrebox import paths

WX = os.path.join(paths.GUEST, "programs", "wx")
WX_MAIN = next(int(p[0], 16) for p in map(str.split, subprocess.run(
    ["nm", WX], capture_output=True, text=True, check=True).stdout.splitlines())
    if len(p) == 3 and p[2] == "main")
TRIGGER = os.path.join(paths.ROOT, "triggers", "trigger_write_execute")

cm = None
printer = None
r = {"events": [], "wx_pgd": None}


def on_wx_main(cpu_index, cpu):
    # From here on every store and every block of the system goes through the
    # trigger (before wx, nothing of interest runs: boot and the shell).
    r["wx_pgd"] = api.get_running_process(cpu_index)
    writes = cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="wx_writes")
    cm.add_trigger(writes, TRIGGER)
    cm.set_trigger_var(writes, "is_write_callback", 1)
    blocks = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_exec_written, name="wx_blocks")
    cm.add_trigger(blocks, TRIGGER)


def on_exec_written(cpu_index, cpu, tb):
    r["events"].append([tb[0], api.get_running_process(cpu_index)])


def on_write(*args):
    raise AssertionError("the write side never reaches Python")


def initialize_callbacks(module_hdl, pyrebox_printer):
    global cm, printer
    printer = pyrebox_printer
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_wx_main, addr=WX_MAIN)


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
