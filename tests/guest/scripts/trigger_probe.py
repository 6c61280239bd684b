"""Native triggers on the probe program (guest/programs/probe.c); reports
one JSON line at clean(). The test writes probe_symbols.json and the
broken/mistyped trigger sources beside pyrebox.conf."""

import json
import os

import api
from api import CallbackManager

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "..")
SYMBOLS = json.load(open(os.path.join(WORK, "probe_symbols.json")))
STEP = SYMBOLS["pyrebox_step"]
STEP_BUFFER = SYMBOLS["step_buffer"]
WIDE_BUFFER = SYMBOLS["wide_buffer"]

cm = None
printer = None
pgd = None
r = {"writes": [], "outside_range": 0, "late_writes": [], "user_blocks": 0, "kernel_blocks": 0,
     "bp_hits": 0, "counter": None, "counter_after_reset": None, "errors": {},
     "unchanged_after_errors": None, "removed_trigger_calls_python": None,
     "phys_writes": [], "phys_store_pcs": [], "op_insn_hits": 0, "tlb_exec": None,
     "tlb_exec_monitored_only": 0, "probe_switched_in": None}
phys_base = None
# TLB_EXEC with nothing monitored: events, the address spaces they came
# from, events in pyrebox_step's page per address space; switches into each.
tlb = {"total": 0, "pgds": set(), "step_page": {}}
switched_in = {}


def on_main(cpu_index, cpu):
    global pgd
    pgd = api.get_running_process(cpu_index)
    # Range write breakpoint over step_buffer, in the probe only.
    name = cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="bpw")
    cm.add_trigger(name, "triggers/trigger_bpw_memrange")
    cm.set_trigger_var(name, "begin", STEP_BUFFER)
    cm.set_trigger_var(name, "end", STEP_BUFFER + 4096)
    cm.set_trigger_var(name, "pgd", pgd)
    # A second range write breakpoint with an empty range until
    # pyrebox_wide_writes starts, then over wide_buffer: accesses outside
    # every trigger's window are skipped before any trigger runs, so the move
    # (nothing else changes at that moment) must reach that filter.
    name = cm.add_callback(CallbackManager.MEM_WRITE_CB, on_late_write, name="bpw_late")
    cm.add_trigger(name, "triggers/trigger_bpw_memrange")
    cm.set_trigger_var(name, "begin", 0)
    cm.set_trigger_var(name, "end", 0)
    cm.set_trigger_var(name, "pgd", pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_wide_writes,
                    addr=SYMBOLS["pyrebox_wide_writes"], pgd=pgd)
    # Execution range breakpoint on pyrebox_step's first byte; its end is
    # moved at checkpoint 1, which must stop the hits.
    name = cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_bp, name="bp", addr=STEP)
    cm.add_trigger(name, "triggers/trigger_bp_memrange.so")
    cm.set_trigger_var(name, "begin", STEP)
    cm.set_trigger_var(name, "end", STEP + 1)
    cm.set_trigger_var(name, "pgd", pgd)
    # A counter kept by the trigger, no Python call per event.
    name = cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_never, name="counter", addr=STEP)
    cm.add_trigger(name, "triggers/trigger_counter")
    cm.set_trigger_var(name, "addr", STEP)
    cm.set_trigger_var(name, "pgd", pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_checkpoint,
                    addr=SYMBOLS["pyrebox_checkpoint"], pgd=pgd)
    # PyREBox-style triggers (written by the test): a physical range write
    # trigger reading haddr, data and cpu (its range is set at checkpoint 1),
    # and the template's OP_INSN_BEGIN_CB kind at pyrebox_step.
    name = cm.add_callback(CallbackManager.MEM_WRITE_CB, on_phys_write, name="phys")
    cm.add_trigger(name, os.path.join(WORK, "haddr_data_trigger"))
    name = cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_op_insn, name="op_insn", addr=STEP,
                           pgd=pgd)
    cm.add_trigger(name, os.path.join(WORK, "op_insn_trigger"))
    # User-mode blocks of the probe only.
    name = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_user_block, name="user_only")
    cm.add_trigger(name, "triggers/trigger_user_only")
    cm.set_trigger_var(name, "pgd", pgd)
    error_checks()


def error_checks():
    name = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_never, name="victim")
    before = dict(cm.callbacks)
    for key, path in (("broken", "broken_trigger"), ("wrong_type", "mistyped_trigger"),
                      ("missing", "no_such_trigger"), ("op_without_addr", "op_insn_trigger")):
        try:
            cm.add_trigger(name, os.path.join(WORK, path))
            r["errors"][key] = "no exception"
        except Exception as e:
            r["errors"][key] = f"{type(e).__name__}: {e}"
    r["unchanged_after_errors"] = cm.callbacks == before and not cm.callback_exists("nope")
    cm.rm_callback(name)


def on_write(cpu_index, vaddr, size, haddr, data):
    if STEP_BUFFER <= vaddr < STEP_BUFFER + 4096:
        r["writes"].append([vaddr - STEP_BUFFER, size, data])
    else:
        r["outside_range"] += 1


def on_wide_writes(cpu_index, cpu):
    cm.set_trigger_var("bpw_late", "begin", WIDE_BUFFER)
    cm.set_trigger_var("bpw_late", "end", WIDE_BUFFER + 64 * 8)


def on_late_write(cpu_index, vaddr, size, haddr, data):
    r["late_writes"].append([vaddr - WIDE_BUFFER, size, data])


def on_bp(cpu_index, cpu):
    r["bp_hits"] += 1


def on_never(*args):
    r["errors"].setdefault("never_called", 0)
    r["errors"]["never_called"] += 1


def on_phys_write(cpu_index, vaddr, size, haddr, data):
    r["phys_writes"].append([vaddr - STEP_BUFFER, haddr - phys_base, size, data])
    pc = cm.get_trigger_var("phys", "pc")
    if pc not in r["phys_store_pcs"]:
        r["phys_store_pcs"].append(pc)


def on_op_insn(cpu_index, cpu):
    r["op_insn_hits"] += 1


def on_tlb_exec(cpu, vaddr):
    running = api.get_running_process(0)  # one vCPU
    tlb["total"] += 1
    tlb["pgds"].add(running)
    if vaddr >> 12 == STEP >> 12:
        tlb["step_page"][running] = tlb["step_page"].get(running, 0) + 1


def on_tlb_exec_monitored_only(cpu, vaddr):
    r["tlb_exec_monitored_only"] += 1


def on_context(old_pgd, new_pgd):
    switched_in[new_pgd] = switched_in.get(new_pgd, 0) + 1


def on_checkpoint(cpu_index, cpu):
    global phys_base
    if cpu.RDI == 1:
        cm.set_trigger_var("bp", "end", STEP)  # empty range from now on
        # step_buffer is one page, written since the first step.
        phys_base = api.va_to_pa(pgd, STEP_BUFFER)
        cm.set_trigger_var("phys", "begin", phys_base)
        cm.set_trigger_var("phys", "end", phys_base + 4096)
    elif cpu.RDI == 2:
        # The frame is the probe's until it exits: stop watching it now.
        cm.rm_callback("phys")
        r["counter"] = cm.get_trigger_var("counter", "count")
        cm.call_trigger_function("counter", "reset")
        r["counter_after_reset"] = cm.get_trigger_var("counter", "count")
        cm.rm_trigger("user_only")
        cm.rm_callback("user_only")


def on_user_block(cpu_index, cpu, tb):
    if tb[0] > 0x00007fffffffffff:
        r["kernel_blocks"] += 1
    else:
        r["user_blocks"] += 1


def initialize_callbacks(module_hdl, pyrebox_printer):
    global cm, printer
    printer = pyrebox_printer
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=SYMBOLS["main"])
    cm.add_callback(CallbackManager.TLB_EXEC_CB, on_tlb_exec)
    cm.add_callback(CallbackManager.TLB_EXEC_CB, on_tlb_exec_monitored_only, monitored_only=True)
    cm.add_callback(CallbackManager.CONTEXTCHANGE_CB, on_context)


def clean():
    step_page = dict(tlb["step_page"])
    r["tlb_exec"] = {"total": tlb["total"], "address_spaces": len(tlb["pgds"]),
                     "probe_step_page": step_page.pop(pgd, 0),
                     "other_step_page": sum(step_page.values())}
    r["probe_switched_in"] = switched_in.get(pgd, 0)
    printer("RESULT " + json.dumps(r))
    cm.clean()
