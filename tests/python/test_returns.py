"""api.on_return and BP(..., on_return=f) (pyrebox.returns) on a fake
_pyrebox: what is read at the entry, the site callback at the return
address, the arguments a return function gets, and bad input."""

from __future__ import annotations

import itertools

import pytest

from fake_pyrebox import FakePyrebox, fake_native  # noqa: F401 - the fixture
from pyrebox import callbacks as cb
from pyrebox import native, return_frames, returns
from pyrebox.breakpoints import BP

PGD = 0x7A000
ENTRY = 0x401200
RETURN_ADDRESS = 0x401005
SP = 0x7FFFF000
USER_CS = 0x33
TLS = 0x4C5000


@pytest.fixture
def fake(fake_native, monkeypatch):  # noqa: F811
    monkeypatch.setattr(returns, "_table", return_frames.PendingReturns())
    monkeypatch.setattr(returns, "_sites", {})
    monkeypatch.setattr(returns, "_manager", None)
    monkeypatch.setattr(returns, "_events", {})
    monkeypatch.setattr(cb, "errors", cb.ErrorReporter())
    monkeypatch.setattr(BP, "_all", {})
    monkeypatch.setattr(BP, "_managers", {})
    monkeypatch.setattr(BP, "_ids", itertools.count(1))
    fake_native.running_pgd[0] = PGD
    regs = fake_native.registers[0]
    regs.update(cs=USER_CS, fs_base=TLS, rip=ENTRY, rsp=SP)
    fake_native.poke(PGD, SP, RETURN_ADDRESS.to_bytes(8, "little"))
    return fake_native


def fire(fake, callback_id, *raw):
    """The engine running one callback (callback_vcpu() is 0 meanwhile)."""
    fake.inside_callback = True
    try:
        return fake.fire(callback_id, *raw)
    finally:
        fake.inside_callback = False


def entry_callback(fake, func, callback_type=cb.INSN_BEGIN_CB, new_style=False):
    manager = cb.CallbackManager(1, new_style=new_style)
    name = manager.add_callback(callback_type, func, addr=ENTRY)
    return manager.callbacks[name]


def site_ids(fake):
    return [i for i, spec in fake.registered.items() if spec["addr"] == RETURN_ADDRESS]


def return_to(fake, sp, rax):
    """The guest executes the return address with `sp` and `rax`."""
    regs = fake.registers[0]
    regs.update(rsp=sp, rax=rax, rip=RETURN_ADDRESS)
    for callback_id in site_ids(fake):
        fire(fake, callback_id, 0, RETURN_ADDRESS)


def test_a_return_fires_once_with_rax_and_its_site_callback_goes(fake):
    got = []
    entry = entry_callback(fake, lambda cpu_index, cpu: returns.on_return(
        cpu_index, lambda *args: got.append(args)))
    fire(fake, entry, 0, ENTRY)
    (site,) = site_ids(fake)
    assert {k: fake.registered[site][k] for k in ("type", "addr", "pgd")} == \
        dict(type=cb.INSN_BEGIN_CB, addr=RETURN_ADDRESS, pgd=PGD)
    assert returns.pending_returns() == [dict(cpu_index=0, pgd=PGD, entry_pc=ENTRY,
                                              return_address=RETURN_ADDRESS, sp=SP + 8,
                                              kernel=False)]
    return_to(fake, SP + 8 - 0x40, 1)  # deeper: not this call's return
    assert got == []
    return_to(fake, SP + 8, 0xFFFFFFFFFFFFFFFE)
    ((cpu_index, cpu, retval),) = got
    assert (cpu_index, cpu.PC, retval) == (0, RETURN_ADDRESS, 0xFFFFFFFFFFFFFFFE)
    assert site_ids(fake) == [] and returns.pending_returns() == []
    assert returns.stats() == {"pending": 0, "fired": 1, "dropped": 0}


def test_new_style_return_functions_get_one_dict(fake):
    got = []
    entry = entry_callback(fake, lambda d: returns.on_return(d["cpu_index"], got.append,
                                                             new_style=True), new_style=True)
    fire(fake, entry, 0, ENTRY)
    fake.running_pgd[0] = PGD
    return_to(fake, SP + 8, 42)
    (d,) = got
    assert set(d) == {"cpu_index", "cpu", "pgd", "retval", "return_address", "sp", "entry_pc"}
    assert (d["cpu_index"], d["pgd"], d["retval"], d["return_address"], d["sp"],
            d["entry_pc"]) == (0, PGD, 42, RETURN_ADDRESS, SP + 8, ENTRY)


def test_kernel_calls_return_in_any_address_space(fake):
    got = []
    fake.registers[0]["cs"] = 0x10
    entry = entry_callback(fake, lambda ci, cpu: returns.on_return(ci, lambda *a: got.append(a)))
    fire(fake, entry, 0, ENTRY)
    (site,) = site_ids(fake)
    assert fake.registered[site]["pgd"] is None
    assert returns.pending_returns()[0]["kernel"] is True
    fake.running_pgd[0] = PGD + 0x1000  # another process's cr3 at the return
    return_to(fake, SP + 8, 5)
    assert [a[2] for a in got] == [5]


def test_on_return_outside_a_callback_says_there_is_no_entry(fake):
    with pytest.raises(RuntimeError, match="on_return: no callback is running, so there is "
                                           "no function entry to return from"):
        returns.on_return(0, print)


def test_bad_arguments_are_refused_with_the_reason(fake):
    errors = []

    def entry(cpu_index, cpu):
        for call in (lambda: returns.on_return(cpu_index, 3),
                     lambda: returns.on_return(1, print)):
            try:
                call()
            except Exception as e:  # noqa: BLE001 - what the test checks
                errors.append(f"{type(e).__name__}: {e}")

    fire(fake, entry_callback(fake, entry), 0, ENTRY)
    assert errors == ["TypeError: on_return: func must be callable, got int",
                      "ValueError: on_return: cpu_index 1 is not the vCPU of the running "
                      "callback (0)"]
    assert fake.registered.keys() == {1}  # only the entry callback


def test_an_unreadable_stack_pointer_is_named(fake):
    fake.registers[0]["rsp"] = 0xDEAD0000
    errors = []

    def entry(cpu_index, cpu):
        try:
            returns.on_return(cpu_index, print)
        except fake.InvalidAddress as e:
            errors.append(str(e))

    fire(fake, entry_callback(fake, entry), 0, ENTRY)
    assert errors == ["on_return: cannot read the return address at the stack pointer "
                      "0xdead0000 (address space 0x7a000): pgd 0x7a000: 0xdead0000 is not "
                      "mapped"]
    assert returns.pending_returns() == []


def test_callbacks_that_do_not_run_before_an_instruction_are_refused(fake):
    errors = []

    def on_read(cpu_index, vaddr, size, haddr):
        try:
            returns.on_return(cpu_index, print)
        except RuntimeError as e:
            errors.append(str(e))

    fire(fake, entry_callback(fake, on_read, cb.MEM_READ_CB), 0, 0x1000, 4, 0x1000)
    assert errors == ["on_return: the running callback is MEM_READ_CB, which does not run "
                      "before an instruction; call it from an INSN_BEGIN_CB (or "
                      "BLOCK_BEGIN_CB) callback at the function's first instruction"]


def test_a_return_function_cannot_arrange_returns_and_its_errors_are_reported(fake):
    seen = []

    def at_return(cpu_index, cpu, retval):
        try:
            returns.on_return(cpu_index, print)
        except RuntimeError as e:
            seen.append(str(e))
        raise KeyError("from the return function")

    fire(fake, entry_callback(fake, lambda ci, cpu: returns.on_return(ci, at_return)), 0, ENTRY)
    return_to(fake, SP + 8, 0)
    assert seen == ["on_return: called from a return function, which runs at a return "
                    "address, not at a function's entry; arrange returns from the entry's "
                    "callback"]
    name = "test_a_return_function_cannot_arrange_returns_and_its_errors_are_reported." \
           "<locals>.at_return"
    assert list(cb.errors.seen) == [("module test_returns", name, "KeyError",
                                     "'from the return function'")]
    assert f"callback {name!r} (on_return) of module test_returns raised" in \
        "\n".join(fake.lines())


def test_the_cap_refuses_one_more_pending_return(fake, monkeypatch):
    monkeypatch.setattr(returns, "_table", return_frames.PendingReturns(limit=1))
    errors = []

    def entry(cpu_index, cpu):
        try:
            returns.on_return(cpu_index, print)
            returns.on_return(cpu_index, print)
        except returns.LimitReached as e:
            errors.append(str(e))

    fire(fake, entry_callback(fake, entry), 0, ENTRY)
    assert errors == ["1 function returns are pending already, the most PyREBox keeps (a "
                      "guest can make as many calls as it likes); this one is not arranged"]
    assert len(returns.pending_returns()) == 1


def test_a_breakpoint_with_on_return_arranges_each_hit_before_its_func(fake):
    order = []
    bp = BP(ENTRY, PGD, func=lambda ci, cpu: order.append(("hit", len(site_ids(fake)))),
            on_return=lambda ci, cpu, retval: order.append(("return", retval)))
    bp.enable()
    assert "-> <lambda>, on_return <lambda>" in str(bp)
    (bp_id,) = fake.registered
    fire(fake, bp_id, 0, ENTRY)
    return_to(fake, SP + 8, 9)
    assert order == [("hit", 1), ("return", 9)]
    # Without func a hit only arranges the return (no shell opens).
    only = BP(ENTRY, PGD, new_style=True, on_return=lambda d: order.append(d["retval"]))
    only.enable()
    fake.registers[0].update(rsp=SP, rip=ENTRY)
    fire(fake, max(fake.registered), 0, ENTRY)
    return_to(fake, SP + 8, 10)
    assert order[-1] == 10


def test_breakpoint_on_return_is_for_single_execution_breakpoints(fake):
    with pytest.raises(ValueError, match="on_return needs an EXECUTION breakpoint at one "
                                         "address"):
        BP(ENTRY, PGD, size=16, on_return=print)
    with pytest.raises(ValueError, match="on_return needs an EXECUTION breakpoint"):
        BP(ENTRY, PGD, typ=BP.MEM_READ, on_return=print)
    with pytest.raises(TypeError, match="on_return must be callable or None, got int"):
        BP(ENTRY, PGD, on_return=1)


def test_forget_all_drops_the_pending_returns_and_their_callbacks(fake):
    fire(fake, entry_callback(fake, lambda ci, cpu: returns.on_return(ci, print)), 0, ENTRY)
    assert len(site_ids(fake)) == 1
    assert returns.forget_all() == 1
    assert site_ids(fake) == [] and returns.pending_returns() == []


def test_i386_reads_one_word_of_four_bytes_and_returns_eax(monkeypatch):
    fake = FakePyrebox(is_64bit=False)
    native.install(fake)
    try:
        monkeypatch.setattr(returns, "_table", return_frames.PendingReturns())
        monkeypatch.setattr(returns, "_sites", {})
        monkeypatch.setattr(returns, "_manager", None)
        monkeypatch.setattr(returns, "_events", {})
        fake.running_pgd[0] = PGD
        fake.registers[0].update(cs=0x73, esp=0xBFFFF000, eip=0x8049000)
        fake.poke(PGD, 0xBFFFF000, (0x8048105).to_bytes(4, "little"))
        got = []
        manager = cb.CallbackManager(1)
        name = manager.add_callback(cb.INSN_BEGIN_CB, lambda ci, cpu: returns.on_return(
            ci, lambda *a: got.append(a[2])), addr=0x8049000)
        fire(fake, manager.callbacks[name], 0, 0x8049000)
        (pending,) = returns.pending_returns()
        assert (pending["return_address"], pending["sp"]) == (0x8048105, 0xBFFFF004)
        fake.registers[0].update(esp=0xBFFFF004, eax=0xFFFFFFFF, eip=0x8048105)
        (site,) = [i for i, s in fake.registered.items() if s["addr"] == 0x8048105]
        fire(fake, site, 0, 0x8048105)
        assert got == [0xFFFFFFFF]
    finally:
        native.install(None)
