"""api.backtrace: the frames of the thread running on a vCPU, from the
guest's memory, unwound by pyrebox.unwind (see pyrebox/unwind/walk.py for
the methods: DWARF CFI, frame pointers, marked stack scans; kernel frames
by scan up to the user registers the entry code saved).

The walk reads the address space the vCPU runs in (the kernel half is the
same in every one); the user modules are that process's module list, the
kernel text is vmlinux's [_stext, _etext) and the kernel modules' text
regions. Frames are named as the shell's `ln` names addresses
(symbolize.Symbolizer: the covering symbol, else the nearest preceding one
of the module, with host symbol files found by build ID).
"""

from __future__ import annotations

from . import machine
from .symbolize import Symbolizer
from .unwind import cfi
from .unwind.frames import REGS, Backtrace
from .unwind.memory import Memory, UnwindError
from .unwind.walk import MAX_FRAMES, Modules, Walker

__all__ = ["backtrace", "UnwindError"]

_FAILURES = (ValueError, RuntimeError)  # InvalidAddress, IntrospectionError
_REGISTERS = {"RBX": cfi.RBX, "RBP": cfi.RBP, "R12": cfi.R12, "R13": cfi.R13,
              "R14": cfi.R14, "R15": cfi.R15, "RSP": cfi.RSP}


def _kernel_text() -> list[tuple[int, int]]:
    ranges = []
    try:
        start = machine.sym_to_va(0, "vmlinux", "_stext")
        end = machine.sym_to_va(0, "vmlinux", "_etext")
        if start is not None and end is not None:
            ranges.append((start, end))
        for m in machine.get_module_list(0):
            for region in m.get("regions") or ():
                if "text" in region.get("name", ""):
                    ranges.append((region["base"], region["base"] + region["size"]))
    except _FAILURES:
        pass
    return ranges


def backtrace(cpu_index: int = 0, cpu=None, max_frames: int = MAX_FRAMES) -> Backtrace:
    """The frames of the thread on vCPU `cpu_index`, innermost first: a
    Backtrace (a list of Frame: pc, sp, how, kernel, module, symbol,
    offset, text; frame["pc"] works too) whose `stop` says why the walk
    ended. `cpu`: the cpu object a callback received (its PC is exact in
    the middle of a block), else the vCPU's registers are read. Raises
    UnwindError (a ValueError) naming the address and the reason when not
    even one caller can be found from the registers."""
    if cpu is None:
        cpu = machine.r_cpu(cpu_index)
    pgd = machine.get_running_process(cpu_index)
    regs = {reg: getattr(cpu, name) for name, reg in _REGISTERS.items()}
    regs[cfi.RA] = cpu.PC
    in_kernel = (cpu.CS["sel"] & 3) == 0
    memory = Memory(lambda addr, size: machine.r_va(pgd, addr, size))
    modules = machine.get_module_list(pgd) if pgd else []
    text = _kernel_text() if in_kernel else []
    walker = Walker(memory, Modules(memory, [(m["base"], m["size"]) for m in modules]),
                    kernel_text=lambda addr: any(a <= addr < b for a, b in text),
                    max_frames=max_frames)
    frames = walker.walk(regs, in_kernel)
    names = Symbolizer(modules={pgd: modules} if pgd else None)
    for frame in frames:
        lookup = frame.pc if frame.how == REGS else frame.pc - 1
        found = names.nearest(pgd, frame.pc, lookup)
        frame.module, frame.symbol, frame.offset = found.module, found.symbol, found.offset
    return frames
