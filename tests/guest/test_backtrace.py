"""api.backtrace and the shell's `k` on the default guest: bt_chain
(tests/guest/programs/bt_chain.c, compiled here and copied in) stopped
inside the kernel at its first write(2), and at a breakpoint on bt_leaf
(tests/guest/scripts/backtrace_probe.py). One boot serves the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import command_outputs, run_pyrebox, write

pytestmark = pytest.mark.guest

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "scripts", "backtrace_probe.py")
SOURCE = os.path.join(HERE, "programs", "bt_chain.c")
# From main down: the program's own frames, found by its CFI, then glibc's
# start-up (__libc_start_call_main is no dynamic symbol: its name comes from
# libc6-dbg's debug file, found by build ID under /usr/lib/debug) and the
# program's _start, whose CFI marks it the outermost frame.
CHAIN = ["bt_chain!bt_middle", "bt_chain!bt_outer", "bt_chain!main"]
START = ["libc.so.6!__libc_start_call_main", "libc.so.6!__libc_start_main", "bt_chain!_start"]
OUTERMOST = "the outermost frame: its CFI marks the return address undefined"


def symbol_value(binary: str, name: str) -> int:
    out = subprocess.run(["nm", "-D", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} is not a dynamic symbol of {binary}")


def symbol_size(binary: str, name: str) -> int:
    out = subprocess.run(["nm", "-D", "-S", "--defined-only", binary], capture_output=True,
                         text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[1], 16)
    raise AssertionError(f"{name} is not a sized dynamic symbol of {binary}")


@pytest.fixture(scope="module")
def bt_run(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("backtrace")
    program = str(work / "bt_chain")
    subprocess.run(["gcc", "-O2", "-rdynamic", "-o", program, SOURCE], check=True)
    with open(work / "bt_facts.json", "w") as f:
        json.dump({"bt_leaf": symbol_value(program, "bt_leaf")}, f)
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "backtrace_probe.py")
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.backtrace_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--file", f"{program}:/root/bt_chain", "--cmd", "/root/bt_chain",
                         cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = [l for l in result.stdout.splitlines()
            if l.startswith("[scripts.backtrace_probe] RESULT ")]
    assert len(line) == 1, result.stdout[-3000:]
    report = json.loads(line[0].split("RESULT ", 1)[1])
    assert report["errors"] == []
    report["binary"] = program
    return report, command_outputs(result.stdout)


def names(frames: list[dict]) -> list[str | None]:
    """module!symbol of each frame (None for a module-only location)."""
    return [f"{f['module']}!{f['symbol']}" if f["symbol"] else None for f in frames]


def test_the_program_runs_as_without_pyrebox(bt_run):
    _, outputs = bt_run
    assert outputs[1] == (["leaf 0", "leaf 1", "sum=34"], 0)


def test_a_breakpoint_in_the_leaf_gives_the_exact_call_chain(bt_run):
    report, _ = bt_run
    frames = report["user"]
    assert names(frames) == ["bt_chain!bt_leaf"] + CHAIN + START
    assert [f["how"] for f in frames[:4]] == ["regs", "cfi", "cfi", "cfi"]
    assert {f["how"] for f in frames[4:]} <= {"cfi", "scan"}
    assert frames[0]["text"] == "bt_chain!bt_leaf"  # the breakpoint: its first instruction
    assert frames[4]["text"].startswith("libc.so.6!__libc_start_call_main+0x")  # a return address
    assert not any(f["kernel"] for f in frames)
    assert report["user_stop"] == OUTERMOST
    sps = [f["sp"] for f in frames]
    assert sps == sorted(sps) and len(set(sps)) == len(sps)


def test_a_backtrace_in_the_kernel_continues_with_the_saved_user_registers(bt_run):
    report, _ = bt_run
    frames = report["kernel"]
    kernel = [f for f in frames if f["kernel"]]
    user = frames[len(kernel):]
    assert not any(f["kernel"] for f in user)
    # The vCPU's registers, then the kernel stack scanned: the return
    # address at RSP is do_syscall_64's, the last one the entry code's
    # (stale return addresses between them are possible, marked scan too).
    assert kernel[0]["text"] == "vmlinux!ksys_write" and kernel[0]["how"] == "regs"
    assert names(kernel[1:2]) == ["vmlinux!do_syscall_64"]
    assert names(kernel[-1:]) == ["vmlinux!entry_SYSCALL_64_after_hwframe"]
    assert {f["how"] for f in kernel[1:]} == {"scan"}
    # The user registers saved at the top of the kernel stack: libc's write,
    # at the instruction after its syscall; then the chain that called it.
    assert names(user) == ["libc.so.6!write", "bt_chain!bt_leaf"] + CHAIN + START
    assert user[0]["how"] == "regs"
    assert [f["how"] for f in user[2:5]] == ["cfi", "cfi", "cfi"]
    assert report["kernel_stop"] == OUTERMOST


def test_the_shell_k_prints_the_backtrace(bt_run):
    report, _ = bt_run
    lines = report["k"].splitlines()
    assert lines[0].split() == ["#", "SP", "PC", "HOW", "CALL", "SITE"]
    rows = [line.split() for line in lines[1:-1]]
    assert [row[0] for row in rows] == [f"{i:02x}" for i in range(len(report["user"]))]
    assert [row[4] for row in rows] == [f["text"] for f in report["user"]]
    assert [row[3] for row in rows] == [f["how"] for f in report["user"]]
    assert [int(row[1], 16) for row in rows] == [f["sp"] for f in report["user"]]
    assert lines[-1] == f"(stopped: {OUTERMOST})"


def test_the_shell_ln_names_an_address_as_the_frames_do(bt_run):
    report, _ = bt_run
    caller = report["user"][1]
    size = re.fullmatch(rf"{caller['pc']:#x}: {re.escape(caller['text'])} \(size (0x[0-9a-f]+)\)\n",
                        report["ln"])
    assert size, report["ln"]
    assert int(size.group(1), 16) == symbol_size(report["binary"], "bt_middle")
    assert caller["text"].startswith("bt_chain!bt_middle+0x")
