"""api.on_return and BP(..., on_return=f) on the default guest
(tests/guest/scripts/returns_probe.py): exact returns, values and order of
tests/guest/programs/returns.c, compiled here and copied in with --file."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write

pytestmark = pytest.mark.guest

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "scripts", "returns_probe.py")
SOURCE = os.path.join(HERE, "programs", "returns.c")
# Its own text address, away from every program of the default guest.
TEXT = "0x72000000"
CALLS, DEPTH, DIVE = 5, 6, 3


def build(work) -> str:
    program = str(work / "returns")
    subprocess.run(["gcc", "-static", "-no-pie", "-O0", f"-Wl,-Ttext-segment={TEXT}",
                    "-o", program, SOURCE], check=True)
    return program


def program_facts(binary: str) -> dict:
    """The functions' addresses, and the return address of every call to
    them (the instruction after the call), by calling function."""
    facts = {}
    for line in subprocess.run(["nm", binary], capture_output=True, text=True,
                               check=True).stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] in ("main", "pyrebox_square", "pyrebox_fact",
                                            "pyrebox_dive"):
            facts[parts[2]] = int(parts[0], 16)
    disassembly = subprocess.run(["objdump", "-d", "--no-show-raw-insn", binary],
                                 capture_output=True, text=True, check=True).stdout
    function, previous_call = None, None
    facts["returns_to"] = {}
    for line in disassembly.splitlines():
        head = re.match(r"^[0-9a-f]+ <(\w+)>:$", line)
        if head:
            function = head.group(1)
            continue
        insn = re.match(r"^\s+([0-9a-f]+):\s+(\S+)\s*(.*)$", line)
        if not insn:
            continue
        address = int(insn.group(1), 16)
        if previous_call is not None:
            facts["returns_to"].setdefault(previous_call, []).append([function, address])
            previous_call = None
        callee = re.search(r"<(pyrebox_\w+)>", insn.group(3))
        if insn.group(2) == "call" and callee:
            previous_call = callee.group(1)
    return facts


@pytest.fixture(scope="module")
def returns_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("returns")
    program = build(work)
    facts = program_facts(program)
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "returns_probe.py")
    with open(work / "returns_facts.json", "w") as f:
        json.dump(facts, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.returns_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--file", program,
                         "--cmd", f"./returns {CALLS} {DEPTH} {DIVE}", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = [l for l in result.stdout.splitlines()
            if l.startswith("[scripts.returns_probe] RESULT ")]
    assert len(line) == 1, result.stdout[-3000:]
    report = json.loads(line[0].split("RESULT ", 1)[1])
    assert report["errors"] == []
    assert "raised" not in result.stdout, result.stdout[-3000:]
    return report, command_outputs(result.stdout), facts


def test_the_program_ran_as_written(returns_run):
    _, outputs, _ = returns_run
    printed = key_values(outputs[1][0])
    assert printed == {"squares_sum": str(sum(i * i + 1 for i in range(CALLS))),
                       "fact": "720", "dive": "7", "last": "10001"}


def test_each_call_returns_once_with_its_value_to_its_call_site(returns_run):
    report, _, facts = returns_run
    sites = [address for function, address in facts["returns_to"]["pyrebox_square"]]
    assert len(sites) == 2  # the loop's call, then the last one
    expected = [(i * i + 1, sites[0]) for i in range(CALLS)] + [(10001, sites[1])]
    assert [(s["retval"], s["return_address"]) for s in report["square"]] == expected
    for s in report["square"]:
        assert s["pc"] == s["return_address"] and s["entry_pc"] == facts["pyrebox_square"]
        assert s["pgd_ok"] and s["cpu_index"] == 0
    # main's stack does not move between its calls: one sp for the loop's.
    assert len({s["sp"] for s in report["square"][:CALLS]}) == 1


def test_recursion_returns_innermost_first_each_with_its_own_frame(returns_run):
    report, _, facts = returns_run
    entries = report["fact_entries"]
    assert [n for n, _ in entries] == list(range(DEPTH, 0, -1))
    inner, outer = (next(a for f, a in facts["returns_to"]["pyrebox_fact"] if f == caller)
                    for caller in ("pyrebox_fact", "main"))
    factorials = [1, 2, 6, 24, 120, 720]
    # Innermost first: fact(1) returns 1 to the recursive call site with the
    # stack pointer its entry had plus one word, ..., fact(6) returns 720 to main.
    assert report["fact_returns"] == [
        [factorials[k], inner if k < DEPTH - 1 else outer, entries[DEPTH - 1 - k][1] + 8]
        for k in range(DEPTH)]


def test_a_longjmp_drops_the_unwound_returns_and_they_never_fire(returns_run):
    report, _, _ = returns_run
    # dive(3) .. dive(0): each entry's return is pending (4 at the deepest);
    # dive(0) longjmps out; dive(-1), called from the same site at the same
    # depth, drops the four at its entry and is then the only one pending.
    assert report["dive_entries"] == [[3, 1], [2, 2], [1, 3], [0, 4],
                                      [(1 << 64) - 1, 1]]
    assert report["dive_returns"] == [7]
    at_remove = report["at_remove"]
    writes = len(report["writes"])
    assert at_remove["stats"] == {"pending": 0, "fired": CALLS + 1 + DEPTH + 1 + writes,
                                  "dropped": DIVE + 1}
    assert at_remove["pending"] == [] and at_remove["site_callbacks"] == 0


def test_kernel_calls_return_on_their_kernel_stack(returns_run):
    report, outputs, _ = returns_run
    # The program's write(2)s: ksys_write(fd, buf, count) returns count for
    # the console; together they are what the program printed.
    printed = "".join(line + "\n" for line in outputs[1][0])
    assert report["writes"] and all(kernel for _, kernel in report["writes"])
    counts = [count for count, _ in report["writes"]]
    assert report["write_returns"] == counts
    assert sum(counts) == len(printed)


def test_bad_input_is_refused_with_the_reason(returns_run):
    report, _, _ = returns_run
    assert report["outside"].startswith(
        "RuntimeError: on_return: no callback is running, so there is no function entry "
        "to return from")
    assert report["not_callable"] == "TypeError: on_return: func must be callable, got int"
