"""The shell's address expressions (pyrebox.shell), on a fake _pyrebox:
hex numbers, p-prefixed physical addresses, registers, module!symbol, and
sums and differences of them; addr:length ranges."""

from __future__ import annotations

import importlib

import pytest

from fake_pyrebox import FakePyrebox, fake_native  # noqa: F401 - the fixture
from pyrebox import native
from pyrebox.cpu import Cpu

PGD = 0x7A000


@pytest.fixture
def shell(fake_native):  # noqa: F811
    # The shell imports `api`, whose exception classes are the native
    # module's: it is imported once a fake one is installed.
    return importlib.import_module("pyrebox.shell")


@pytest.fixture
def sh(shell, fake_native):  # noqa: F811
    regs = fake_native.registers[0]
    regs.update(rax=0x400000, rbx=0x10, rsp=0x7FFFFFFFE000, rip=0xFFFFFFFF81000000)
    fake_native.symbols[(PGD, "libc.so.6", "printf")] = 0x7F0000001230
    fake_native.symbols[(PGD, "ld-linux-x86-64.so.2", "_dl_start")] = 0x7F0000100000
    # A Shell without its IPython session: the parser needs the vCPU, its
    # registers and the process.
    s = shell.Shell.__new__(shell.Shell)
    s.cpu_index, s.pgd, s.cpu = 0, PGD, Cpu(0)
    return s


@pytest.mark.parametrize("text, expected", [
    ("1000", (0x1000, False)),
    ("0x1000", (0x1000, False)),
    ("  0XfFfF ", (0xFFFF, False)),
    ("p1000", (0x1000, True)),
    ("P0x2000", (0x2000, True)),
    ("rax", (0x400000, False)),
    ("RAX+10", (0x400010, False)),
    ("rax-rbx", (0x3FFFF0, False)),
    ("rsp - 8 + 0x20", (0x7FFFFFFFE018, False)),
    ("pc+0", (0xFFFFFFFF81000000, False)),
    # p + hex digits is physical, except a register's name: "pc" is the PC.
    ("pc", (0xFFFFFFFF81000000, False)),
    ("PC", (0xFFFFFFFF81000000, False)),
    ("libc.so.6!printf", (0x7F0000001230, False)),
    ("libc.so.6!printf+0x10-8", (0x7F0000001238, False)),
    ("ld-linux-x86-64.so.2!_dl_start+10", (0x7F0000100010, False)),
    ("10+ld-linux-x86-64.so.2!_dl_start-1", (0x7F000010000F, False)),
    ("-10", ((1 << 64) - 0x10, False)),
    ("ffffffffffffffff+2", (1, False)),
])
def test_address(sh, text, expected):
    assert sh.address(text) == expected


@pytest.mark.parametrize("text, message", [
    ("", "an address is missing"),
    ("   ", "an address is missing"),
    ("rax+", "'rax+': a term is missing around '+'"),
    ("1--2", "'1--2': a term is missing around '-'"),
    ("zz", "'zz' is not a hex number"),
    ("0x", "'0x' is not a hex number"),
    ("eax", "'eax' is not a hex number"),  # not a register of a 64-bit vCPU
    ("!printf", "'!printf': give MODULE!SYMBOL"),
    ("libc.so.6!", "'libc.so.6!': give MODULE!SYMBOL"),
    ("libc.so.6!nope", "unknown symbol libc.so.6!nope"),
])
def test_bad_address(shell, sh, text, message):
    with pytest.raises(shell.CommandError) as e:
        sh.address(text)
    assert str(e.value) == message


def test_a_symbol_lookup_that_fails_is_a_command_error(shell, sh, fake_native):  # noqa: F811
    fake_native.linux_on = False
    with pytest.raises(shell.CommandError) as e:
        sh.address("libc.so.6!printf")
    assert str(e.value) == ("unknown symbol libc.so.6!printf: no symbol table for the guest "
                            "kernel")


@pytest.mark.parametrize("text, expected", [
    ("1000", (0x1000, 0x80, False)),
    ("1000:20", (0x1000, 0x20, False)),
    ("p1000:0x20", (0x1000, 0x20, True)),
    ("rax+8:10", (0x400008, 0x10, False)),
    ("libc.so.6!printf:4", (0x7F0000001230, 4, False)),
])
def test_range(sh, text, expected):
    assert sh.range(text, 0x80) == expected


def test_range_length_must_be_positive(shell, sh):
    with pytest.raises(shell.CommandError, match="^the length must be positive$"):
        sh.range("1000:0", 0x80)


def test_32_bit_registers(shell, fake_native):  # noqa: F811
    fake = FakePyrebox(is_64bit=False)
    native.install(fake)
    fake.registers[0].update(eax=0x1234, eip=0x8048000)
    s = shell.Shell.__new__(shell.Shell)
    s.cpu_index, s.pgd, s.cpu = 0, PGD, Cpu(0)
    assert s.address("eip+4") == (0x8048004, False)
    assert s.address("eax") == (0x1234, False)


def test_without_registers_only_numbers_and_symbols_parse(shell, sh):
    sh.cpu = None
    assert sh.address("10") == (0x10, False)
    with pytest.raises(shell.CommandError, match="'rax' is not a hex number"):
        sh.address("rax")
