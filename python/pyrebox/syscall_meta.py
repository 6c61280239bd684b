"""System-call signatures from the running kernel's own metadata.

Kernels built with CONFIG_FTRACE_SYSCALLS (Debian's are) keep one `struct
syscall_metadata __syscall_meta__<name>` per SYSCALL_DEFINE:

    const char *name;         "sys_openat"
    int syscall_nr;           (filled at boot for the x86-64 numbering)
    int nb_args;              0..6 (7.1+: `u8 nb_args:7`, then other fields)
    const char **types;       "int", "const char __user *", "umode_t", ...
    const char **args;        "dfd", "filename", "flags", "mode"

(the layout of those members is the same from 2.6.33 to 7.x; the pointer
array __start_syscalls_metadata is init data, freed after boot, so each
record is found by its symbol). A call is matched to its record by name:
the name the kernel's call table gives the number (pyrebox.syscall_names),
so new calls and renumbered ones need nothing of ours.

Guest memory is untrusted: MAX_STRING bytes per string; a record that does
not read, names another call or has more than six arguments describes
nothing (its calls then have raw arguments only, never a guess).
"""

from __future__ import annotations

import dataclasses
import struct

from . import machine, syscall_names

PREFIX = "__syscall_meta__"
MAX_STRING = 128
MAX_ARGS = 6


@dataclasses.dataclass(frozen=True)
class Signature:
    """A system call as the kernel declares it."""
    name: str                     # without "sys_": "openat"
    arg_names: tuple[str, ...]    # ("dfd", "filename", "flags", "mode")
    arg_types: tuple[str, ...]    # ("int", "const char __user *", "int", "umode_t")


def read_record(record: int, name: str, read_u64, read_u32, read_str) -> Signature | None:
    """The Signature of call `name` from its record at `record`:
    `read_u64(va)`, `read_u32(va)` and `read_str(va, max)` read kernel
    memory (raising on an unreadable address). None when the record does
    not read or is not the record of `name`."""
    try:
        if read_str(read_u64(record), MAX_STRING) != "sys_" + name:
            return None
        # An int up to 7.0; since, the low 7 bits of a byte (the rest of
        # the word holds user_arg_is_str, user_arg_size, user_mask). The
        # count is at most 6 either way: its low byte's low 7 bits hold it.
        nb_args = read_u32(record + 12) & 0x7f
        if nb_args > MAX_ARGS:
            return None
        types_at, args_at = read_u64(record + 16), read_u64(record + 24)
        types = tuple(read_str(read_u64(types_at + 8 * a), MAX_STRING) for a in range(nb_args))
        names = tuple(read_str(read_u64(args_at + 8 * a), MAX_STRING) for a in range(nb_args))
    except Exception:  # noqa: BLE001 - an unreadable record describes nothing
        return None
    return Signature(name, names, types)


# The running kernel's records once read, by name (no symbol lookup).
_by_name: dict[str, Signature] = {}


def forget() -> None:
    """Drops what was read of the running kernel (another kernel: a loadvm)."""
    _by_name.clear()


def of_name(pgd: int, name: str) -> Signature | None:
    """The kernel's signature of call `name` (read through the address
    space `pgd`: the kernel is mapped in each); None when the kernel keeps
    no record of it or its symbols are not known yet."""
    known = _by_name.get(name)
    if known is not None:
        return known
    record = machine.sym_to_va(0, "vmlinux", PREFIX + name)
    if record is None:
        return None

    def read_u64(va: int) -> int:
        return struct.unpack("<Q", machine.r_va(pgd, va, 8))[0]

    def read_u32(va: int) -> int:
        return struct.unpack("<I", machine.r_va(pgd, va, 4))[0]

    def read_str(va: int, limit: int) -> str:
        return machine.read_cstr(pgd, va, limit)

    found = read_record(record, name, read_u64, read_u32, read_str)
    if found is not None:  # not readable now: asked again next time
        _by_name[name] = found
    return found


def signature(pgd: int, number: int, path: int) -> Signature | None:
    """The signature of call `number` on entry path `path` (1: the x86-64
    numbering, else the 32-bit one); None when the kernel names no such
    call or keeps no record of it."""
    name = syscall_names.event_name(pgd, number, path)
    return None if name is None else of_name(pgd, name)
