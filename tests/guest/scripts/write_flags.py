"""Writes EFLAGS inside callbacks of the probe (guest/programs/probe.c).

At pyrebox_flags_site (the `setb` right after a `cmp`, mid-block) an
INSN_BEGIN callback sets CF: `setb` must see it, so the probe prints
flags=111. The same callback must run once per execution of the site even
though the write makes execution leave the block and resume there. A
MEM_WRITE callback's EFLAGS write is refused with a message (the
instruction is half done), and the program is unaffected.

The test writes write_flags.json (symbol -> address) next to pyrebox.conf.
"""

import json
import os

import api
from api import CallbackManager

SYMBOLS = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                      "write_flags.json")))
CF = 1

cm = None
printer = None
pgd = None
r = {"site": 0, "flags_before": [], "flags_after_write": [], "mem_error": None,
     "rax_written": None}


def on_main(cpu_index, cpu):
    global pgd
    pgd = api.get_running_process(cpu_index)
    api.start_monitoring_process(pgd)
    cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="writes")


def on_site(cpu_index, cpu):
    r["site"] += 1
    flags = api.r_cpu(cpu_index).EFLAGS
    r["flags_before"].append(flags)
    api.w_r(cpu_index, "EFLAGS", flags | CF)
    r["flags_after_write"].append(api.r_cpu(cpu_index).EFLAGS)


def on_write(cpu_index, vaddr, size, haddr, data):
    if r["mem_error"] is not None or api.get_running_process(cpu_index) != pgd:
        return
    try:
        api.w_r(cpu_index, "EFLAGS", api.r_cpu(cpu_index).EFLAGS)
        r["mem_error"] = "no error"
    except Exception as e:
        r["mem_error"] = str(e)


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, name="main", addr=SYMBOLS["main"])
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_site, name="site",
                    addr=SYMBOLS["pyrebox_flags_site"])


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
