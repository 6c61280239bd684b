"""Native triggers on system-call events (callback_params_t.syscall_params
and .syscall_ret_params): the workload's getppid calls counted in C in
every process, exactly, with no Python call per event; and a callback of
one process's pgd (not monitored)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import ROOT, command_outputs, key_values, run_pyrebox, write

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "syscall_trigger_probe.py")
ROUNDS = 4_000_000  # workload without its work step: getppid calls only
BY_PGD = 100_000    # the pgd= callback's, after which it removes itself


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("syscall_triggers")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts")
    shutil.copytree(os.path.join(ROOT, "triggers"), work / "triggers",
                    ignore=shutil.ignore_patterns("*.so"))
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.syscall_trigger_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"echo sh=$$; workload {ROUNDS} 0; true", cwd=str(work))
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.syscall_trigger_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-3000:] + result.stderr
    return {"report": json.loads(lines[0].split("RESULT ", 1)[1]),
            "outputs": command_outputs(result.stdout)}


def test_every_getppid_is_counted_on_entry_and_return_by_the_triggers(run):
    report = run["report"]
    shell = int(key_values(run["outputs"][1][0])["sh"])
    assert report["workload"]["ppid"] == shell
    assert report["entries"] == report["returns"] == ROUNDS
    assert report["returned_ppid"] == ROUNDS  # each returned the shell's pid
    assert report["python_calls"] == 0


def test_a_callback_with_pgd_gets_that_process_only_monitored_or_not(run):
    assert run["report"]["by_pgd"] == BY_PGD
    assert run["report"]["by_pgd_other"] == 0
