"""The whole chain on the default guest: launcher, plugin, scripts, guest
programs, --file and --cmd. One boot serves every assertion of this module."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

LOOPS = 1000
CHILDREN = 3
HOST_PROGRAM = r"""
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
    printf("host_program argc=%d arg1=%s pid_positive=%d\n", argc, argc > 1 ? argv[1] : "-",
           getpid() > 0);
    return 7;
}
"""


def symbol(binary: str, name: str) -> int:
    out = subprocess.run(["nm", "-D" if binary.endswith(".so.6") else "-n", binary],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2].split("@")[0] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {binary}")


def expected_checksum(iterations: int) -> int:
    buffer = [0] * 4096
    for i in range(iterations):
        buffer[i % 4096] = (i * 7 + 3) & 0xFF
    return sum(buffer)


@pytest.fixture(scope="module")
def boot(tmp_path_factory):
    work = tmp_path_factory.mktemp("guest")
    source = write(work / "host_program.c", HOST_PROGRAM)
    program = str(work / "host_program")
    subprocess.run(["gcc", "-static", "-O1", "-o", program, source], check=True)
    write(work / "scripts" / "__init__.py", "")
    write(work / "scripts" / "greeter.py", """
        def initialize_callbacks(module_hdl, printer):
            printer("greeter initialised")
        def clean():
            print("greeter clean")
        """)
    write(work / "scripts" / "failing.py", """
        def initialize_callbacks(module_hdl, printer):
            raise ValueError("failing on purpose")
        """)
    conf = write(work / "pyrebox.conf", """
        [MODULES]
        scripts.failing: True
        scripts.greeter: True
        """)
    result = run_pyrebox(
        "run", "--conf", conf, "--timeout", "240",
        "--file", program, "--file", f"{program}:/opt/renamed",
        "--cmd", f"static_loop {LOOPS}",
        "--cmd", "dyn_libc",
        "--cmd", f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10",
        "--cmd", "./host_program first",
        "--cmd", "/opt/renamed second",
        "--cmd", "echo line-with-$((6*7))",
        cwd=str(work))
    return result, command_outputs(result.stdout)


def test_run_succeeds_and_guest_powers_off(boot):
    result, outputs = boot
    assert result.returncode == 0, result.stdout + result.stderr
    assert "PYREBOX-GUEST-END" in result.stdout.splitlines()
    assert sorted(outputs) == [1, 2, 3, 4, 5, 6]


def test_failing_script_is_reported_and_the_guest_still_runs(boot):
    result, outputs = boot
    out = result.stdout
    assert "script scripts.failing raised in initialize_callbacks; it is not loaded" in out
    assert "ValueError: failing on purpose" in out
    assert "[scripts.greeter] greeter initialised" in out.splitlines()
    assert "[python] greeter clean" in out.splitlines()
    assert outputs[6] == (["line-with-42"], 0)


def test_static_program_output_is_exact(boot):
    _, outputs = boot
    lines, rc = outputs[1]
    values = key_values(lines)
    binary = os.path.join(paths.GUEST, "programs", "static_loop")
    assert rc == 0
    assert int(values["pid"]) > 1
    assert int(values["buffer"], 16) == symbol(binary, "pyrebox_buffer")
    assert int(values["function"], 16) == symbol(binary, "pyrebox_step")
    assert int(values["iterations"]) == LOOPS
    assert int(values["checksum"]) == expected_checksum(LOOPS)


def test_dynamic_program_sees_the_host_libc(boot):
    _, outputs = boot
    lines, rc = outputs[2]
    values = key_values(lines)
    assert rc == 0
    assert values["libc_path"] == "/lib/x86_64-linux-gnu/libc.so.6"
    base = int(values["libc_base"], 16)
    assert base % 4096 == 0 and base > 0x7f0000000000
    getpid_offset = symbol("/lib/x86_64-linux-gnu/libc.so.6", "getpid")
    assert int(values["getpid"], 16) == base + getpid_offset


def test_fork_exec_runs_each_child_to_completion(boot):
    _, outputs = boot
    lines, rc = outputs[3]
    assert rc == 0
    parent = int(key_values(lines)["parent"])
    children = [int(m.group(1)) for m in map(re.compile(r"child=(\d+) status=0$").match, lines) if m]
    assert len(children) == CHILDREN
    child_pids = [int(line.split("=")[1]) for line in lines if line.startswith("pid=")]
    assert child_pids == children  # each child printed the pid its parent reaped
    assert all(pid > parent for pid in children)
    assert [line for line in lines if line.startswith("checksum=")] == \
        [f"checksum={expected_checksum(10)}"] * CHILDREN
    assert lines[-1] == f"children={CHILDREN}"


def test_host_files_run_in_the_guest(boot):
    _, outputs = boot
    assert outputs[4] == (["host_program argc=2 arg1=first pid_positive=1"], 7)
    assert outputs[5] == (["host_program argc=2 arg1=second pid_positive=1"], 7)


def test_timeout_stops_qemu_with_a_message():
    result = run_pyrebox("run", "--timeout", "3", "--cmd", "sleep 600", timeout=60)
    assert result.returncode == 124
    assert "timeout: the guest did not finish within 3 s; QEMU was stopped" in result.stdout


def test_qemu_failure_is_reported():
    result = run_pyrebox("run", "--cmd", "true", "--", "-no-such-qemu-option", timeout=60)
    assert result.returncode == 1
    assert "[qemu] " in result.stdout and "no-such-qemu-option" in result.stdout
    assert "QEMU failed (exit status 1)" in result.stdout
