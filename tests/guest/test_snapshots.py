"""Snapshots on the default guest: `pyrebox run --savevm/--loadvm` (boot
once, then analyses from the same machine state) and api.save_vm/load_vm
from callbacks. Process tracking, lists and the engine follow the restored
machine."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write

pytestmark = pytest.mark.guest

SCRIPTS = os.path.join(os.path.dirname(__file__), "scripts")


def result_of(stdout: str, script: str) -> dict:
    lines = [l for l in stdout.splitlines() if l.startswith(f"[scripts.{script}] RESULT ")]
    assert len(lines) == 1, stdout[-3000:]
    return json.loads(lines[0].split("RESULT ", 1)[1])


def with_script(work, script: str) -> str:
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(SCRIPTS, f"{script}.py"), work / "scripts" / f"{script}.py")
    return write(work / "pyrebox.conf", f"[MODULES]\nscripts.{script}: True\n")


@pytest.fixture(scope="module")
def snapshot_disk(tmp_path_factory):
    work = tmp_path_factory.mktemp("snapshots")
    disk = str(work / "snapshots.qcow2")
    result = run_pyrebox("run", "--disk", disk, "--savevm", "ready", "--timeout", "300",
                         "--cmd", "echo prepared", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert f"[pyrebox] saved snapshot ready in {disk}" in result.stdout
    assert command_outputs(result.stdout)[1] == (["prepared"], 0)
    return work, disk


@pytest.fixture(scope="module")
def analyses(snapshot_disk):
    """Two analyses started from the same snapshot, with process events."""
    work, disk = snapshot_disk
    conf = with_script(work, "process_events")
    runs = []
    for _ in range(2):
        result = run_pyrebox("run", "--conf", conf, "--disk", disk, "--loadvm", "ready",
                             "--timeout", "300", "--cmd", "static_loop 10", "--cmd", "dl_cycle",
                             cwd=str(work))
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        runs.append((command_outputs(result.stdout), result_of(result.stdout,
                                                               "process_events")))
    return runs


def test_each_run_from_the_snapshot_starts_from_the_same_state(analyses):
    (first, _), (second, _) = analyses
    # Commands typed at the snapshot point run numbered from 1, and the same
    # machine state gives the same static_loop run, down to its pid.
    assert first[1] == second[1]
    assert first[1][1] == 0 and "checksum=345" in first[1][0]
    assert key_values(first[2][0])["pid"] == key_values(second[2][0])["pid"]


def test_process_events_follow_the_restored_guest(analyses):
    for outputs, report in analyses:
        assert report["errors"] == []
        pid = int(key_values(outputs[1][0])["pid"])
        created = [e for e in report["events"] if e["ev"] == "create"
                   and e["name"] == "static_loop"]
        assert [e["pid"] for e in created] == [pid]
        watched = report["watched"]
        assert watched["pid"] == int(key_values(outputs[2][0])["pid"])
        loads = [e["name"] for e in report["events"] if e["ev"] == "load"
                 and e["pgd"] == watched["pgd"] and e["pid"] == watched["pid"]]
        assert loads[-4:] == ["dl_cycle", "ld-linux-x86-64.so.2", "libc.so.6",
                              "libdltest.so"]
        assert report["first_block"]["running_pgd"] == watched["pgd"]


def test_bad_snapshot_options_are_refused(snapshot_disk, tmp_path):
    work, disk = snapshot_disk
    no_disk = run_pyrebox("run", "--loadvm", "ready", "--cmd", "true", cwd=str(tmp_path))
    assert no_disk.returncode == 2
    assert "--loadvm needs --disk FILE" in no_disk.stderr
    missing = run_pyrebox("run", "--disk", str(tmp_path / "none.qcow2"), "--loadvm", "ready",
                          "--cmd", "true", cwd=str(tmp_path))
    assert missing.returncode == 2
    assert "does not exist (make it with" in missing.stderr
    unknown = run_pyrebox("run", "--disk", disk, "--loadvm", "nosuch", "--timeout", "120",
                          "--cmd", "true", cwd=str(tmp_path))
    assert unknown.returncode == 1
    assert "nosuch" in unknown.stdout and "QEMU failed" in unknown.stdout


def test_save_and_load_from_callbacks_replays_the_program(tmp_path):
    conf = with_script(tmp_path, "snapshot_cycle")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", "static_loop 10; sleep 3", cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert "[pyrebox] savevm mid done" in out and "[pyrebox] loadvm mid done" in out
    # static_loop's end ran twice: once, then again from the snapshot.
    assert out.count("checksum=345") == 2
    report = result_of(out, "snapshot_cycle")
    mine = [e for e in report["events"] if e[3] == "static_loop"]
    creates = [e for e in mine if e[0] == "create"]
    removes = [e for e in mine if e[0] == "remove"]
    # Created once (the snapshot was taken after); removed in both timelines.
    assert len(creates) == 1
    assert [e[1:] for e in removes] == [creates[0][1:]] * 2
    assert report["after_load"] == [[creates[0][1], "static_loop"]]
