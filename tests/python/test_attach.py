"""`pyrebox attach` without a run dir: which run dirs it considers, and what
it does with none, a gone one, or several (no guest: the run dirs are made
here, with a real console socket served by the test and a live process
whose command line names the run dir, as a QEMU's does)."""

from __future__ import annotations

import json
import os
import pathlib
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

import pytest

from conftest import LAUNCHER

pexpect = pytest.importorskip("pexpect")

NOBODY = pwd.getpwnam("nobody").pw_uid


class FakeRun:
    """A run dir with a console socket that greets, then says bye."""

    def __init__(self, base, name: str, dir_mode: int = 0o700, sock_mode: int = 0o600,
                 live: bool = True):
        self.rundir = os.path.join(str(base), f"pyrebox-run-{name}")
        os.mkdir(self.rundir)
        os.chmod(self.rundir, dir_mode)
        self.name = name
        self.socket_path = os.path.join(self.rundir, "console.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.socket_path)
        os.chmod(self.socket_path, sock_mode)
        self.listener.listen(1)
        self.hello = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()
        # A process whose command line names the run dir stands for its QEMU.
        self.process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)",
                                         self.rundir])
        if not live:
            self.process.kill()
            self.process.wait()
        with open(os.path.join(self.rundir, "qemu.pid"), "w") as f:
            f.write(f"{self.process.pid}\n")

    def _serve(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except OSError:
            return
        with conn:
            if json.loads(conn.makefile().readline()).get("op") == "hello":
                self.hello.set()
            conn.sendall(json.dumps({"t": "out", "data": f"console of {self.name}\n"}).encode()
                         + b"\n" + json.dumps({"t": "bye"}).encode() + b"\n")

    def close(self) -> None:
        self.listener.close()
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def tmp_path():
    """A short folder of the test's own: a Unix socket path has at most 107
    bytes, and pytest's own folders (longer still under xdist) can exceed it."""
    path = tempfile.mkdtemp(prefix="pyrebox-attach-")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def base(tmp_path):
    runs = []

    def make(*args, **kwargs) -> FakeRun:
        run = FakeRun(tmp_path, *args, **kwargs)
        runs.append(run)
        return run
    yield make
    for run in runs:
        run.close()


def attach(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LAUNCHER, "attach", *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, TMPDIR=str(tmp_path)))


def test_one_private_live_run_is_joined_and_named(base, tmp_path):
    run = base("only")
    result = attach(tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == (f"[pyrebox] attached to the run in {run.rundir} "
                                             f"(QEMU pid {run.process.pid})")
    assert "console of only" in result.stdout.splitlines()
    assert run.hello.is_set()


def test_a_foreign_owned_run_dir_is_ignored(base, tmp_path):
    run = base("foreign")
    os.chown(run.socket_path, NOBODY, -1)
    os.chown(run.rundir, NOBODY, -1)
    result = attach(tmp_path)
    assert result.returncode == 1
    assert (f"pyrebox: ignoring {run.rundir}: owned by uid {NOBODY}, not by you "
            f"(uid {os.geteuid()})") in result.stderr.splitlines()
    assert "pyrebox: no running PyREBox VM with a console was found" in result.stderr
    assert not run.hello.is_set()


def test_a_foreign_console_socket_in_a_private_dir_is_ignored(base, tmp_path):
    run = base("foreign-socket")
    os.chown(run.socket_path, NOBODY, -1)
    result = attach(tmp_path)
    assert result.returncode == 1
    assert (f"pyrebox: ignoring {run.rundir}: console.sock is owned by uid {NOBODY}, not by "
            f"you (uid {os.geteuid()})") in result.stderr.splitlines()
    assert not run.hello.is_set()


def test_a_0755_run_dir_and_a_0666_socket_are_ignored(base, tmp_path):
    open_dir = base("open-dir", dir_mode=0o755)
    open_socket = base("open-socket", sock_mode=0o666)
    result = attach(tmp_path)
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert f"pyrebox: ignoring {open_dir.rundir}: mode 0755, not 0700" in lines
    assert (f"pyrebox: ignoring {open_socket.rundir}: console.sock has mode 0666, not 0600 "
            f"or tighter") in lines
    assert not open_dir.hello.is_set() and not open_socket.hello.is_set()


def test_a_stale_run_is_reported_gone(base, tmp_path):
    run = base("stale", live=False)
    result = attach(tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"pyrebox: the VM of {run.rundir} is gone (its QEMU, pid {run.process.pid}, "
        f"no longer runs)"]
    # Named explicitly, the same.
    named = attach(tmp_path, run.rundir)
    assert named.returncode == 1
    assert "is gone" in named.stderr and not run.hello.is_set()


def test_two_live_runs_without_a_terminal_are_refused_with_the_list(base, tmp_path):
    first, second = base("first"), base("second")
    os.utime(first.socket_path, (1, 1))  # older: listed second
    result = attach(tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "pyrebox: 2 PyREBox VMs are running; name one: pyrebox attach RUNDIR",
        f"  1) {second.rundir} (QEMU pid {second.process.pid})",
        f"  2) {first.rundir} (QEMU pid {first.process.pid})"]
    assert not first.hello.is_set() and not second.hello.is_set()


def test_two_live_runs_on_a_terminal_ask_which_one(base, tmp_path):
    first, second = base("first"), base("second")
    os.utime(first.socket_path, (1, 1))
    child = pexpect.spawn(LAUNCHER, ["attach"], env=dict(os.environ, TMPDIR=str(tmp_path)),
                          encoding="utf-8", timeout=30)
    child.expect_exact("2 PyREBox VMs are running:")
    child.expect_exact(f"1) {second.rundir} (QEMU pid {second.process.pid})")
    child.expect_exact(f"2) {first.rundir} (QEMU pid {first.process.pid})")
    child.expect_exact("attach to which one [1-2]? ")
    child.sendline("2")
    child.expect_exact(f"[pyrebox] attached to the run in {first.rundir}")
    child.expect_exact("console of first")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert first.hello.is_set() and not second.hello.is_set()


def test_a_wrong_answer_attaches_nothing(base, tmp_path):
    base("first"), base("second")
    child = pexpect.spawn(LAUNCHER, ["attach"], env=dict(os.environ, TMPDIR=str(tmp_path)),
                          encoding="utf-8", timeout=30)
    child.expect_exact("attach to which one [1-2]? ")
    child.sendline("3")
    child.expect_exact("pyrebox: '3' is not one of 1-2; nothing was attached")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1
