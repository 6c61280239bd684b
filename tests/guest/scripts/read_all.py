"""Reads registers in every INSN_BEGIN, MEM_WRITE and OPCODE_RANGE
callback of the monitored programs (static_loop, probe, from their main on),
kernel code run on their behalf included, and checks what it reads against what the events say.

Reading must not change the guest: the programs' own results (checksums,
the flags the probe computes) stay exact. The test writes read_all.json
(symbol -> address, from the binaries) next to pyrebox.conf before the boot.
Optional: SHELLS in that file > 0 opens the PyREBox shell from that many
INSN_BEGIN callbacks at pyrebox_step (the test continues each one).
"""

import json
import os

import api
import ipython_shell
from api import CallbackManager

CONF = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                   "read_all.json")))
PROGRAMS = ("static_loop", "probe")
FULL_EVERY = 16

cm = None
printer = None
monitored = set()
r = {"reads": 0, "insn": 0, "insn_rip_wrong": 0, "mem": 0, "opcode": 0, "opcode_rip_wrong": 0,
     "step_entries": 0, "store_rips": [], "buffer_writes": 0, "flags_at_site": [],
     "shells": 0, "errors": []}


def read_everything(cpu_index):
    """A fresh cpu object's RIP, EFLAGS and RAX in every callback (the state
    QEMU keeps lazily, and a plain register); every FULL_EVERY-th callback
    also every other register and the CPU dump the shell shows."""
    r["reads"] += 1
    cpu = api.r_cpu(cpu_index)
    cpu.RIP, cpu.EFLAGS, cpu.RAX
    if r["reads"] % FULL_EVERY == 0:
        cpu.freeze()
        api.r_cpu(cpu_index).CS
    return cpu


def on_main(cpu_index, cpu):
    # From the program's main on: its own code, and the kernel's on its
    # behalf (system calls, page faults, interrupts, exit).
    pgd = api.get_running_process(cpu_index)
    if pgd not in monitored:
        monitored.add(pgd)
        api.start_monitoring_process(pgd)


def on_remove(pid, pgd, name):
    # The address space is gone: a later one may get the same pgd.
    if pgd in monitored:
        monitored.discard(pgd)
        api.stop_monitoring_process(pgd)


def on_insn(cpu_index, cpu):
    pc = cpu.PC  # the event's own value
    r["insn"] += 1
    try:
        now = read_everything(cpu_index)
        if now.RIP != pc:
            r["insn_rip_wrong"] += 1
        if pc == CONF["static_loop"]["pyrebox_step"]:
            r["step_entries"] += 1
            if r["shells"] < CONF["shells"]:
                r["shells"] += 1
                ipython_shell.start_shell(cpu_index)
        elif pc == CONF["probe"]["pyrebox_flags_site"]:
            r["flags_at_site"].append(now.EFLAGS)
    except Exception as e:  # reported at the end, never hidden
        r["errors"].append(f"insn {pc:#x}: {e!r}")


def on_mem_write(cpu_index, vaddr, size, haddr, data):
    r["mem"] += 1
    try:
        now = read_everything(cpu_index)
        buf = CONF["static_loop"]["pyrebox_buffer"]
        if buf <= vaddr < buf + 4096 and api.get_running_process(cpu_index) in monitored:
            r["buffer_writes"] += 1
            if now.RIP not in r["store_rips"]:
                r["store_rips"].append(now.RIP)
    except Exception as e:
        r["errors"].append(f"write {vaddr:#x}: {e!r}")


def on_opcode(cpu_index, cpu, cur_pc, next_pc):
    r["opcode"] += 1
    try:
        now = read_everything(cpu_index)
        if now.RIP != next_pc:
            r["opcode_rip_wrong"] += 1
    except Exception as e:
        r["errors"].append(f"opcode {cur_pc:#x}: {e!r}")


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    for program in PROGRAMS:
        cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, name=f"main-{program}",
                        addr=CONF[program]["main"])
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_insn, name="insn")
    cm.add_callback(CallbackManager.MEM_WRITE_CB, on_mem_write, name="mem")
    # One-byte opcodes: push/pop, mov, ret, call, jumps, ... (most code).
    cm.add_callback(CallbackManager.OPCODE_RANGE_CB, on_opcode, name="opcode",
                    start_opcode=0x00, end_opcode=0xFF)


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
