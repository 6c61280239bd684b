"""Reading registers inside callbacks never changes the guest; writing
them takes effect from the next instruction.

QEMU keeps EIP and the flags' state lazily inside a translation block; a
read must compute the exact values without disturbing what the rest of the
block expects. scripts/read_all.py reads every register in every
INSN_BEGIN, MEM_WRITE and OPCODE_RANGE callback of two monitored programs
(kernel code run on their behalf included): their results stay exact, the
kernel reports no error, and the values read match the events.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
import time

import pytest

from conftest import LAUNCHER, Wire, command_outputs, key_values, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "read_all.py")
PROGRAMS = os.path.join(paths.GUEST, "programs")
LOOPS = 100
# What a corrupted kernel prints on the console.
KERNEL_ERRORS = re.compile(r"invalid opcode|general protection|BUG:|Oops|soft lockup|"
                           r"Call Trace|Kernel panic|segfault")


def symbols(binary: str) -> dict[str, int]:
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    return {p[2]: int(p[0], 16) for p in (l.split() for l in out.splitlines()) if len(p) == 3}


def store_instructions(binary: str, function: str) -> list[int]:
    """Addresses of the instructions of `function` that store to memory."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", f"--disassemble={function}",
                          binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        m = re.match(r"\s*([0-9a-f]+):\s+mov\S*\s+[^,]+,(\(.*\)|\S*\(.*\))$", line)
        if m:
            found.append(int(m.group(1), 16))
    return found


def expected_checksum(iterations: int) -> int:
    buffer = [0] * 4096
    for i in range(iterations):
        buffer[i % 4096] = (i * 7 + 3) & 0xFF
    return sum(buffer)


SHELLS = 100


def serve_shells(rundir: str, count: int, seen: list) -> None:
    """Answers `count` shells opened from callbacks: shows the registers
    (the shell's CPU dump) and continues. Records RIP as each dump shows it."""
    path = os.path.join(rundir, "console.sock")
    deadline = time.monotonic() + 120
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.1)
    wire = Wire(path, timeout=300)
    prompt = wire.until("prompt")
    while len(seen) < count:
        while prompt.get("mode") != "shell":
            prompt = wire.until("prompt")
        wire.send(op="line", text="r", seq=prompt["seq"])
        prompt = wire.until("prompt")
        match = re.search(r"RIP=([0-9a-fx]+)", wire.shown)
        seen.append(int(match.group(1), 16) if match else wire.shown)
        wire.send(op="line", text="c", seq=prompt["seq"])
        prompt = wire.until("prompt")


def boot(work, shells: int):
    """(completed run, static_loop's symbols, RIP shown by each shell)."""
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "read_all.py")
    loop = symbols(os.path.join(PROGRAMS, "static_loop"))
    probe = symbols(os.path.join(PROGRAMS, "probe"))
    with open(work / "read_all.json", "w") as f:
        json.dump({"shells": shells,
                   "static_loop": {k: loop[k] for k in ("main", "pyrebox_step",
                                                         "pyrebox_buffer")},
                   "probe": {k: probe[k] for k in ("main", "pyrebox_flags_site")}}, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.read_all: True\n")
    # Python on every instruction, kernel included, is far slower than the
    # guest's timer ticks: with the clock following the instructions
    # (-icount) the guest keeps its pace instead of living in its timer
    # interrupt and reporting soft lockups.
    proc = subprocess.Popen([LAUNCHER, "run", "--conf", conf, "--timeout", "900",
                             "--cmd", f"static_loop {LOOPS}", "--cmd", "probe 20 10 2 1",
                             "--", "-icount", "shift=6,align=off,sleep=off"],
                            cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    first = proc.stdout.readline()
    rundir = re.search(r"QMP socket: (\S+)/qmp\.sock", first).group(1)
    seen: list = []
    server = threading.Thread(target=serve_shells, args=(rundir, shells, seen), daemon=True)
    server.start()
    try:
        out, err = proc.communicate(timeout=1000)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    server.join(timeout=10)
    return subprocess.CompletedProcess(proc.args, proc.returncode, first + out, err), loop, seen


@pytest.fixture(scope="module")
def reads(tmp_path_factory):
    return boot(tmp_path_factory.mktemp("reads"), SHELLS)


def report(result) -> dict:
    lines = [l for l in result.stdout.splitlines() if l.startswith("[scripts.read_all] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:] + result.stderr
    return json.loads(lines[0].split("RESULT ", 1)[1])


def test_programs_results_stay_exact(reads):
    result, _, _ = reads
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    outputs = command_outputs(result.stdout)
    loop_lines, loop_rc = outputs[1]
    assert loop_rc == 0
    assert key_values(loop_lines)["checksum"] == str(expected_checksum(LOOPS))
    probe_lines, probe_rc = outputs[2]
    assert probe_rc == 0
    assert key_values(probe_lines)["flags"] == "100"


def test_kernel_reports_no_error(reads):
    result, _, _ = reads
    bad = [l for l in result.stdout.splitlines() if KERNEL_ERRORS.search(l)]
    assert bad == [], "\n".join(bad[:20])


def test_values_read_match_the_events(reads):
    result, loop, _ = reads
    r = report(result)
    assert r["errors"] == []
    assert r["insn"] > 100_000 and r["mem"] > 10_000 and r["opcode"] > 50_000, r
    assert r["insn_rip_wrong"] == 0 and r["opcode_rip_wrong"] == 0
    assert r["step_entries"] == LOOPS
    assert r["buffer_writes"] == LOOPS
    binary = os.path.join(PROGRAMS, "static_loop")
    assert r["store_rips"] == store_instructions(binary, "pyrebox_step")
    # cmp 1,2 (CF SF PF AF), cmp 5,5 (ZF PF), cmp -1,3 (SF PF); bit 1 and IF.
    rf = 1 << 16
    assert [v & ~rf for v in r["flags_at_site"]] == [0x297, 0x246, 0x286]


def test_shells_opened_from_the_callbacks_show_the_exact_state(reads):
    result, loop, seen = reads
    r = report(result)
    assert r["shells"] == SHELLS
    assert seen == [loop["pyrebox_step"]] * SHELLS


def test_flags_written_before_an_instruction_are_what_it_sees(tmp_path):
    write(tmp_path / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(os.path.dirname(__file__), "scripts", "write_flags.py"),
                tmp_path / "scripts" / "write_flags.py")
    probe = symbols(os.path.join(PROGRAMS, "probe"))
    with open(tmp_path / "write_flags.json", "w") as f:
        json.dump({k: probe[k] for k in ("main", "pyrebox_flags_site")}, f)
    conf = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.write_flags: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", "probe 20 10 2 1", cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.write_flags] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    r = json.loads(lines[0].split("RESULT ", 1)[1])
    output, rc = command_outputs(result.stdout)[1]
    assert rc == 0
    # setb after cmp 1,2 / 5,5 / -1,3 gives 1 0 0; with CF set before it: 1 1 1.
    assert key_values(output)["flags"] == "111", r
    # Once per execution of the site, although each write leaves the block.
    assert r["site"] == 3
    rf = 1 << 16
    assert [v & ~rf for v in r["flags_before"]] == [0x297, 0x246, 0x286]
    assert [v & ~rf for v in r["flags_after_write"]] == [0x297, 0x247, 0x287]
    assert r["mem_error"] == ("register eflags cannot be written from this callback: it runs "
                              "in the middle of an instruction; write it from an INSN_BEGIN, "
                              "INSN_END, OPCODE_RANGE or BLOCK_BEGIN callback")
