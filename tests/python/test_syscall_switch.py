"""The system-call numbering read from the kernel's dispatch switch, on the
built default guest's kernel image: the x86-64 switch gives exactly what
its sys_call_table gives, and the 32-bit switch (the kernel keeps no
ia32_sys_call_table) the i386 ABI's numbers."""

from __future__ import annotations

import struct

import pytest

from pyrebox import paths, syscall_names, syscall_switch
from pyrebox.symbols import load_kernel, read_kallsyms

pytestmark = pytest.mark.built_guest


@pytest.fixture(scope="module")
def kernel():
    elf = load_kernel(paths.require(paths.GUEST_KERNEL, "the default guest's kernel"))
    symbols = read_kallsyms(elf).symbols
    by_address: dict[int, str] = {}
    for s in symbols:
        by_address.setdefault(s.address, s.name)
    return elf, {s.name: s.address for s in symbols}, by_address


def decoded(kernel, function):
    elf, address, by_address = kernel
    handlers = syscall_switch.decode(
        address[function], elf.read, by_address.get,
        lambda name: name in syscall_names.UNUSED or syscall_names.handler_name(name) is not None)
    return {n: syscall_names.handler_name(h) for n, h in handlers.items()
            if syscall_names.handler_name(h)}


def test_the_x64_switch_agrees_with_sys_call_table_on_every_number(kernel):
    elf, address, by_address = kernel
    table = syscall_names.read_table(
        address["sys_call_table"], lambda va: struct.unpack("<Q", elf.read(va, 8))[0],
        by_address.get)
    assert len(table) > 300
    assert decoded(kernel, "x64_sys_call") == table


def test_the_ia32_switch_gives_the_i386_numbers(kernel):
    _, address, _ = kernel
    assert "ia32_sys_call_table" not in address
    names = decoded(kernel, "ia32_sys_call")
    assert len(names) > 380
    # The i386 ABI's numbers (arch/x86/entry/syscalls/syscall_32.tbl).
    assert {n: names.get(n) for n in (1, 3, 4, 5, 6, 11, 20, 64, 190, 252, 435)} == {
        1: "exit", 3: "read", 4: "write", 5: "open", 6: "close", 11: "execve", 20: "getpid",
        64: "getppid", 190: "vfork", 252: "exit_group", 435: "clone3"}


def test_code_that_is_no_switch_yields_nothing_and_ends():
    code = bytes.fromhex("c3") + b"\xcc" * 63  # ret
    assert syscall_switch.decode(0x1000, lambda va, n: code[:n], lambda va: None,
                                 lambda name: True) == {}
    loop = bytes.fromhex("ebfe") + b"\xcc" * 62  # jmp . (a loop: visited once)
    assert syscall_switch.decode(0x1000, lambda va, n: loop[:n], lambda va: None,
                                 lambda name: True) == {}


def test_a_table_entry_named_by_its_inner_function_still_names_the_call():
    """5.10's 32-bit table: sigreturn's handler shares its address with
    __do_compat_sys_sigreturn, the name a lookup may give; the table goes on."""
    handlers = {0x1000: "__ia32_sys_restart_syscall", 0x2000: "__do_compat_sys_sigreturn",
                0x3000: "__ia32_sys_exit_group", 0x4000: "some_data"}
    entries = [0x1000, 0x2000, 0x3000, 0x4000]
    names = syscall_names.read_table(
        0x80000, lambda va: entries[(va - 0x80000) // 8], handlers.get)
    assert names == {0: "restart_syscall", 1: "sigreturn", 2: "exit_group"}
