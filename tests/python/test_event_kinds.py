"""The event-kind table and what is built from it: the adapters' arguments
for every callback type in both styles, the docs' callback table and the
trigger SDK header's numbers and structs. No QEMU."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

from pyrebox import callbacks, cpu as cpu_module, event_kinds  # noqa: E402 - _pyrebox: on first use

cpu_module._pc_name = "RIP"  # what an x86-64 target's _pyrebox would say

SDK_HEADER = os.path.join(ROOT, "include", "pyrebox", "sdk", "callbacks.h")


class FakeCpu:
    """Records how the adapter built it (the values Cpu's construction
    sets) and whether it was frozen."""

    frozen = False
    cpu_index = property(lambda self: self.__dict__["CPU_INDEX"])
    pc = property(lambda self: self.__dict__.get("PC"))

    def freeze(self):
        self.frozen = True


def test_the_adapters_cpu_is_what_cpu_makes():
    """The statements adapters build a cpu object with set what Cpu() sets."""
    namespace = {"new": object.__new__, "Cpu": cpu_module.Cpu}
    exec("\n".join(cpu_module.construction("c", "3", "0x401000")), namespace)  # noqa: S102
    assert namespace["c"].__dict__ == cpu_module.Cpu(3, 0x401000).__dict__
    exec("\n".join(cpu_module.construction("c", "1", None)), namespace)  # noqa: S102
    assert namespace["c"].__dict__ == cpu_module.Cpu(1).__dict__


CPU = object()  # stands for "the adapter's Cpu object" in the expectations below
FRAME = b"\x01\x02\x03\x04\x05\x06"

# type: (raw arguments as PythonHandler passes them, the Cpu's (index, pc),
#        old-style arguments, new-style dict). These are PyREBox's arguments.
# The derived `name` of SYSCALL events, as the runtime's derivation would
# give it for the cases below.
callbacks.set_derivation("syscall_name",
                         lambda pgd, number, path: {(0x9000, 257, 1): "openat"}.get(
                             (pgd, number, path)))



class FakeArguments:
    """What the derivation of `args` gives: frozen when the callback keeps it."""

    def __init__(self, inputs):
        self.inputs, self.frozen = inputs, False

    def freeze(self):
        self.frozen = True
        return self

    def __eq__(self, other):
        return isinstance(other, FakeArguments) and self.inputs == other.inputs


ARGS = FakeArguments((0x9000, 257, 1, (1, 2, 3, 4, 5, 6)))
ARGS_RET = FakeArguments((0x9000, 257, 1, (1, 2, 3, 4, 5, 6), -2))
callbacks.set_derivation("syscall_args", lambda *inputs: FakeArguments(inputs))
callbacks.set_derivation("syscall_args_ret", lambda *inputs: FakeArguments(inputs))
callbacks.set_derivation("syscall_error", lambda retval: {-2: "ENOENT"}.get(retval))

CASES = {
    "BLOCK_BEGIN_CB": ((1, 0x1000, 16, 4), (1, 0x1000),
                       (1, CPU, (0x1000, 16, 4)),
                       {"cpu_index": 1, "cpu": CPU, "tb": (0x1000, 16, 4)}),
    # raw: cpu_index, next_pc, tb.pc, tb.size, tb.icount, pc (the last instruction)
    "BLOCK_END_CB": ((0, 0x2000, 0x1000, 16, 4, 0x100c), (0, 0x2000),
                     (0, CPU, (0x1000, 16, 4), 0x100c, 0x2000),
                     {"cpu_index": 0, "cpu": CPU, "tb": (0x1000, 16, 4), "cur_pc": 0x100c,
                      "next_pc": 0x2000}),
    "INSN_BEGIN_CB": ((1, 0x400000), (1, 0x400000), (1, CPU), {"cpu_index": 1, "cpu": CPU}),
    "INSN_END_CB": ((0, 0x400003), (0, 0x400003), (0, CPU), {"cpu_index": 0, "cpu": CPU}),
    "MEM_READ_CB": ((0, 0x7000, 8, 0x3000), None, (0, 0x7000, 8, 0x3000),
                    {"cpu_index": 0, "vaddr": 0x7000, "size": 8, "haddr": 0x3000}),
    "MEM_WRITE_CB": ((1, 0x7008, 4, 0x3008, 0xdeadbeef), None, (1, 0x7008, 4, 0x3008, 0xdeadbeef),
                     {"cpu_index": 1, "vaddr": 0x7008, "size": 4, "haddr": 0x3008,
                      "data": 0xdeadbeef}),
    # raw: cpu_index, next_pc, pc
    "OPCODE_RANGE_CB": ((0, 0x401002, 0x401000), (0, 0x401002), (0, CPU, 0x401000, 0x401002),
                        {"cpu_index": 0, "cpu": CPU, "cur_pc": 0x401000, "next_pc": 0x401002}),
    "TLB_EXEC_CB": ((1, 0x5000), (1, None), (CPU, 0x5000), {"cpu": CPU, "vaddr": 0x5000}),
    # raw: cpu_index, pc, pid, tid, pgd, number, path, args
    "SYSCALL_CB": ((0, 0x401000, 7, 8, 0x9000, 257, 1, (1, 2, 3, 4, 5, 6)), (0, 0x401000),
                   (0, CPU, 7, 8, 0x9000, 257, "openat", ARGS, (1, 2, 3, 4, 5, 6)),
                   {"cpu_index": 0, "cpu": CPU, "pid": 7, "tid": 8, "pgd": 0x9000, "number": 257,
                    "name": "openat", "args": ARGS, "raw": (1, 2, 3, 4, 5, 6), "path": 1,
                    "pc": 0x401000}),
    # raw: cpu_index, next_pc, pid, tid, pgd, number, path, args, retval, child, pc
    "SYSCALL_RET_CB": ((0, 0x401002, 7, 8, 0x9000, 257, 1, (1, 2, 3, 4, 5, 6), -2, 0, 0x401000),
                       (0, 0x401002),
                       (0, CPU, 7, 8, 0x9000, 257, "openat", ARGS_RET, (1, 2, 3, 4, 5, 6), -2,
                        "ENOENT"),
                       {"cpu_index": 0, "cpu": CPU, "pid": 7, "tid": 8, "pgd": 0x9000,
                        "number": 257, "name": "openat", "args": ARGS_RET,
                        "raw": (1, 2, 3, 4, 5, 6), "retval": -2, "error": "ENOENT", "child": 0,
                        "path": 1, "pc": 0x401000}),
    "CONTEXTCHANGE_CB": ((0x1000, 0x2000), None, (0x1000, 0x2000),
                         {"old_pgd": 0x1000, "new_pgd": 0x2000}),
    "CREATEPROC_CB": ((42, 0x9000, "init"), None, (42, 0x9000, "init"),
                      {"pid": 42, "pgd": 0x9000, "name": "init"}),
    "REMOVEPROC_CB": ((42, 0x9000, "init"), None, (42, 0x9000, "init"),
                      {"pid": 42, "pgd": 0x9000, "name": "init"}),
    "LOADMODULE_CB": ((42, 0x9000, 0x7f0000, 0x2000, "libc.so.6", "/lib/libc.so.6"), None,
                      (42, 0x9000, 0x7f0000, 0x2000, "libc.so.6", "/lib/libc.so.6"),
                      {"pid": 42, "pgd": 0x9000, "base": 0x7f0000, "size": 0x2000,
                       "name": "libc.so.6", "fullname": "/lib/libc.so.6"}),
    "REMOVEMODULE_CB": ((42, 0, 0xffffffffc0000000, 0x3000, "crc7", "crc7"), None,
                        (42, 0, 0xffffffffc0000000, 0x3000, "crc7", "crc7"),
                        {"pid": 42, "pgd": 0, "base": 0xffffffffc0000000, "size": 0x3000,
                         "name": "crc7", "fullname": "crc7"}),
    "KEYSTROKE_CB": ((0x1e,), None, (0x1e,), {"keycode": 0x1e}),
    # raw: size, frame
    "NIC_SEND_CB": ((6, FRAME), None, (0, 6, FRAME),
                    {"addr": 0, "size": 6, "buf": FRAME, "buff": FRAME}),
    # raw: frame, size
    "NIC_REC_CB": ((FRAME, 6), None, (FRAME, 6, 0, 0, 0),
                   {"buf": FRAME, "buff": FRAME, "size": 6, "cur_pos": 0, "curr": 0,
                    "start": 0, "stop": 0}),
}


def test_every_kind_has_a_case_and_pyrebox_numbering():
    assert set(CASES) == set(event_kinds.BY_NAME)
    assert {k.name: k.number for k in event_kinds.KINDS} == {
        "BLOCK_BEGIN_CB": 2, "BLOCK_END_CB": 3, "INSN_BEGIN_CB": 4, "INSN_END_CB": 5,
        "MEM_READ_CB": 6, "MEM_WRITE_CB": 7, "KEYSTROKE_CB": 8, "NIC_REC_CB": 9,
        "NIC_SEND_CB": 10, "OPCODE_RANGE_CB": 11, "TLB_EXEC_CB": 12, "CREATEPROC_CB": 13,
        "REMOVEPROC_CB": 14, "CONTEXTCHANGE_CB": 15, "LOADMODULE_CB": 16,
        "REMOVEMODULE_CB": 17, "SYSCALL_CB": 18, "SYSCALL_RET_CB": 19}
    assert callbacks.CallbackManager.MEM_WRITE_CB == callbacks.MEM_WRITE_CB == 7
    assert callbacks.CallbackManager.VMI_CREATEPROC_CB == 13


def _resolve(expected, cpu):
    if expected is CPU:
        return cpu
    if isinstance(expected, tuple):
        return tuple(_resolve(e, cpu) for e in expected)
    if isinstance(expected, dict):
        return {k: _resolve(v, cpu) for k, v in expected.items()}
    return expected


@pytest.mark.parametrize("new_style", [False, True], ids=["old_style", "new_style"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_adapter_arguments(monkeypatch, name, new_style):
    monkeypatch.setattr(callbacks, "Cpu", FakeCpu)
    monkeypatch.setattr(callbacks, "_factories", {})
    raw, cpu_at, old, new = CASES[name]
    kind = event_kinds.BY_NAME[name]
    assert len(raw) == len(event_kinds.raw_arguments(kind))
    calls, errors = [], []
    adapter = callbacks._make_adapter(kind.number, lambda *a: calls.append(a), new_style,
                                      errors.append)
    adapter(*raw)
    assert errors == [] and len(calls) == 1
    (args,) = calls
    cpus = [a for a in (args[0].values() if new_style else args) if isinstance(a, FakeCpu)]
    if cpu_at is None:
        assert cpus == []
        cpu = None
    else:
        (cpu,) = cpus
        assert (cpu.cpu_index, cpu.pc) == cpu_at
        assert cpu.frozen  # the test's function kept it (in `calls`)
    if new_style:
        assert args == (_resolve(new, cpu),)
    else:
        assert args == _resolve(old, cpu)


def test_kept_cpu_is_frozen_and_errors_are_reported(monkeypatch):
    monkeypatch.setattr(callbacks, "Cpu", FakeCpu)
    monkeypatch.setattr(callbacks, "_factories", {})
    kept, errors = [], []

    def keep(cpu_index, cpu):
        kept.append(cpu)
        raise RuntimeError("boom")

    adapter = callbacks._make_adapter(callbacks.INSN_BEGIN_CB, keep, False, errors.append)
    adapter(0, 0x1234)
    assert kept[0].frozen and kept[0].pc == 0x1234
    assert [str(e) for e in errors] == ["boom"]


def test_cpu_not_kept_is_not_frozen(monkeypatch):
    freezes = []

    class CountingCpu(FakeCpu):
        def freeze(self):
            freezes.append(self.pc)

    monkeypatch.setattr(callbacks, "Cpu", CountingCpu)
    monkeypatch.setattr(callbacks, "_factories", {})
    seen, kept = [], []
    adapter = callbacks._make_adapter(callbacks.BLOCK_BEGIN_CB,
                                      lambda d: seen.append(d["cpu"].pc), True, print)
    adapter(0, 0x1000, 16, 4)
    assert seen == [0x1000] and freezes == []
    adapter = callbacks._make_adapter(callbacks.BLOCK_BEGIN_CB,
                                      lambda d: kept.append(d["cpu"]), True, print)
    adapter(0, 0x2000, 16, 4)
    assert freezes == [0x2000]


def test_unknown_type_has_no_adapter():
    with pytest.raises(ValueError, match="no adapter for callback type 99"):
        callbacks._make_adapter(99, print, False, print)


def test_docs_callback_table_is_the_generated_one():
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_event_kinds.py"),
                             "--check-docs", os.path.join(ROOT, "docs", "scripts.md")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_docs_check_fails_on_a_changed_row(tmp_path):
    with open(os.path.join(ROOT, "docs", "scripts.md"), encoding="utf-8") as f:
        text = f.read()
    changed = tmp_path / "scripts.md"
    changed.write_text(text.replace("| `KEYSTROKE_CB` (8) | `keycode` |",
                                    "| `KEYSTROKE_CB` (8) | `key` |"))
    result = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "gen_event_kinds.py"),
                             "--check-docs", str(changed)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "is not the one generated from the event-kind table" in result.stderr


def _sdk_text():
    with open(SDK_HEADER, encoding="utf-8") as f:
        return f.read()


def test_sdk_header_numbers_the_types_as_the_table():
    numbers = dict((m.group(1), int(m.group(2)))
                   for m in re.finditer(r"^\s+(\w+_CB) = (\d+),", _sdk_text(), re.M))
    last = numbers.pop("LAST_CB")
    # The trigger types of callbacks at an address, PyREBox's 0 and 1.
    assert (numbers.pop("OP_BLOCK_BEGIN_CB"), numbers.pop("OP_INSN_BEGIN_CB")) == (0, 1)
    assert numbers == {k.name: k.number for k in event_kinds.KINDS}
    assert last == max(numbers.values()) + 1


def test_trigger_members_exist_in_the_sdk_structs():
    text = _sdk_text()
    structs = {m.group(1): m.group(2) for m in
               re.finditer(r"typedef struct (\w+) \{(.*?)\} \1_t;", text, re.S)}
    union = structs["callback_params"]
    for kind in event_kinds.KINDS:
        if kind.trigger_params is None:
            continue
        member_type = re.search(rf"(\w+)_t {kind.trigger_params};", union).group(1)
        body = structs[member_type]
        for member, source in kind.trigger_fields:
            # An array element (args[2]) is a member of the array's size or more.
            array = re.fullmatch(r"(\w+)\[(\d+)\]", member)
            if array:
                size = re.search(rf"\b{array.group(1)}\[(\d+)\];", body)
                assert size and int(array.group(2)) < int(size.group(1)), (kind.name, member)
                source = source.split("[")[0]
            else:
                assert re.search(rf"\b{member};", body), (kind.name, member)
            assert source in ("cpu", "tb", "buffer", "name") or any(
                f.event == source for f in kind.fields) or source == "opcode", (kind.name, source)
