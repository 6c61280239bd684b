"""The `cpu` object callbacks receive and `api.r_cpu` returns.

One attribute per register, PyREBox names: RAX..R15 / EAX..EDI, RIP/EIP and
PC, RFLAGS/EFLAGS, CR0-CR4, EFER, segment registers CS DS ES FS GS SS LDT TR
as dicts {sel, base, limit, flags}, GDT and IDT as dicts {base, limit, size},
FS_BASE/GS_BASE, CPU_INDEX.

Registers are read lazily, on first access, so a callback that looks at none
costs nothing for them. Inside a callback the values are the state at the
event; when the callback keeps the object beyond its return, every register
is read before the guest continues, so the object stays a faithful snapshot.

What QEMU cannot give: CR1 (reserved by the architecture) reads 0; DR0-DR7
and MSRs other than EFER/FS_BASE/GS_BASE/KERNEL_GS_BASE are not exposed.
EFLAGS comes from QEMU's state dump, which computes the arithmetic flags.
"""

from __future__ import annotations

import re

from .native import pyrebox as _pyrebox

_GPR64 = ("RAX", "RBX", "RCX", "RDX", "RSI", "RDI", "RBP", "RSP",
          "R8", "R9", "R10", "R11", "R12", "R13", "R14", "R15")
_GPR32 = ("EAX", "EBX", "ECX", "EDX", "ESI", "EDI", "EBP", "ESP")
_SEGMENTS = ("CS", "DS", "ES", "FS", "GS", "SS", "LDT", "TR")
_TABLES = ("GDT", "IDT")
_SEGMENT_LINE = re.compile(
    r"^(ES|CS|SS|DS|FS|GS|LDT|TR)\s*=([0-9a-f]{4}) ([0-9a-f]+) ([0-9a-f]+) ([0-9a-f]+)", re.M)
_TABLE_LINE = re.compile(r"^(GDT|IDT)=\s+([0-9a-f]+) ([0-9a-f]+)", re.M)


def register_names() -> tuple[str, ...]:
    """Every attribute name a cpu object offers on this target."""
    gprs = _GPR64 if _pyrebox.is_64bit() else _GPR32
    pcs = ("RIP", "PC", "RFLAGS", "EFLAGS") if _pyrebox.is_64bit() else ("EIP", "PC", "EFLAGS")
    extra = ("FS_BASE", "GS_BASE", "K_GS_BASE") if _pyrebox.is_64bit() else ()
    return gprs + pcs + ("CR0", "CR1", "CR2", "CR3", "CR4", "EFER") + extra + _SEGMENTS + _TABLES


class Cpu:
    """Registers of one vCPU; see the module documentation."""

    def __init__(self, cpu_index: int, pc: int | None = None):
        self.CPU_INDEX = cpu_index
        if pc is not None:
            # Inside a block the register copy of the PC lags behind; the
            # event knows the exact value.
            self.PC = pc
            if _pyrebox.is_64bit():
                self.RIP = pc
            else:
                self.EIP = pc

    def __getattr__(self, name: str):
        # Only called for attributes not read yet.
        if name.startswith("_"):
            raise AttributeError(name)
        value = _read(self, name)
        setattr(self, name, value)
        return value

    def _state_dump(self) -> str:
        # One QEMU state dump serves every register taken from it.
        dump = self.__dict__.get("_dump")
        if dump is None:
            dump = self.__dict__["_dump"] = _pyrebox.dump_state(self.CPU_INDEX)
        return dump

    def freeze(self) -> "Cpu":
        """Reads every register now (the object becomes a snapshot)."""
        for name in register_names():
            getattr(self, name)
        return self

    def __repr__(self) -> str:
        shown = [f"{n}={getattr(self, n):#x}" for n in register_names()
                 if isinstance(getattr(self, n), int)]
        return f"<cpu {self.CPU_INDEX}: {' '.join(shown)}>"


def _read(cpu: Cpu, name: str):
    cpu_index = cpu.CPU_INDEX
    upper = name.upper()
    if name != upper:
        raise AttributeError(f"cpu has no register {name!r} (register names are upper case)")
    if upper == "PC":
        return _pyrebox.read_register(cpu_index, "rip" if _pyrebox.is_64bit() else "eip")
    if upper in ("EFLAGS", "RFLAGS"):
        # Exact also in the middle of a block (the boundary computes it).
        return _pyrebox.read_register(cpu_index, "eflags")
    if upper in _SEGMENTS:
        for seg, sel, base, limit, flags in _SEGMENT_LINE.findall(cpu._state_dump()):
            if seg == upper:
                return {"sel": int(sel, 16), "base": int(base, 16), "limit": int(limit, 16),
                        "flags": int(flags, 16)}
        raise AttributeError(f"segment {upper} not found in the CPU state")
    if upper in _TABLES:
        for table, base, limit in _TABLE_LINE.findall(cpu._state_dump()):
            if table == upper:
                return {"base": int(base, 16), "limit": int(limit, 16), "size": int(limit, 16) + 1}
        raise AttributeError(f"{upper} not found in the CPU state")
    if upper == "CR1":
        return 0
    if _pyrebox.is_64bit() and upper in _GPR32:
        return _pyrebox.read_register(cpu_index, "r" + upper[1:].lower()) & 0xFFFFFFFF
    if upper not in register_names():
        raise AttributeError(f"cpu has no register {name!r} (see pyrebox.cpu.register_names())")
    return _pyrebox.read_register(cpu_index, upper.lower())
