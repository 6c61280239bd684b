"""api.BP (pyrebox.breakpoints) on a fake _pyrebox: what each kind of
breakpoint registers, its trigger variables, its text, and a hit without a
function opening the shell."""

from __future__ import annotations

import itertools
import os

import pytest

from fake_pyrebox import fake_native  # noqa: F401 - the fixture
from pyrebox import breakpoints, triggers
from pyrebox import callbacks as cb
from pyrebox.breakpoints import BP

PGD = 0x7A000
ANY_PGD = (1 << 64) - 1


@pytest.fixture
def fake(fake_native, monkeypatch):  # noqa: F811
    monkeypatch.setattr(BP, "_all", {})
    monkeypatch.setattr(BP, "_managers", {})
    monkeypatch.setattr(BP, "_ids", itertools.count(1))
    monkeypatch.setattr(cb, "errors", cb.ErrorReporter())
    built = []

    def build(path, is_64bit):
        built.append(os.path.relpath(path, breakpoints.TRIGGERS))
        return os.path.basename(path) + ".so", False

    monkeypatch.setattr(triggers, "build", build)
    opened = []
    monkeypatch.setattr(breakpoints, "_shell_opener",
                        lambda cpu_index, reason: opened.append((cpu_index, reason)))
    fake_native.built, fake_native.opened = built, opened
    return fake_native


def only_callback(fake):
    (spec,) = fake.registered.values()
    return {k: v for k, v in spec.items() if k != "adapter"}


def test_an_execution_breakpoint_is_an_address_specific_callback(fake):
    bp = BP(0x401000, PGD, func=lambda *a: None)
    assert not bp.enabled() and fake.registered == {}
    bp.enable()
    assert bp.enabled()
    assert only_callback(fake) == dict(type=cb.INSN_BEGIN_CB, addr=0x401000, pgd=PGD,
                                       start_opcode=0, end_opcode=0, trigger_path=None,
                                       trigger_needs_gil=False, trigger_handle=0)
    assert fake.built == []
    bp.enable()  # enabled already: nothing more
    assert len(fake.registered) == 1
    bp.disable()
    assert not bp.enabled() and fake.registered == {} and fake.unregistered == [1]


@pytest.mark.parametrize("typ, size, pgd, trigger, callback_type, variables", [
    (BP.EXECUTION, 0x20, PGD, "trigger_bp_memrange", cb.INSN_BEGIN_CB,
     {"begin": 0x401000, "end": 0x401020, "pgd": PGD}),
    (BP.MEM_READ, 0, None, "trigger_bpr_memrange", cb.MEM_READ_CB,
     {"begin": 0x401000, "end": 0x401001, "pgd": ANY_PGD}),
    (BP.MEM_WRITE, 8, PGD, "trigger_bpw_memrange", cb.MEM_WRITE_CB,
     {"begin": 0x401000, "end": 0x401008, "pgd": PGD}),
    (BP.MEM_READ_PHYS, 0x1000, PGD, "trigger_bpr_memrange_phys", cb.MEM_READ_CB,
     {"begin": 0x401000, "end": 0x402000}),
    (BP.MEM_WRITE_PHYS, 2, None, "trigger_bpw_memrange_phys", cb.MEM_WRITE_CB,
     {"begin": 0x401000, "end": 0x401002}),
])
def test_range_and_memory_breakpoints_put_a_trigger_in_front(fake, typ, size, pgd, trigger,
                                                             callback_type, variables):
    bp = BP(0x401000, pgd, size=size, typ=typ, func=lambda *a: None)
    bp.enable()
    assert fake.built == [trigger]
    # Registered plain first, then again behind the trigger.
    assert fake.unregistered == [1]
    spec = only_callback(fake)
    assert (spec["type"], spec["addr"], spec["pgd"], spec["trigger_path"]) == \
        (callback_type, None, None, trigger + ".so")
    assert fake.trigger_vars == {1: variables}
    if typ in (BP.MEM_READ_PHYS, BP.MEM_WRITE_PHYS):
        assert bp.get_pgd() is None  # physical: no address space
    bp.remove()
    assert fake.registered == {} and BP.list() == []


def test_32_bit_any_process_is_the_32_bit_all_ones(fake):
    fake._64 = False
    BP(0x8048000, None, size=4, typ=BP.MEM_WRITE, func=print).enable()
    assert fake.trigger_vars[1]["pgd"] == 0xFFFFFFFF


def test_a_trigger_that_fails_leaves_nothing_registered(fake, monkeypatch):
    def refuse(path, is_64bit):
        raise triggers.TriggerError("trigger x: does not compile")

    monkeypatch.setattr(triggers, "build", refuse)
    bp = BP(0x1000, PGD, size=0x10, typ=BP.MEM_READ, func=print)
    with pytest.raises(triggers.TriggerError, match="does not compile"):
        bp.enable()
    assert not bp.enabled() and fake.registered == {} and fake.unregistered == [1]


def test_a_symbol_address_is_resolved_in_the_breakpoints_address_space(fake):
    fake.symbols[(PGD, "libc.so.6", "printf")] = 0x7F0000001230
    fake.symbols[(0, "vmlinux", "do_sys_open")] = 0xFFFFFFFF81234560
    assert BP("libc.so.6!printf", PGD).get_addr() == 0x7F0000001230
    assert BP("vmlinux!do_sys_open", None).get_addr() == 0xFFFFFFFF81234560
    with pytest.raises(ValueError) as e:
        BP("libc.so.6!nope", PGD)
    assert str(e.value) == ("cannot resolve 'libc.so.6!nope': module 'libc.so.6' has no symbol "
                            "'nope' (address space 0x7a000)")


def test_a_symbol_of_a_module_not_mapped_yet_makes_a_pending_breakpoint(fake):
    bp = BP("libdl.so!dlopen", PGD)
    assert bp.get_addr() is None and bp.pending() == "unknown module"
    assert bp.get_symbol() == ("libdl.so", "dlopen") and not bp.enabled()
    bp.enable()
    assert bp.enabled() and "libdl.so!dlopen (pending: unknown module)" in str(bp)
    bp.disable()
    assert not bp.enabled()


@pytest.mark.parametrize("args, error, message", [
    ((0x1000, None, 0, 9), ValueError, "unknown breakpoint type 9; use BP.EXECUTION, "),
    ((0x1000, None, -1), ValueError, "size must be a non-negative int, got -1"),
    ((0x1000, -5), ValueError, "pgd must be a non-negative int or None, got -5"),
    ((-1, None), ValueError, "address must be non-negative, got -0x1"),
    (("printf", None), ValueError, "address must be an int or 'module!symbol', got 'printf'"),
    ((0x1000, None, 0, BP.EXECUTION, 7), TypeError, "func must be callable or None, got int"),
])
def test_bad_breakpoints_are_refused(fake, args, error, message):
    with pytest.raises(error) as e:
        BP(*args)
    assert str(e.value).startswith(message)
    assert BP.list() == []


def test_text_list_and_get(fake):
    def on_hit(*args):
        pass

    a = BP(0x401000, PGD, func=on_hit)
    b = BP(0x601000, None, size=0x10, typ=BP.MEM_WRITE)
    c = BP(0x2000, PGD, typ=BP.MEM_READ_PHYS)
    a.enable()
    assert [str(x) for x in BP.list()] == [
        "[1] EXECUTION 0x401000 (pgd 0x7a000) enabled -> on_hit",
        "[2] MEM_WRITE 0x601000-0x601010 (any process) disabled -> shell",
        "[3] MEM_READ_PHYS 0x2000 (physical) disabled -> shell"]
    assert BP.get(2) is b and repr(c) == str(c)
    with pytest.raises(ValueError, match=r"^no breakpoint 7 \(have: 1, 2, 3\)$"):
        BP.get(7)


def test_a_hit_without_a_function_opens_the_shell(fake, capsys):
    bp = BP(0x401000, PGD)
    bp.enable()
    fake.fire(1, 0, 0x401000)
    assert fake.opened == [(0, "breakpoint 1: execution at 0x401000")]
    assert capsys.readouterr().out == ""  # the shell's banner says what hit


def test_a_memory_hit_says_what_was_accessed(fake, capsys):
    BP(0x601000, None, size=0x10, typ=BP.MEM_WRITE).enable()
    BP(0x601000, None, size=0x10, typ=BP.MEM_READ, new_style=True).enable()
    write_id, read_id = sorted(fake.registered)
    fake.fire(write_id, 0, 0x601008, 4, 0x2601008, 0xABCD)
    fake.fire(read_id, 0, 0x601000, 8, 0x2601000)
    assert fake.opened == [
        (0, "breakpoint 1: write of 4 byte(s) at 0x601008 (physical 0x2601008), value "
            "0x0000abcd"),
        (0, "breakpoint 2: read of 8 byte(s) at 0x601000 (physical 0x2601000)")]
    capsys.readouterr()


def test_without_a_shell_a_hit_says_so(fake, monkeypatch, capsys):
    monkeypatch.setattr(breakpoints, "_shell_opener", None)
    BP(0x401000, PGD).enable()
    fake.fire(1, 0, 0x401000)
    assert fake.lines() == [
        "[pyrebox] error: breakpoint 1 hit on vCPU 0: execution at 0x401000; it has no "
        "function and the shell cannot open: no shell is available here"]


def test_breakpoints_of_both_styles_share_one_manager_each(fake):
    for new_style in (False, True, False):
        BP(0x1000, None, func=print, new_style=new_style).enable()
    managers = BP._managers
    assert sorted(managers) == [False, True]
    assert sorted(managers[False].callbacks) == ["bp_1", "bp_3"]
    assert list(managers[True].callbacks) == ["bp_2"] and managers[True].new_style
