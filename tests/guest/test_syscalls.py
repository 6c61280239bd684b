"""SYSCALL_CB and SYSCALL_RET_CB in the default guest: one boot with the
monitored test programs (workload's getppid loop, fork_exec's children),
every entry paired with its return in the thread it came from."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "syscall_probe.py")
ROUNDS = 1000
CHILDREN = 2
# x86-64 system-call numbers are the ABI's (the names come from the kernel).
CLONE, EXECVE, EXIT_GROUP, GETPPID = 56, 59, 231, 110


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("syscalls")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "syscall_probe.py")
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.syscall_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"echo sh=$$; workload {ROUNDS}; true",
                         "--cmd", f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10",
                         cwd=str(work))
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.syscall_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-3000:] + result.stderr
    return {"report": json.loads(lines[0].split("RESULT ", 1)[1]),
            "outputs": command_outputs(result.stdout)}


def test_every_getppid_of_the_loop_enters_and_returns_the_shells_pid(run):
    report = run["report"]
    assert report["errors"] == []
    shell = int(key_values(run["outputs"][1][0])["sh"])
    assert report["enter"][str(GETPPID)] == ROUNDS
    assert report["getppid"] == [shell] * ROUNDS
    assert report["old_style"] == ROUNDS


def test_entries_and_returns_pair_up(run):
    enter, ret = run["report"]["enter"], run["report"]["ret"]
    for number, entered in enter.items():
        if int(number) in (CLONE, EXECVE, EXIT_GROUP):
            continue
        assert ret.get(number, 0) == entered, (number, entered, ret.get(number))
    assert set(ret) <= set(enter)
    # A successful execve and exit_group never return; fork returns twice.
    assert EXECVE not in map(int, ret) and EXIT_GROUP not in map(int, ret)
    assert enter[str(CLONE)] == CHILDREN
    assert ret[str(CLONE)] == 2 * CHILDREN


def test_the_childrens_returns_are_told_and_return_zero(run):
    printed = run["outputs"][2][0]
    children = [int(v.split("=", 1)[1].split()[0]) for v in printed if v.startswith("child=")]
    assert len(children) == CHILDREN
    got = run["report"]["children"]
    assert [(c["number"], c["retval"]) for c in got] == [(CLONE, 0)] * CHILDREN
    assert len({c["pgd"] for c in got}) == CHILDREN


def test_names_come_from_the_kernels_table(run):
    names = run["report"]["names"]
    assert names["count"] > 300
    assert (names["0"], names["1"], names["59"], names["110"], names["231"]) == (
        "read", "write", "execve", "getppid", "exit_group")
