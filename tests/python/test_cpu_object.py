"""The cpu object's register writes, outside QEMU: a stand-in for the
plugin's `_pyrebox` module records what would reach the vCPU."""

from __future__ import annotations

import importlib
import types

import pytest

from pyrebox import native


class FakeVcpu:
    """Registers of vCPU 0 of an x86_64 target, and which callback runs."""

    NAMES = ["rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp"] + \
        [f"r{i}" for i in range(8, 16)] + ["rip", "eflags", "cs", "ss", "ds", "es", "fs", "gs",
                                          "fs_base", "gs_base", "k_gs_base", "cr0", "cr2",
                                          "cr3", "cr4", "efer"]

    def __init__(self):
        self.regs = {n: 0 for n in self.NAMES}
        self.regs["eflags"] = 0x2
        self.running = -1  # callback_vcpu(): -1 outside callbacks
        self.writes = []

    def module(self):
        m = types.ModuleType("_pyrebox")
        m.is_64bit = lambda: True
        m.register_names = lambda: list(self.NAMES)
        m.read_register = lambda cpu, name: self.regs[name]
        m.callback_vcpu = lambda: self.running

        def write_register(cpu, name, value):
            self.writes.append((cpu, name, value))
            self.regs[name] = value | (0x2 if name == "eflags" else 0)

        m.write_register = write_register
        # The lines of QEMU's state dump the segments and tables come from.
        m.dump_state = lambda cpu: "".join(
            f"{seg:<3}=0010 0000000000000000 ffffffff 00a09b00\n"
            for seg in ("ES", "CS", "SS", "DS", "FS", "GS", "LDT", "TR")) + \
            "GDT=     fffffe0000001000 0000007f\nIDT=     fffffe0000000000 00000fff\n"
        m.InvalidAddress = type("InvalidAddress", (ValueError,), {})
        m.IntrospectionError = type("IntrospectionError", (Exception,), {})
        return m


@pytest.fixture
def vcpu():
    fake = FakeVcpu()
    native.install(fake.module())
    fake.cpu_module = importlib.import_module("pyrebox.cpu")
    yield fake
    native.install(None)


def test_a_write_inside_its_callback_reaches_the_register_and_the_object(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0, pc=0x1000)
    assert cpu.RAX == 0
    cpu.RAX = 0x1_2345_6789
    assert vcpu.writes == [(0, "rax", 0x1_2345_6789)]
    assert cpu.RAX == 0x1_2345_6789
    assert cpu.EAX == 0x2345_6789  # the 32-bit view follows


def test_a_32_bit_name_writes_the_whole_register_zero_extended(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0)
    vcpu.regs["rsi"] = 0xFFFF_FFFF_0000_0000
    cpu.ESI = 0x5678
    assert vcpu.writes == [(0, "rsi", 0x5678)]
    assert cpu.RSI == 0x5678 and cpu.ESI == 0x5678
    with pytest.raises(ValueError, match="ESI is 32 bits wide"):
        cpu.ESI = 1 << 32


def test_the_pc_names_are_one_register(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0, pc=0x1000)
    cpu.PC = 0x2000
    assert vcpu.writes == [(0, "rip", 0x2000)]
    assert cpu.PC == cpu.RIP == 0x2000


def test_the_flags_hold_what_the_register_holds_after_the_write(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0)
    assert cpu.RFLAGS == 0x2
    cpu.EFLAGS = 0x1
    assert cpu.EFLAGS == cpu.RFLAGS == 0x3  # bit 1 is always set


def test_a_snapshot_refuses_writes(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0).freeze()
    with pytest.raises(vcpu.cpu_module.CpuWriteError,
                       match="cannot write cpu register RBX: this cpu object is a read-only "
                             "snapshot") as info:
        cpu.RBX = 1
    assert isinstance(info.value, AttributeError)
    assert vcpu.writes == []


def test_a_write_while_no_callback_of_its_vcpu_runs_is_refused(vcpu):
    cpu = vcpu.cpu_module.Cpu(0)
    with pytest.raises(vcpu.cpu_module.CpuWriteError, match="no callback of vCPU 0 is running"):
        cpu.RCX = 1
    vcpu.running = 1  # another vCPU's callback
    with pytest.raises(vcpu.cpu_module.CpuWriteError, match="no callback of vCPU 0 is running"):
        cpu.RCX = 1
    assert vcpu.writes == []


@pytest.mark.parametrize("name, message", [
    ("FOO", "cpu has no register 'FOO'"),
    ("rax", "register names are upper case"),
    ("_private", "cpu has no attribute '_private'"),
])
def test_unknown_names_raise_attribute_error(vcpu, name, message):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0)
    with pytest.raises(AttributeError, match=message) as info:
        setattr(cpu, name, 1)
    assert not isinstance(info.value, vcpu.cpu_module.CpuWriteError)


@pytest.mark.parametrize("name", ["CPU_INDEX", "CR1", "GDT", "IDT"])
def test_names_that_are_not_writable_registers(vcpu, name):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0)
    with pytest.raises(vcpu.cpu_module.CpuWriteError, match=f"cpu register {name} cannot be "
                                                             f"written"):
        setattr(cpu, name, 1)
    assert cpu.CPU_INDEX == 0


def test_values_are_checked_as_w_r_checks_them(vcpu):
    vcpu.running = 0
    cpu = vcpu.cpu_module.Cpu(0)
    with pytest.raises(ValueError, match="non-negative int"):
        cpu.RAX = -1
    with pytest.raises(ValueError, match="non-negative int"):
        cpu.RAX = "1"
    assert vcpu.writes == []
