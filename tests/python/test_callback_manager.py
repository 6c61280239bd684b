"""CallbackManager's registration paths (pyrebox.callbacks), on a fake
_pyrebox: what reaches the engine, names, checks, warnings, removal,
triggers, and how the adapters call the script's function."""

from __future__ import annotations

import pytest

from fake_pyrebox import fake_native  # noqa: F401 - the fixture
from pyrebox import callbacks as cb
from pyrebox import triggers
from pyrebox.callbacks import CallbackManager

TRIGGER_OBJ = "/triggers/t-x86_64-softmmu.so"


@pytest.fixture
def fake(fake_native, monkeypatch):  # noqa: F811
    monkeypatch.setattr(cb, "errors", cb.ErrorReporter())
    monkeypatch.setattr(cb, "_owner_resolver", None)
    built = []

    def build(path, is_64bit):
        built.append((path, is_64bit))
        return TRIGGER_OBJ, True

    monkeypatch.setattr(triggers, "build", build)
    fake_native.built = built
    return fake_native


def spec_of(fake, callback_id):
    spec = dict(fake.registered[callback_id])
    spec.pop("adapter")
    return spec


def ids(manager):
    return dict(manager.callbacks)


def test_add_callback_registers_the_spec(fake):
    m = CallbackManager(3)
    assert m.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: None, name="hit",
                          addr=0x401000, pgd=0x7A000) == "hit"
    assert ids(m) == {"hit": 1}
    assert spec_of(fake, 1) == dict(type=4, addr=0x401000, pgd=0x7A000, start_opcode=0,
                                    end_opcode=0, trigger_path=None, trigger_needs_gil=False,
                                    trigger_handle=0)
    assert m.callback_exists("hit") and not m.callback_exists("other")
    assert m.get_module_handle() == 3


def test_tlb_exec_is_for_every_process_unless_monitored_only(fake):
    m = CallbackManager(1)
    m.add_callback(CallbackManager.TLB_EXEC_CB, lambda *a: None)
    m.add_callback(CallbackManager.TLB_EXEC_CB, lambda *a: None, monitored_only=True)
    assert spec_of(fake, 1).get("all_processes") is True
    assert "all_processes" not in spec_of(fake, 2)


def test_opcode_range_passes_its_opcodes(fake):
    m = CallbackManager(1)
    m.add_callback(CallbackManager.OPCODE_RANGE_CB, lambda *a: None, name="op",
                   start_opcode=0x0F05, end_opcode=0x0F34)
    assert spec_of(fake, 1)["type"] == 11
    assert (spec_of(fake, 1)["start_opcode"], spec_of(fake, 1)["end_opcode"]) == (0x0F05, 0x0F34)


def test_a_taken_name_gets_a_suffix_and_a_missing_one_a_default(fake):
    m = CallbackManager(1)
    f = lambda *a: None  # noqa: E731
    assert [m.add_callback(CallbackManager.BLOCK_BEGIN_CB, f, name="b") for _ in range(3)] \
        == ["b", "b_1", "b_2"]
    default = m.add_callback(CallbackManager.MEM_WRITE_CB, f)
    assert default.startswith("mem_write_") and default[len("mem_write_"):].isdigit()
    assert ids(m) == {"b": 1, "b_1": 2, "b_2": 3, default: 4}


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(callback_type=99), ValueError, "unknown callback type 99; use one of "
     "CallbackManager.BLOCK_BEGIN_CB, "),
    (dict(callback_type="4"), ValueError, "unknown callback type '4'"),
    (dict(func=42), TypeError, "callback function must be callable, got int"),
    (dict(addr=-1), ValueError, "addr must be a non-negative int, got -1"),
    (dict(pgd="0x10"), ValueError, "pgd must be a non-negative int, got '0x10'"),
    (dict(start_opcode=1), ValueError, "give both start_opcode and end_opcode"),
    (dict(callback_type=11), ValueError, "OPCODE_RANGE_CB needs start_opcode and end_opcode"),
    (dict(monitored_only=True), ValueError, "monitored_only applies to TLB_EXEC_CB; "
     "INSN_BEGIN_CB callbacks already fire for monitored processes only"),
    (dict(callback_type=12, monitored_only=1), ValueError,
     "monitored_only must be True or False, got 1"),
])
def test_bad_registrations_are_refused(fake, kwargs, error, message):
    args = dict(callback_type=CallbackManager.INSN_BEGIN_CB, func=lambda *a: None)
    args.update(kwargs)
    m = CallbackManager(1)
    with pytest.raises(error) as e:
        m.add_callback(args.pop("callback_type"), args.pop("func"), **args)
    assert str(e.value).startswith(message)
    assert fake.registered == {} and m.callbacks == {}


def test_a_process_callback_warns_when_introspection_is_off(fake):
    fake.linux_on = False
    fake.off_reason = "the kernel has no BTF"
    cb.set_owner_resolver(lambda handle: "script demo" if handle == 5 else None)
    CallbackManager(5).add_callback(CallbackManager.CREATEPROC_CB, lambda *a: None, name="p")
    CallbackManager(6).add_callback(CallbackManager.REMOVEPROC_CB, lambda *a: None, name="q")
    assert fake.lines() == [
        "[pyrebox] warning: script demo: CREATEPROC_CB 'p' is registered but will not fire: "
        "the kernel has no BTF",
        "[pyrebox] warning: module handle 6: REMOVEPROC_CB 'q' is registered but will not fire: "
        "the kernel has no BTF"]


def test_no_warning_while_the_table_is_being_built(fake):
    fake.linux_on, fake.table_pending = False, True
    CallbackManager(5).add_callback(CallbackManager.LOADMODULE_CB, lambda *a: None)
    assert fake.lines() == []


def test_a_nic_callback_warns_without_an_observed_nic(fake):
    CallbackManager(2).add_callback(CallbackManager.NIC_SEND_CB, lambda *a: None, name="tx")
    assert len(fake.lines()) == 1
    assert fake.lines()[0].startswith(
        "[pyrebox] warning: NIC_SEND_CB callback 'tx' of module handle 2 is registered, but this "
        "VM has no NIC PyREBox observes")
    fake.nic = True
    CallbackManager(2).add_callback(CallbackManager.NIC_REC_CB, lambda *a: None, name="rx")
    assert len(fake.lines()) == 1


def test_rm_callback_and_clean(fake):
    m = CallbackManager(1)
    for name in ("a", "b", "c"):
        m.add_callback(CallbackManager.INSN_END_CB, lambda *a: None, name=name)
    m.rm_callback("b")
    assert fake.unregistered == [2] and ids(m) == {"a": 1, "c": 3}
    with pytest.raises(ValueError) as e:
        m.rm_callback("b")
    assert str(e.value) == "CallbackManager: no callback named 'b' to remove (registered: a, c)"
    m.clean()
    assert fake.unregistered == [2, 1, 3] and m.callbacks == {} and fake.registered == {}


def test_remove_callbacks_of_a_module_handle(fake):
    keep = CallbackManager(8)
    keep.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: None, name="k")
    first, second = CallbackManager(9), CallbackManager(9, new_style=True)
    first.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: None, name="x")
    second.add_callback(CallbackManager.BLOCK_END_CB, lambda *a: None, name="y")
    second.add_callback(CallbackManager.BLOCK_END_CB, lambda *a: None, name="z")
    assert cb.remove_callbacks_of(9) == 3
    assert sorted(fake.unregistered) == [2, 3, 4] and list(fake.registered) == [1]
    assert cb.remove_callbacks_of(9) == 0


def test_the_adapter_passes_pyrebox_arguments(fake):
    calls = []
    old, new = CallbackManager(1), CallbackManager(1, new_style=True)
    old.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: calls.append(a), name="o")
    new.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: calls.append(a), name="n")
    fake.fire(old.callbacks["o"], 0, 0x401000)
    fake.fire(new.callbacks["n"], 0, 0x401002)
    (index, cpu), (d,) = calls
    assert index == 0 and (cpu.PC, cpu.RIP, cpu.CPU_INDEX) == (0x401000, 0x401000, 0)
    assert sorted(d) == ["cpu", "cpu_index"] and d["cpu"].PC == 0x401002


def test_a_cpu_the_function_keeps_is_frozen_before_the_guest_continues(fake):
    kept, passed = [], []
    m = CallbackManager(1)
    m.add_callback(CallbackManager.INSN_BEGIN_CB, lambda i, c: kept.append(c), name="keep")
    m.add_callback(CallbackManager.INSN_BEGIN_CB, lambda i, c: passed.append(i), name="drop")
    regs = fake.registers[0]
    regs.update(rax=0x1111, cr3=0x7A000)
    fake.fire(1, 0, 0x401000)
    fake.fire(2, 0, 0x401000)
    regs.update(rax=0x2222, cr3=0x7B000)
    assert passed == [0]
    (cpu,) = kept
    # Every register was read at the event: the later values do not show.
    assert (cpu.RAX, cpu.CR3, cpu.PC) == (0x1111, 0x7A000, 0x401000)
    assert cpu.CS == {"sel": 0x33, "base": 0, "limit": 0xFFFFFFFF, "flags": 0x00A0FB00}
    assert cpu.GDT == {"base": 0xFFFFFE0000001000, "limit": 0x7F, "size": 0x80}


def test_the_memory_write_adapter(fake):
    calls = []
    CallbackManager(1).add_callback(CallbackManager.MEM_WRITE_CB, lambda *a: calls.append(a))
    CallbackManager(1, new_style=True).add_callback(CallbackManager.MEM_WRITE_CB,
                                                   lambda *a: calls.append(a))
    fake.fire(1, 0, 0x601000, 4, 0x2601000, 0xCAFE)
    fake.fire(2, 0, 0x601000, 4, 0x2601000, 0xCAFE)
    assert calls == [(0, 0x601000, 4, 0x2601000, 0xCAFE),
                     ({"cpu_index": 0, "vaddr": 0x601000, "size": 4, "haddr": 0x2601000,
                       "data": 0xCAFE},)]


def test_a_callback_error_is_printed_once_and_counted(fake):
    cb.set_owner_resolver(lambda handle: "script demo")

    def boom(*args):
        raise RuntimeError("bad value")

    CallbackManager(4).add_callback(CallbackManager.INSN_BEGIN_CB, boom, name="boom")
    for _ in range(3):
        fake.fire(1, 0, 0x1000)  # the adapter itself does not raise
    errors = [line for line in fake.lines() if "error" in line]
    assert errors[0] == ("[pyrebox] error: callback 'boom' (INSN_BEGIN_CB) of script demo "
                         "raised; it stays registered and identical errors are counted, not "
                         "printed:")
    assert fake.lines()[-1] == "[pyrebox] error: RuntimeError: bad value"
    assert sum(line.startswith("[pyrebox] error: callback") for line in fake.lines()) == 1
    assert cb.errors.seen == {("script demo", "boom", "RuntimeError", "bad value"): 3}


def test_add_trigger_re_registers_the_callback_behind_the_trigger(fake):
    m = CallbackManager(1)
    m.add_callback(CallbackManager.MEM_READ_CB, lambda *a: None, name="r")
    m.add_trigger("r", "triggers/t")
    assert fake.built == [("triggers/t", True)]
    assert fake.unregistered == [1] and ids(m) == {"r": 2}
    spec = spec_of(fake, 2)
    assert (spec["type"], spec["trigger_path"], spec["trigger_needs_gil"],
            spec["trigger_handle"]) == (6, TRIGGER_OBJ, True, 1)
    m.set_trigger_var("r", "begin", 0x1000)
    m.set_trigger_var("r", "name", "init")
    assert fake.trigger_vars[1] == {"begin": 0x1000, "name": "init"}
    assert m.get_trigger_var("r", "begin") == 0x1000 and m.get_trigger_var("r", "x") is None
    m.call_trigger_function("r", "reset")
    assert fake.trigger_calls == [(1, "reset")]
    m.rm_trigger("r")
    assert fake.unregistered == [1, 2] and ids(m) == {"r": 3}
    assert spec_of(fake, 3)["trigger_path"] is None
    with pytest.raises(ValueError, match=r"^callback 'r' has no trigger \(add one with "
                                         r"add_trigger\)$"):
        m.set_trigger_var("r", "begin", 1)


@pytest.mark.parametrize("value, message", [
    (-1, "trigger variable 'v': -1 is not an unsigned int of the target's word size"),
    (1 << 64, f"trigger variable 'v': {1 << 64} is not an unsigned int of the target's word "
              f"size"),
    (True, "trigger variable 'v': unsupported type bool (use str or unsigned int)"),
    (1.5, "trigger variable 'v': unsupported type float (use str or unsigned int)"),
])
def test_bad_trigger_variables(fake, value, message):
    m = CallbackManager(1)
    m.add_callback(CallbackManager.MEM_READ_CB, lambda *a: None, name="r")
    m.add_trigger("r", "t")
    with pytest.raises(ValueError) as e:
        m.set_trigger_var("r", "v", value)
    assert str(e.value) == message
    assert fake.trigger_vars[1] == {}


def test_a_trigger_for_an_unknown_callback(fake):
    with pytest.raises(ValueError) as e:
        CallbackManager(1).add_trigger("nope", "t")
    assert str(e.value) == "CallbackManager: no callback named 'nope' (registered: none)"
    assert fake.built == []


def test_trigger_paths_resolve_against_the_given_folders(tmp_path, monkeypatch):
    here, conf = tmp_path / "cwd", tmp_path / "conf"
    here.mkdir()
    conf.mkdir()
    (conf / "t.cpp").write_text("")
    (here / "u.c").write_text("")
    monkeypatch.chdir(here)
    monkeypatch.setattr(triggers, "_search_path", [])
    assert triggers._resolve("t") == str(here / "t")  # not found: the current folder
    triggers.set_search_path([str(conf), ""])
    assert triggers._search_path == [str(conf)]
    assert triggers._resolve("t") == str(conf / "t")
    assert triggers._resolve("u") == str(here / "u")
    assert triggers._resolve("/abs/../x") == "/x"


def test_errors_that_change_every_time_are_rate_limited(fake, monkeypatch):
    """A callback whose message changes on every event: three printed in
    full, then one line per interval with the count (a fake clock)."""
    now = [0.0]
    monkeypatch.setattr(cb, "errors", cb.ErrorReporter(clock=lambda: now[0]))
    cb.set_owner_resolver(lambda handle: "script demo")
    calls = [0]

    def boom(*args):
        calls[0] += 1
        raise ValueError(f"value {calls[0]}")

    CallbackManager(4).add_callback(CallbackManager.INSN_BEGIN_CB, boom, name="boom")
    for i in range(10_000):
        now[0] = i * 0.01  # 100 s in all
        fake.fire(1, 0, 0x1000)
    headers = [l for l in fake.lines() if l.startswith("[pyrebox] error: callback")]
    full = [l for l in headers if l.endswith("not printed:")]
    counted = [l for l in headers if "more error(s)" in l]
    assert len(full) == 3
    # The first counted error says so at once, then a line per 10 s.
    assert len(counted) == 10
    assert counted[0] == ("[pyrebox] error: callback 'boom' (INSN_BEGIN_CB) of script demo: 1 "
                          "more error(s) (4 in all; 3 different ones were printed, the rest are "
                          "counted, a line every 10 s); the last: ValueError: value 4")
    assert counted[1].startswith("[pyrebox] error: callback 'boom' (INSN_BEGIN_CB) of script "
                                 "demo: 1000 more error(s) (1004 in all;")
    assert calls[0] == 10_000


@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_base_exceptions_are_reported_and_do_not_escape(fake, exc):
    cb.set_owner_resolver(lambda handle: "script demo")

    def leave(*args):
        raise exc

    CallbackManager(4).add_callback(CallbackManager.INSN_BEGIN_CB, leave, name="leave")
    fake.fire(1, 0, 0x1000)
    fake.fire(1, 0, 0x1000)
    assert cb.errors.seen == {("script demo", "leave", type(exc).__name__, str(exc)): 2}
