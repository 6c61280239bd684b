"""api.BP on the default guest (tests/guest/scripts/breakpoints.py): exact
hit counts and values on static_loop, dyn_libc and fork_getpid (a
breakpoint that follows child processes). The same boot runs clock_probe
under tests/guest/scripts/clock_probe.py: api.guest_clock_stopped() keeps
a callback's 2 s sleep out of the guest's time."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import command_outputs, key_values, nm_symbol, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "breakpoints.py")
CLOCK_SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "clock_probe.py")
ITERATIONS = 10


def static_loop_facts() -> dict:
    binary = os.path.join(paths.GUEST, "programs", "static_loop")
    out = subprocess.run(["nm", "-S", binary], capture_output=True, text=True,
                         check=True).stdout
    facts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in ("pyrebox_step", "pyrebox_buffer"):
            facts[parts[3]] = int(parts[0], 16)
            facts[parts[3] + "_size"] = int(parts[1], 16)
    disassembly = subprocess.run(
        ["objdump", "-d", "--no-show-raw-insn", f"--start-address={facts['pyrebox_step']:#x}",
         f"--stop-address={facts['pyrebox_step'] + facts['pyrebox_step_size']:#x}", binary],
        capture_output=True, text=True, check=True).stdout
    facts["step_insns"] = [int(l.split(":")[0], 16) for l in disassembly.splitlines()
                           if l.startswith("  ") and ":" in l]
    return facts


@pytest.fixture(scope="module")
def bp_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("breakpoints")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "breakpoints.py")
    shutil.copy(CLOCK_SCRIPT, work / "scripts" / "clock_probe.py")
    facts = static_loop_facts()
    with open(work / "bp_facts.json", "w") as f:
        json.dump(facts, f)
    clock_probe = os.path.join(paths.guest().dir, "programs", "clock_probe")
    with open(work / "clock_probe.json", "w") as f:
        json.dump({"probe": nm_symbol(clock_probe, "pyrebox_clock_probe")}, f)
    conf = write(work / "pyrebox.conf",
                 "[MODULES]\nscripts.breakpoints: True\nscripts.clock_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"static_loop {ITERATIONS}", "--cmd", "dyn_libc",
                         "--cmd", "fork_getpid", "--cmd", "clock_probe",
                         cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = [l for l in result.stdout.splitlines()
            if l.startswith("[scripts.breakpoints] RESULT ")]
    assert len(line) == 1, result.stdout[-3000:]
    report = json.loads(line[0].split("RESULT ", 1)[1])
    assert report["errors"] == []
    return report, command_outputs(result.stdout), facts


def test_execution_breakpoint_fires_once_per_call_and_can_disable_itself(bp_run):
    report, _, _ = bp_run
    assert report["exec"] == ITERATIONS
    assert report["exec_until_disabled"] == 5


def test_execution_range_sees_every_instruction_of_the_function(bp_run):
    report, _, facts = bp_run
    insns = facts["step_insns"]
    pcs = report["range_pcs"]
    # Every instruction of pyrebox_step once per call, plus the store once
    # more: the first store into the untouched buffer page faults and the
    # instruction starts again after the fault.
    store = facts["pyrebox_step"] + 0x1c  # mov %al,(%rcx,%rdx,1)
    assert store in insns
    expected = sorted(insns * ITERATIONS + [store])
    assert sorted(pcs) == expected


def test_memory_write_breakpoint_sees_exactly_the_programs_stores(bp_run):
    report, _, _ = bp_run
    assert report["writes"] == [[i, 1, (i * 7 + 3) & 0xFF] for i in range(ITERATIONS)]


def test_memory_read_breakpoint_sees_the_checksum_loop(bp_run):
    report, _, _ = bp_run
    assert report["reads"] == 4096  # one volatile byte load per buffer byte


def test_physical_breakpoints_on_the_buffers_page(bp_run):
    report, _, _ = bp_run
    # Placed at the second call: the first store already happened.
    assert report["phys_writes"] == ITERATIONS - 1
    assert report["phys_reads"] == 4096


def test_module_symbol_breakpoint_hits_libc_getpid(bp_run):
    report, outputs, _ = bp_run
    printed = key_values(outputs[2][0])
    getpid = int(printed["getpid"], 16)
    assert report["getpid_hits"] and set(report["getpid_hits"]) == {getpid}


def test_a_breakpoint_made_at_libcs_loadmodule_hits_getpid(bp_run):
    report, outputs, _ = bp_run
    getpid = int(key_values(outputs[2][0])["getpid"], 16)
    assert report["at_load"] == getpid
    assert report["load_hits"] == report["getpid_hits"] == [getpid]


def test_a_pending_breakpoint_arms_in_the_first_process_that_maps_libc(bp_run):
    report, outputs, _ = bp_run
    getpid = int(key_values(outputs[2][0])["getpid"], 16)
    # Made by the script at boot, before the kernel was located.
    assert report["pending_initial"] == ["kernel not located yet", None, True]
    assert report["pending_hits"] == [[getpid, report["dyn_libc_gone"]]]


def test_a_breakpoint_following_children_counts_every_processs_getpid_calls(bp_run):
    report, outputs, _ = bp_run
    lines, status = outputs[3]
    assert status == 0, lines
    printed = [line.split() for line in lines]
    parent = int(printed[0][0].removeprefix("pid="))
    expected = {}
    for words in printed[1:]:
        role, pid = words[0].split("=")
        expected[pid] = int(words[1].removeprefix("calls="))
    assert len(expected) == 5 and expected[str(parent)] == 2, lines  # 3 forks, the exec
    assert report["follow_root"][:2] == [parent, "unknown module"]
    assert report["follow_root"][2].endswith(" and its children) enabled -> on_follow")
    assert report["follow_hits"] == expected
    # One getpid address per process; the fork children share the parent's libc.
    rips = report["follow_rips"]
    assert all(len(r) == 1 for r in rips.values()), rips
    forks = [words[0].split("=")[1] for words in printed[1:] if words[0].startswith("child=")]
    assert {rips[pid][0] for pid in forks} == {rips[str(parent)][0]}
    # Each child process hit a child breakpoint of the parent, at its getpid.
    children = report["follow_children"]
    assert set(children) == set(expected) - {str(parent)}
    for pid, (of, addr, text) in children.items():
        assert addr == rips[pid][0] and f"child of [{of}]" in text, children
    assert len({of for of, _, _ in children.values()}) == 1
    assert report["follow_end"] == [0, []]


def test_symbol_lookups_say_why_they_found_nothing(bp_run):
    report, _, _ = bp_run
    assert report["lookups"] == [[None, "unknown module"], [None, "unknown symbol"], None]


def test_breakpoints_are_listed_and_bad_input_is_refused(bp_run):
    report, _, facts = bp_run
    assert any(f"EXECUTION {facts['pyrebox_step']:#x} " in line for line in report["listed"])
    assert any("MEM_WRITE_PHYS" in line for line in report["listed"])
    bad = report["bad"]
    assert bad["type"].startswith("ValueError: unknown breakpoint type 9")
    assert bad["size"] == "ValueError: size must be a non-negative int, got -1"
    assert bad["addr"] == "ValueError: address must be an int or 'module!symbol', got 3.5"
    assert bad["func"] == "TypeError: func must be callable or None, got int"
    assert bad["symbol"] == ("ValueError: cannot resolve 'vmlinux!no_such_function': module "
                             "'vmlinux' has no symbol 'no_such_function' (address space 0x0)")
    assert bad["children"].startswith("ValueError: children=True needs a user module's "
                                      "'module!symbol' breakpoint")


def test_the_guest_sees_no_time_pass_inside_guest_clock_stopped(bp_run):
    """clock_probe measures its own CLOCK_MONOTONIC across each call of
    its probe function, where the script sleeps 2 s: as it is (phase 1),
    then inside api.guest_clock_stopped() (phase 2, nested blocks)."""
    _, outputs, _ = bp_run
    printed = key_values(outputs[4][0])
    assert int(printed["phase1_ms"]) >= 1900, printed   # the host's 2 s reach the guest
    assert int(printed["phase2_ms"]) < 500, printed     # stopped: (almost) none
