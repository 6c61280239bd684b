"""A stand-in for `_pyrebox` (the module the QEMU plugin embeds), so the
package's Python logic runs in unit tests.

    from fake_pyrebox import fake_native   # the fixture
    def test_x(fake_native): fake_native.memory[...] = ...

It holds what the tests need: memory (virtual, per pgd, and physical),
registers of each vCPU, Linux symbols and processes, and a callback registry
that records each registration's arguments. Nothing runs a guest: a test
fires a registered adapter itself (`fake.fire(id, *raw_args)`).
"""

from __future__ import annotations

import itertools

import pytest

from pyrebox import native


class InvalidAddress(ValueError):
    """Like the plugin's: unreadable or unmapped memory."""


class IntrospectionError(Exception):
    """Like the plugin's: Linux introspection is off or failed."""


REGISTERS_64 = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10",
                "r11", "r12", "r13", "r14", "r15", "rip", "eflags", "cr0", "cr2", "cr3",
                "cr4", "efer", "fs_base", "gs_base", "k_gs_base", "cs")
REGISTERS_32 = ("eax", "ebx", "ecx", "edx", "esi", "edi", "ebp", "esp", "eip", "eflags", "cr0",
                "cr2", "cr3", "cr4", "efer", "cs")


class FakePyrebox:
    InvalidAddress = InvalidAddress
    IntrospectionError = IntrospectionError

    def __init__(self, is_64bit: bool = True, cpus: int = 1):
        self._64 = is_64bit
        self.cpus = cpus
        names = REGISTERS_64 if is_64bit else REGISTERS_32
        self.registers = [dict.fromkeys(names, 0) for _ in range(cpus)]
        self.segments = {seg: (0x10, 0, 0xFFFFFFFF, 0x00CF9300)
                         for seg in ("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR")}
        self.segments["CS"] = (0x33, 0, 0xFFFFFFFF, 0x00A0FB00)
        self.tables = {"GDT": (0xFFFFFE0000001000, 0x7F), "IDT": (0xFFFFFE0000000000, 0xFFF)}
        self.virtual: dict[int, dict[int, int]] = {}  # pgd -> addr -> byte
        self.physical: dict[int, int] = {}
        self.symbols: dict[tuple[int, str, str], int] = {}  # (pgd, module, symbol) -> va
        self.processes: list[dict] = []
        self.running_pgd = [0] * cpus
        self.linux_on = True
        self.table_pending = False
        self.off_reason = "no symbol table for the guest kernel"
        self.nic = False
        self.inside_callback = False
        self.written: list[tuple[str, str]] = []  # (prefix, text) of write()
        self.registered: dict[int, dict] = {}  # id -> register_callback's arguments
        self.unregistered: list[int] = []
        self.batches: list[str] = []  # begin_batch / end_batch calls, in order
        self.trigger_vars: dict[int, dict[str, object]] = {}
        self.trigger_calls: list[tuple[int, str]] = []
        self._ids = itertools.count(1)
        self._trigger_handles = itertools.count(1)

    # --- console ---

    def write(self, prefix: str, text: str) -> None:
        self.written.append((prefix, text))

    def lines(self) -> list[str]:
        """Every console line written, with its prefix."""
        return [prefix + line for prefix, text in self.written for line in text.split("\n")]

    # --- machine ---

    def is_64bit(self) -> bool:
        return self._64

    def num_cpus(self) -> int:
        return self.cpus

    def callback_vcpu(self) -> int:
        return 0 if self.inside_callback else -1

    def in_callback(self) -> bool:
        return self.inside_callback

    def register_names(self) -> list[str]:
        return list(self.registers[0])

    def read_register(self, cpu: int, name: str) -> int:
        return self.registers[cpu][name]

    def write_register(self, cpu: int, name: str, value: int) -> None:
        self.registers[cpu][name] = value

    def dump_state(self, cpu: int) -> str:
        """QEMU's state dump, its segment and descriptor-table lines."""
        lines = [f"{seg:<3}={sel:04x} {base:016x} {limit:08x} {flags:08x}"
                 for seg, (sel, base, limit, flags) in self.segments.items()]
        lines += [f"{table}=     {base:016x} {limit:08x}"
                  for table, (base, limit) in self.tables.items()]
        return "\n".join(lines) + "\n"

    def current_pgd(self, cpu: int) -> int:
        return self.running_pgd[cpu]

    def poke(self, pgd: int | None, addr: int, data: bytes) -> None:
        """Test helper: puts `data` at `addr` of `pgd` (None: physical)."""
        space = self.physical if pgd is None else self.virtual.setdefault(pgd, {})
        for i, b in enumerate(data):
            space[addr + i] = b

    @staticmethod
    def _read(space: dict[int, int], addr: int, length: int, where: str) -> bytes:
        missing = [a for a in range(addr, addr + length) if a not in space]
        if missing:
            raise InvalidAddress(f"{where}: {missing[0]:#x} is not mapped")
        return bytes(space[a] for a in range(addr, addr + length))

    def read_virtual(self, pgd: int, addr: int, length: int) -> bytes:
        return self._read(self.virtual.get(pgd, {}), addr, length, f"pgd {pgd:#x}")

    def read_physical(self, addr: int, length: int) -> bytes:
        return self._read(self.physical, addr, length, "physical memory")

    def write_virtual(self, pgd: int, addr: int, data: bytes) -> None:
        self.read_virtual(pgd, addr, len(data))
        self.poke(pgd, addr, data)

    def write_physical(self, addr: int, data: bytes) -> None:
        self.read_physical(addr, len(data))
        self.poke(None, addr, data)

    # --- Linux introspection ---

    def linux_enabled(self) -> bool:
        return self.linux_on

    def linux_table_pending(self) -> bool:
        return self.table_pending

    def linux_off_reason(self) -> str:
        return self.off_reason

    def linux_sym_to_va(self, pgd: int, mod: str, sym: str):
        if not self.linux_on:
            raise IntrospectionError(self.off_reason)
        return self.symbols.get((pgd, mod, sym))

    def linux_symbol_lookup(self, pgd: int, mod: str, sym: str):
        """As the plugin's: (address, None) or (None, why); a module is known
        when `symbols` has any symbol of it in that pgd."""
        address = self.linux_sym_to_va(pgd, mod, sym)
        if address is not None:
            return address, None
        known = any(k[0] == pgd and k[1] == mod for k in self.symbols)
        return None, "unknown symbol" if known else "unknown module"

    def linux_processes(self) -> list[dict]:
        return [dict(p) for p in self.processes]

    def nic_observed(self) -> bool:
        return self.nic

    # --- callbacks and triggers ---

    def register_callback(self, type, adapter, addr=None, pgd=None, start_opcode=0,
                          end_opcode=0, all_processes=False, trigger_path=None,
                          trigger_needs_gil=False):
        callback_id = next(self._ids)
        handle = next(self._trigger_handles) if trigger_path is not None else 0
        self.registered[callback_id] = dict(
            type=type, adapter=adapter, addr=addr, pgd=pgd, start_opcode=start_opcode,
            end_opcode=end_opcode, trigger_path=trigger_path,
            trigger_needs_gil=trigger_needs_gil, trigger_handle=handle)
        if all_processes:
            self.registered[callback_id]["all_processes"] = True
        if handle:
            self.trigger_vars[handle] = {}
        return callback_id, handle

    def unregister_callback(self, callback_id: int) -> bool:
        self.unregistered.append(callback_id)
        return self.registered.pop(callback_id, None) is not None

    def begin_batch(self) -> None:
        self.batches.append("begin")

    def end_batch(self) -> None:
        self.batches.append("end")

    def fire(self, callback_id: int, *raw):
        """Test helper: the engine calling the callback's adapter."""
        return self.registered[callback_id]["adapter"](*raw)

    def trigger_set_uint(self, handle: int, key: str, value: int) -> None:
        self.trigger_vars[handle][key] = value

    def trigger_set_str(self, handle: int, key: str, value: str) -> None:
        self.trigger_vars[handle][key] = value

    def trigger_get(self, handle: int, key: str):
        return self.trigger_vars[handle].get(key)

    def trigger_call_function(self, handle: int, name: str) -> None:
        self.trigger_calls.append((handle, name))


@pytest.fixture
def fake_native():
    """A fresh FakePyrebox installed as `_pyrebox` for one test."""
    fake = FakePyrebox()
    native.install(fake)
    yield fake
    native.install(None)
