"""Snapshots on the default guest: `pyrebox run --savevm/--loadvm` (boot
once, then analyses from the same machine state) and api.save_vm/load_vm
from callbacks. Process tracking, lists and the engine follow the restored
machine. A failed load_vm from a callback leaves the VM running. Snapshots
saved and loaded in a breakpoint's shell (driven through ptys) restore a
guest whose clock goes on from the snapshot's: `sleep 1` returns and the
guest powers off."""

from __future__ import annotations

import json
import os
import re
import shutil

import pytest

from conftest import LAUNCHER, command_outputs, key_values, run_pyrebox, write
from test_shell import CONSOLE, ENV
from test_shell_breakpoints import Client, start

pexpect = pytest.importorskip("pexpect")

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
    said = "\n".join(l for l in out.splitlines()
                     if "vm" in l or "error" in l or "PYREBOX-CMD" in l or "checksum" in l)
    assert "[pyrebox] savevm mid done" in out and "[pyrebox] loadvm mid done" in out, (
        said[-3000:], result_of(out, "snapshot_cycle")["events"][-40:])
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


LOAD_FAILURES = '''
import api
from api import CallbackManager

cm = None
printer = None


def on_create(pid, pgd, name):
    if name != "static_loop":
        return
    cm.rm_callback("create")
    # Nothing queued: an unknown name is refused at once.
    try:
        api.load_vm("nosuch")
        printer("load_vm nosuch returned")
    except RuntimeError as e:
        printer(f"load_vm nosuch raised: {e}")
    # Behind a queued savevm the name is not checked (the save could create
    # it): the load is queued and fails once the callback has returned.
    api.save_vm("first")
    api.load_vm("nosuch2")
    printer("both queued")


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")


def clean():
    cm.clean()
'''


def test_a_failed_load_vm_from_a_callback_raises_and_the_vm_goes_on(tmp_path):
    write(tmp_path / "scripts" / "__init__.py", "")
    write(tmp_path / "scripts" / "load_failures.py", LOAD_FAILURES)
    conf = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.load_failures: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", "static_loop 10", "--cmd", "sleep 1; echo after-$((1+1))",
                         cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout.splitlines()
    assert ("[scripts.load_failures] load_vm nosuch raised: loadvm nosuch: no snapshot "
            "named 'nosuch' in this VM's disk (snapshots: none); the VM goes on") in out
    assert "[scripts.load_failures] both queued" in out
    assert "[pyrebox] savevm first done" in out
    assert ("[pyrebox] error: loadvm nosuch2 failed: loadvm nosuch2: Error: Snapshot "
            "'nosuch2' does not exist in one or more devices; the VM goes on") in out
    outputs = command_outputs(result.stdout)
    assert outputs[1][1] == 0 and "checksum=345" in outputs[1][0]
    assert outputs[2] == (["after-2"], 0)


# --- snapshots taken and loaded in a breakpoint's shell, through ptys ---------

@pytest.fixture(scope="module")
def interactive(tmp_path_factory):
    """An interactive `pyrebox run --disk` in a pty and `pyrebox attach` in
    another one."""
    work = tmp_path_factory.mktemp("snapshell")
    run = pexpect.spawn(LAUNCHER, ["run", "--disk", str(work / "snapshots.qcow2"),
                                   "--timeout", "600"],
                        cwd=str(work), env=ENV, encoding="utf-8", timeout=120)
    run.logfile_read = open(work / "run.log", "w")
    attach = None
    try:
        run.expect(r"QMP socket: (\S+)/qmp\.sock")
        rundir = run.match.group(1)
        run.expect_exact("powers the guest off")
        run.expect_exact("# ")
        attach = pexpect.spawn(LAUNCHER, ["attach", rundir], cwd=str(work), env=ENV,
                               encoding="utf-8", timeout=60)
        attach.logfile_read = open(work / "attach.log", "w")
        attach.expect_exact(CONSOLE)
        yield {"run": run, "console": Client(attach)}
    finally:
        for child in (attach, run):
            if child is not None and child.isalive():
                child.terminate(force=True)


def uptime(run) -> float:
    """The guest's /proc/uptime, read at its shell."""
    run.send("cat /proc/uptime\r")
    run.expect(r"\r\n(\d+\.\d+) \d+\.\d+\r\n")
    value = float(run.match.group(1))
    run.expect_exact("# ")
    return value


def stop_at_first_step(vm) -> tuple[float, int]:
    """Runs `static_loop 1000 wait` with a breakpoint on its pyrebox_step:
    returns the guest's uptime just before the program started and the
    breakpoint's number, with the client in the shell the first call opened."""
    run, console = vm["run"], vm["console"]
    before = uptime(run)
    found = start(run, "static_loop 1000 wait", ["pid", "function"])
    pid, function = int(found["pid"]), int(found["function"], 16)
    console.run("sh")
    console.run(f"proc {pid}")
    number = int(re.search(r"breakpoint (\d+)", console.run(f"bp {function:x}")).group(1))
    console.run("q", CONSOLE)
    run.send("\r")
    assert console.shell_opened_by_breakpoint() == \
        f"breakpoint {number}: execution at {function:#x}"
    return before, number


def assert_timers_run(run) -> None:
    """`sleep 1` returns, after one second of guest time."""
    run.send("cat /proc/uptime; sleep 1; cat /proc/uptime; echo slept-$((40+2))\r")
    run.expect(r"\r\n(\d+\.\d+) \d+\.\d+\r\n(\d+\.\d+) \d+\.\d+\r\n", timeout=30)
    slept = float(run.match.group(2)) - float(run.match.group(1))
    run.expect_exact("slept-42", timeout=10)
    run.expect_exact("# ")
    assert 1.0 <= slept < 2.0, slept


def test_timers_run_after_loading_a_snapshot_saved_in_a_breakpoint_shell(interactive):
    run, console = interactive["run"], interactive["console"]
    saved_at, number = stop_at_first_step(interactive)
    assert "savevm atstep: queued" in console.run("savevm atstep")
    console.run(f"bd {number}")
    console.run("c", CONSOLE)
    run.expect_exact("[pyrebox] savevm atstep done", timeout=180)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    run.expect_exact("# ")
    assert_timers_run(run)
    # Loaded from `sh`: the program runs on from its first step, and the
    # restored guest's clock goes on from the snapshot's.
    console.run("sh")
    assert "restored snapshot atstep" in console.run("loadvm atstep", timeout=180)
    console.run("q", CONSOLE)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    run.expect_exact("# ")
    restored = uptime(run)
    assert saved_at < restored < saved_at + 30, (saved_at, restored)
    assert_timers_run(run)
    interactive["saved_at"] = saved_at


def test_timers_run_after_a_loadvm_queued_in_a_breakpoint_shell(interactive):
    run, console = interactive["run"], interactive["console"]
    _, number = stop_at_first_step(interactive)
    assert "loadvm atstep: queued" in console.run("loadvm atstep")
    console.run(f"bd {number}")
    console.run("c", CONSOLE)
    run.expect_exact("[pyrebox] loadvm atstep done", timeout=180)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    run.expect_exact("# ")
    # The clock is the snapshot's, not moved on by the host's uptime.
    saved_at = interactive["saved_at"]
    restored = uptime(run)
    assert saved_at < restored < saved_at + 30, (saved_at, restored)
    assert_timers_run(run)


def test_poweroff_completes_after_the_restores(interactive):
    run, console = interactive["run"], interactive["console"]
    console.child.sendline("q")
    console.child.expect(pexpect.EOF)
    run.send("poweroff -f\r")
    run.expect(pexpect.EOF, timeout=60)
    run.close()
    assert run.exitstatus == 0
