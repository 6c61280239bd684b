"""The `cpu` object callbacks receive and `api.r_cpu` returns.

One attribute per register, PyREBox names: RAX..R15 / EAX..EDI, RIP/EIP and
PC, RFLAGS/EFLAGS, CR0-CR4, EFER, segment registers CS DS ES FS GS SS LDT TR
as dicts {sel, base, limit, flags}, GDT and IDT as dicts {base, limit, size},
FS_BASE/GS_BASE, CPU_INDEX.

Registers are read lazily, on first access, so a callback that looks at none
costs nothing for them. Inside a callback the values are the state at the
event; when the callback keeps the object beyond its return, every register
is read before the guest continues, so the object stays a faithful snapshot.

Writing an attribute writes the register, as api.w_r does: `cpu.RAX = 1`
inside the callback that received `cpu` (on its vCPU); the object then
holds the new value. Writing the PC (RIP/EIP/PC) redirects execution there
when the callback returns. On a 64-bit target the 32-bit names (EAX...)
write the whole register, zero-extended, as a 32-bit `mov` does. A segment
register takes its selector. A cpu object that is a snapshot (kept beyond
its callback, returned by api.r_cpu, or frozen with freeze()) refuses
writes with CpuWriteError, as does any write outside a callback on its
vCPU; CPU_INDEX, CR1, GDT and IDT cannot be written. Any other name raises
AttributeError.

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


class CpuWriteError(AttributeError):
    """A register write the cpu object refuses (a snapshot, or no callback
    of its vCPU is running)."""


class Cpu:
    """Registers of one vCPU; see the module documentation."""

    def __init__(self, cpu_index: int, pc: int | None = None):
        values = self.__dict__
        values["CPU_INDEX"] = cpu_index
        if pc is not None:
            # Inside a block the register copy of the PC lags behind; the
            # event knows the exact value.
            _set_pc(values, pc)

    def __getattr__(self, name: str):
        # Only called for attributes not read yet.
        if name.startswith("_"):
            raise AttributeError(name)
        value = _read(self, name)
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value) -> None:
        _write(self, name, value)

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cpu registers cannot be deleted ({name!r})")

    def _state_dump(self) -> str:
        # One QEMU state dump serves every register taken from it.
        dump = self.__dict__.get("_dump")
        if dump is None:
            dump = self.__dict__["_dump"] = _pyrebox.dump_state(self.CPU_INDEX)
        return dump

    def freeze(self) -> "Cpu":
        """Reads every register now: the object becomes a snapshot, which
        refuses register writes."""
        for name in register_names():
            getattr(self, name)
        self.__dict__["_frozen"] = True
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


def _register_name(regname: str) -> str:
    if not isinstance(regname, str):
        raise ValueError(f"register name must be a str, got {regname!r}")
    upper = regname.upper()
    if upper == "PC":
        return "rip" if _pyrebox.is_64bit() else "eip"
    names = {n.upper(): n for n in _pyrebox.register_names()}
    if upper not in names:
        raise ValueError(f"unknown register {regname!r} for this target (valid: "
                         f"{', '.join(sorted(names))}, PC)")
    return names[upper]


def write_register(cpu_index: int, regname: str, value: int) -> None:
    """Writes a register (api.w_r). Writing the PC (RIP/EIP/PC) inside a
    callback redirects execution there when the callback returns."""
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"register value must be a non-negative int, got {value!r}")
    _pyrebox.write_register(cpu_index, _register_name(regname), value)


_pc_name: str | None = None  # "RIP" or "EIP": the guest's width does not change


def construction(name: str, index: str, pc: str | None) -> list[str]:
    """Python statements that make `name` what `Cpu(index, pc)` makes, with
    no call: event adapters (pyrebox.callbacks) build a cpu object per event
    with them. The adapter's namespace has `new` (object.__new__) and Cpu."""
    lines = [f"{name} = new(Cpu)", f"{name}_values = {name}.__dict__",
             f"{name}_values['CPU_INDEX'] = {index}"]
    if pc is not None:
        lines.append(f"{name}_values['PC'] = {name}_values[{pc_register()!r}] = {pc}")
    return lines


def pc_register() -> str:
    """The program counter's name: RIP, or EIP on a 32-bit target."""
    global _pc_name
    if _pc_name is None:
        _pc_name = "RIP" if _pyrebox.is_64bit() else "EIP"
    return _pc_name


def _set_pc(values: dict, pc: int) -> None:
    values["PC"] = pc
    values[pc_register()] = pc


# Registers a write cannot reach, and why.
_NOT_WRITABLE = {
    "CPU_INDEX": "it is the vCPU's number, not a register",
    "CR1": "it is reserved by the architecture",
    "GDT": "QEMU does not let the GDT register be written",
    "IDT": "QEMU does not let the IDT register be written",
}


def _write(cpu: Cpu, name: str, value) -> None:
    if name.startswith("_"):
        raise AttributeError(f"cpu has no attribute {name!r} to set")
    if name != name.upper():
        raise AttributeError(f"cpu has no register {name!r} (register names are upper case)")
    if name in _NOT_WRITABLE:
        raise CpuWriteError(f"cpu register {name} cannot be written: {_NOT_WRITABLE[name]}")
    if name not in register_names() and name not in _GPR32:
        raise AttributeError(f"cpu has no register {name!r} "
                             f"(see pyrebox.cpu.register_names())")
    values = cpu.__dict__
    if values.get("_frozen"):
        raise CpuWriteError(
            f"cannot write cpu register {name}: this cpu object is a read-only snapshot (kept "
            f"after its callback returned, from api.r_cpu, or frozen); write registers from "
            f"inside the callback that received the object, or with api.w_r")
    if _pyrebox.callback_vcpu() != cpu.CPU_INDEX:
        raise CpuWriteError(
            f"cannot write cpu register {name}: no callback of vCPU {cpu.CPU_INDEX} is running "
            f"(a cpu object writes registers only inside the callback that received it)")
    target = name
    if _pyrebox.is_64bit() and name in _GPR32:
        # A 32-bit write zero-extends into the 64-bit register.
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1 << 32:
            raise ValueError(f"{name} is 32 bits wide; {value:#x} does not fit")
        target = "R" + name[1:]
    write_register(cpu.CPU_INDEX, target, value)
    # The object holds what the register holds now.
    if name in ("PC", "RIP", "EIP"):
        _set_pc(values, value)
        return
    stale = {name, target}
    if target in _GPR64 and target[1:] in ("AX", "BX", "CX", "DX", "SI", "DI", "BP", "SP"):
        stale.add("E" + target[1:])
    if name in ("EFLAGS", "RFLAGS"):
        stale |= {"EFLAGS", "RFLAGS"}
    if name in _SEGMENTS:
        stale.add("_dump")
        if name in ("FS", "GS"):
            stale |= {"FS_BASE", "GS_BASE"}
    for key in stale:
        values.pop(key, None)
    if name in _SEGMENTS:
        return  # read again from the state dump when asked
    values[name] = _read(cpu, name)
