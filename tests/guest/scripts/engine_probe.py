"""Drives the probe program (guest/programs/probe.c) through every execution
callback type and reports exact counts as one JSON line at clean().

The test writes probe_symbols.json (symbol -> address, from the probe binary)
next to pyrebox.conf before the boot.
"""

import json
import os
import struct

import api
from api import CallbackManager

SYMBOLS = json.load(open(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                      "..", "probe_symbols.json")))
STEP = SYMBOLS["pyrebox_step"]
STEP_BUFFER = SYMBOLS["step_buffer"]
WIDE_BUFFER = SYMBOLS["wide_buffer"]
READ_BUFFER = SYMBOLS["read_buffer"]

cm = None
printer = None
pgd = None
r = {
    "main_hits": 0, "step_block_addr": 0, "step_insn_addr": 0, "step_block_generic": 0,
    "step_block_end_next": 0, "block_end_mismatch": 0, "block_end_checked": 0,
    "late_step": 0, "once": 0, "cpuid_opcode": 0, "cpuid_opcode_next_ok": 0,
    "opcode_other": 0, "insn_end_cpuid": 0,
    "ctx_in": 0, "ctx_out": 0, "step_writes": [], "wide_writes": [], "reads": [],
    "haddr_ok": None, "cpu_mismatch": 0, "cpus": [], "skipped": 0, "identity": 0,
    "tlb_exec": 0, "tlb_exec_step_page": 0, "raised": 0, "eflags_at_site": [],
    "rip_at_site": [], "kernel_at_main": None, "kernel_at_switch": None, "num_cpus": None,
    "cmos_base_memory_kib": None,
    "errors": [], "bad": {}, "bad_registered_nothing": None,
}
last_block_end = {}


def track_cpu(cpu_index):
    if api.get_running_process(cpu_index) != pgd:
        r["cpu_mismatch"] += 1
    if cpu_index not in r["cpus"]:
        r["cpus"].append(cpu_index)


def on_main(cpu_index, cpu):
    global pgd
    r["main_hits"] += 1
    pgd = api.get_running_process(cpu_index)
    api.start_monitoring_process(pgd)
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_step_block_addr, addr=STEP, pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_step_insn_addr, addr=STEP, pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_once, name="once", addr=STEP, pgd=pgd)
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, on_block)
    cm.add_callback(CallbackManager.BLOCK_END_CB, on_block_end)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_checkpoint,
                    addr=SYMBOLS["pyrebox_checkpoint"], pgd=pgd)
    cm.add_callback(CallbackManager.OPCODE_RANGE_CB, on_cpuid, start_opcode=0x1A2,
                    end_opcode=0x1A2)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_identity,
                    addr=SYMBOLS["pyrebox_identity"], pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_skipped,
                    addr=SYMBOLS["pyrebox_skipped"], pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_wide_writes,
                    addr=SYMBOLS["pyrebox_wide_writes"], pgd=pgd)
    cm.add_callback(CallbackManager.CONTEXTCHANGE_CB, on_context)
    cm.add_callback(CallbackManager.TLB_EXEC_CB, on_tlb_exec)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_flags_site,
                    addr=SYMBOLS["pyrebox_flags_site"], pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, raise_always, name="raiser", addr=STEP,
                    pgd=pgd)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, raise_per_checkpoint, name="raiser2",
                    addr=SYMBOLS["pyrebox_checkpoint"], pgd=pgd)
    bad_input_checks(cpu_index)
    r["kernel_at_main"] = api.is_kernel_running(cpu_index)
    r["num_cpus"] = api.get_num_cpus()
    # CMOS bytes 0x15/0x16: base memory in KiB (640 = 0x0280), as QEMU's RTC sets them.
    api.w_ioport(0x70, 1, 0x15)
    low = api.r_ioport(0x71, 1)
    api.w_ioport(0x70, 1, 0x16)
    r["cmos_base_memory_kib"] = low | (api.r_ioport(0x71, 1) << 8)


def bad_input_checks(cpu_index):
    """Each bad call must raise with a message that says what is wrong and
    register nothing."""
    checks = {
        "unknown_type": lambda: cm.add_callback(99, on_step_block_addr),
        "not_callable": lambda: cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, 42),
        "wrong_keyword": lambda: cm.add_callback(CallbackManager.BLOCK_BEGIN_CB,
                                                 on_step_block_addr, adress=1),
        "opcode_order": lambda: cm.add_callback(CallbackManager.OPCODE_RANGE_CB, on_cpuid,
                                                start_opcode=0x1A2, end_opcode=0x1A0),
        "addr_on_mem": lambda: cm.add_callback(CallbackManager.MEM_READ_CB, on_read, addr=STEP),
        "remove_unknown": lambda: cm.rm_callback("no_such_callback"),
        "bad_register_write": lambda: api.w_r(cpu_index, "XYZ", 1),
        "bad_register_read": lambda: api.r_cpu(cpu_index).XYZ,
        "unmapped_read": lambda: api.r_va(pgd, 0x1000, 16),
        "unbacked_physical": lambda: api.r_pa(0xFFFF000000, 16),
        "no_such_cpu": lambda: api.r_cpu(7).RAX,
    }
    before = set(cm.callbacks)
    for key, call in checks.items():
        try:
            call()
            r["bad"][key] = "no exception"
        except Exception as e:
            r["bad"][key] = f"{type(e).__name__}: {e}"
    r["bad_registered_nothing"] = set(cm.callbacks) == before


def on_step_block_addr(cpu_index, cpu, tb):
    r["step_block_addr"] += 1
    track_cpu(cpu_index)


def on_step_insn_addr(cpu_index, cpu):
    r["step_insn_addr"] += 1
    if cpu.RIP != STEP:
        r["errors"].append(f"RIP {cpu.RIP:#x} at step")


def on_once(cpu_index, cpu):
    r["once"] += 1
    cm.rm_callback("once")


def on_block(cpu_index, cpu, tb):
    if tb[0] == STEP:
        r["step_block_generic"] += 1
    expected = last_block_end.pop(cpu_index, None)
    if expected is not None:
        r["block_end_checked"] += 1
        if expected != tb[0]:
            r["block_end_mismatch"] += 1


def on_block_end(cpu_index, cpu, tb, cur_pc, next_pc):
    if next_pc == STEP:
        r["step_block_end_next"] += 1
    last_block_end[cpu_index] = next_pc


def on_checkpoint(cpu_index, cpu):
    n = cpu.RDI
    if n == 1:
        cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_late_step, name="late", addr=STEP,
                        pgd=pgd)
        cm.add_callback(CallbackManager.MEM_WRITE_CB, on_write, name="writes")
        cm_new.add_callback(CallbackManager.MEM_READ_CB, on_read, name="reads")
    elif n == 2:
        api.w_va(pgd, STEP_BUFFER, b"PYREBOX!")
        cm.add_callback(CallbackManager.INSN_END_CB, on_insn_end, name="insn_end")


def on_late_step(cpu_index, cpu):
    r["late_step"] += 1


def on_cpuid(cpu_index, cpu, cur_pc, next_pc):
    if cur_pc == SYMBOLS["pyrebox_cpuid_site"]:
        r["cpuid_opcode"] += 1
        if next_pc == SYMBOLS["pyrebox_cpuid_next"] and cpu.RIP == next_pc:
            r["cpuid_opcode_next_ok"] += 1
    elif cur_pc < 0xFFFF800000000000:
        # Kernel code running in the program's address space (idle time
        # borrowing it on another vCPU) may execute cpuid too; user code
        # other than the probe's site must not.
        r["opcode_other"] += 1


def on_insn_end(cpu_index, cpu):
    # The state after the instruction: RIP is where execution goes next.
    if cpu.RIP == SYMBOLS["pyrebox_cpuid_next"]:
        r["insn_end_cpuid"] += 1


def on_wide_writes(cpu_index, cpu):
    cm.rm_callback("insn_end")


def on_write(cpu_index, vaddr, size, haddr, data):
    if STEP_BUFFER <= vaddr < STEP_BUFFER + 4096:
        r["step_writes"].append([vaddr - STEP_BUFFER, size, data])
        if r["haddr_ok"] is None:
            r["haddr_ok"] = haddr == api.va_to_pa(pgd, vaddr)
    elif WIDE_BUFFER <= vaddr < WIDE_BUFFER + 512:
        r["wide_writes"].append([vaddr - WIDE_BUFFER, size, data])


def on_read(params):
    vaddr = params["vaddr"]
    if READ_BUFFER <= vaddr < READ_BUFFER + 1024:
        r["reads"].append([vaddr - READ_BUFFER, params["size"]])


def on_identity(cpu_index, cpu):
    r["identity"] += 1
    api.w_r(cpu_index, "RDI", 1234)
    cm.rm_callback("writes")
    cm_new.rm_callback("reads")


def on_skipped(cpu_index, cpu):
    # Emulate `ret`: the function body never runs.
    r["skipped"] += 1
    rsp = cpu.RSP
    (return_address,) = struct.unpack("<Q", api.r_va(pgd, rsp, 8))
    api.w_r(cpu_index, "RSP", rsp + 8)
    api.w_r(cpu_index, "RIP", return_address)


def raise_always(cpu_index, cpu):
    r["raised"] += 1
    raise ValueError("raised on purpose at every step")


def raise_per_checkpoint(cpu_index, cpu):
    raise KeyError(f"checkpoint {cpu.RDI}")


def on_flags_site(cpu_index, cpu):
    # Mid-block: the flags of the `cmp` just executed.
    r["eflags_at_site"].append(cpu.EFLAGS)
    r["rip_at_site"].append(api.r_cpu(cpu_index).RIP)


def on_tlb_exec(cpu, vaddr):
    r["tlb_exec"] += 1
    if vaddr >> 12 == STEP >> 12:
        r["tlb_exec_step_page"] += 1


def on_context(old_pgd, new_pgd):
    if pgd is None:
        return
    if r["kernel_at_switch"] is None:
        r["kernel_at_switch"] = all(api.is_kernel_running(i) for i in range(api.get_num_cpus())
                                    if api.get_running_process(i) in (old_pgd, new_pgd))
    if new_pgd == pgd:
        r["ctx_in"] += 1
    if old_pgd == pgd:
        r["ctx_out"] += 1


def on_remove(pid, removed_pgd, name):
    # The probe is gone: its pgd may be given to the next process, which
    # is not the probe (its glibc start-up runs cpuid, for one).
    if pgd is not None and removed_pgd == pgd and api.is_monitored_process(pgd):
        api.stop_monitoring_process(pgd)


def initialize_callbacks(module_hdl, pyrebox_printer):
    global cm, printer
    printer = pyrebox_printer
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, addr=SYMBOLS["main"])
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    # MEM_READ is received as a new_style dict.
    global cm_new
    cm_new = CallbackManager(module_hdl, new_style=True)


def clean():
    import _pyrebox
    r["kpti"] = _pyrebox.kpti()
    r["pgd_bit12"] = bool(pgd is not None and pgd & 0x1000)
    printer("RESULT " + json.dumps(r))
    cm.clean()
    cm_new.clean()
