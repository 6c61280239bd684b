"""The host boundary of `pyrebox run` on the default guest: a stopped
launcher leaves no QEMU, --file / --loadvm without --cmd keep the guest's
shell, forwarded ports and created files stay the user's, and guest console
text cannot pass for PyREBox's own lines or decide a run's success."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import stat
import subprocess
import termios
import threading
import time

import psutil
import pytest

from conftest import LAUNCHER, command_outputs, qemus, run_pyrebox, wait_gone, write

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.guest

ENV = dict(os.environ, TERM="dumb", PROMPT_TOOLKIT_NO_CPR="1")
GREETING = "leaving this shell (exit or Ctrl-D) powers the guest off."
QMP_LINE = re.compile(r"\[pyrebox\] QMP socket: (\S+)/qmp\.sock")


class Lines:
    """The lines of a stream, read by a thread; next() waits for one."""

    def __init__(self, stream):
        self.queue: queue.Queue = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.queue.put(line.rstrip("\n"))
        self.queue.put(None)

    def until(self, predicate, timeout: float = 120) -> str:
        deadline = time.monotonic() + timeout
        while True:
            line = self.queue.get(timeout=max(0.1, deadline - time.monotonic()))
            if line is None:
                raise AssertionError(f"stream ended; lines: {self.seen[-30:]}")
            self.seen.append(line)
            if predicate(line):
                return line


def the_qemu(rundir: str):
    """The one QEMU process of a run dir."""
    deadline = time.monotonic() + 30
    while not qemus(rundir) and time.monotonic() < deadline:
        time.sleep(0.1)
    found = qemus(rundir)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ signals

SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL]


def expected_status(sig) -> str:
    return "killed" if sig == signal.SIGKILL else f"exit {128 + sig}"


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_to_a_batch_launcher_ends_its_qemu(sig):
    launcher = subprocess.Popen([LAUNCHER, "run", "--timeout", "300",
                                 "--cmd", "echo ready-$((40+2)); sleep 600"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out = Lines(launcher.stdout)
        rundir = QMP_LINE.match(out.until(QMP_LINE.match)).group(1)
        out.until(lambda line: line == "ready-42")  # the guest runs the command
        qemu = the_qemu(rundir)
        launcher.send_signal(sig)
        rc = launcher.wait(timeout=30)
        stderr = launcher.stderr.read()
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert (rc == -signal.SIGKILL) if sig == signal.SIGKILL else (rc == 128 + sig), rc
    assert wait_gone(lambda: qemus(rundir), 10) == []
    # The process itself: while a killed QEMU exits its command line reads
    # empty, so the run-dir lookup can miss it before it is gone.
    assert wait_gone(lambda: [qemu] if psutil_exists(qemu) else [], 30) == []
    if sig == signal.SIGKILL:
        shutil.rmtree(rundir, ignore_errors=True)  # nothing could clean it
    else:
        assert f"pyrebox: stopped by {sig.name}; QEMU was stopped" in stderr.splitlines()
        assert not os.path.exists(rundir)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: s.name)
def test_signal_to_an_interactive_launcher_ends_its_qemu(sig):
    child = pexpect.spawn(LAUNCHER, ["run", "--timeout", "300"], env=ENV, encoding="utf-8",
                          timeout=120)
    try:
        child.expect(QMP_LINE)
        rundir = child.match.group(1)
        child.expect_exact(GREETING)
        child.expect_exact("# ")
        qemu = the_qemu(rundir)
        os.kill(child.pid, sig)
        if sig != signal.SIGKILL:
            child.expect_exact(f"pyrebox: stopped by {sig.name}; QEMU was stopped", timeout=30)
        child.expect(pexpect.EOF, timeout=30)
        # The terminal is no longer in raw mode (only a handler can undo it).
        echo = bool(termios.tcgetattr(child.child_fd)[3] & termios.ECHO)
        child.close()
    finally:
        if child.isalive():
            child.close(force=True)
    assert echo == (sig != signal.SIGKILL)
    if sig == signal.SIGKILL:
        assert child.signalstatus == signal.SIGKILL
    else:
        assert child.exitstatus == 128 + sig
    assert wait_gone(lambda: qemus(rundir), 10) == []
    # The process itself: while a killed QEMU exits its command line reads
    # empty, so the run-dir lookup can miss it before it is gone.
    assert wait_gone(lambda: [qemu] if psutil_exists(qemu) else [], 30) == []
    if sig == signal.SIGKILL:
        shutil.rmtree(rundir, ignore_errors=True)
    else:
        assert not os.path.exists(rundir)


def psutil_exists(proc) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# ------------------------------------------- the shell with --file / --loadvm

def guest_shell(args: list[str], cwd: str):
    child = pexpect.spawn(LAUNCHER, ["run", *args], cwd=cwd, env=ENV, encoding="utf-8",
                          timeout=120)
    child.logfile_read = open(os.path.join(cwd, "run.log"), "a")
    child.expect_exact(GREETING)
    child.expect_exact("# ")
    return child


def leave(child) -> int:
    """`exit` in the guest's shell: the guest powers off, the run ends."""
    child.send("exit\r")
    child.expect(pexpect.EOF, timeout=60)
    child.close()
    return child.exitstatus


def test_file_without_cmd_keeps_the_guest_shell(tmp_path):
    host = write(tmp_path / "note.txt", "from the host: 6*7=42\n")
    child = guest_shell(["--timeout", "300", "--file", host, "--file", f"{host}:/opt/copy"],
                        str(tmp_path))
    try:
        child.send("cat /root/note.txt /opt/copy; echo done-$((1+1))\r")
        child.expect_exact("done-2")
        shown = child.before.replace("\r", "")
        assert shown.count("from the host: 6*7=42\n") == 2, shown
        child.expect_exact("# ")
        assert leave(child) == 0
    finally:
        if child.isalive():
            child.close(force=True)


def test_loadvm_without_cmd_opens_the_shell_on_the_restored_guest(tmp_path):
    marker = write(tmp_path / "marker.txt", "saved with the snapshot\n")
    disk = str(tmp_path / "snaps.qcow2")
    saved = run_pyrebox("run", "--disk", disk, "--savevm", "ready", "--timeout", "300",
                        "--file", marker, "--cmd", "echo state-$((2+3)) > /root/state",
                        cwd=str(tmp_path))
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr
    child = guest_shell(["--disk", disk, "--loadvm", "ready"], str(tmp_path))
    try:
        child.send("cat /root/marker.txt /root/state\r")
        child.expect_exact("saved with the snapshot\r\nstate-5\r\n")
        child.expect_exact("# ")
        assert leave(child) == 0
    finally:
        if child.isalive():
            child.close(force=True)


def test_a_guest_printed_snapshot_point_does_not_trigger_the_save(tmp_path):
    disk = str(tmp_path / "snaps.qcow2")
    saved = run_pyrebox("run", "--disk", disk, "--savevm", "ready", "--timeout", "300",
                        "--cmd", "echo PYREBOX-SNAPSHOT-POINT; sleep 2; echo late > /root/late",
                        cwd=str(tmp_path))
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr
    lines = saved.stdout.splitlines()
    assert "guest> PYREBOX-SNAPSHOT-POINT" in lines
    assert lines.count(f"[pyrebox] saved snapshot ready in {disk}") == 1
    assert lines.index("PYREBOX-CMD-END 1 rc=0") < lines.index("PYREBOX-SNAPSHOT-POINT")
    # The snapshot was taken after the command: its file is in the saved state.
    loaded = run_pyrebox("run", "--disk", disk, "--loadvm", "ready", "--timeout", "300",
                         "--cmd", "cat /root/late", cwd=str(tmp_path))
    assert loaded.returncode == 0, loaded.stdout[-3000:] + loaded.stderr
    assert command_outputs(loaded.stdout) == {1: (["late"], 0)}


# ------------------------------------------------- ports and files are private

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> list[str]:
    """Local addresses (hex, as in /proc/net/tcp) of TCP sockets listening on `port`."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for row in f.readlines()[1:]:
                fields = row.split()
                address, hex_port = fields[1].split(":")
                if int(hex_port, 16) == port and fields[3] == "0A":
                    found.append(address)
    return found


def test_hostfwd_binds_localhost_and_the_run_keeps_its_files_private(tmp_path):
    port = free_port()
    disk = tmp_path / "new.qcow2"
    launcher = subprocess.Popen(
        [LAUNCHER, "run", "--timeout", "300", "--nic", "e1000",
         "--hostfwd", f"tcp::{port}-:22", "--disk", str(disk),
         "--cmd", "echo ready-$((40+2)); sleep 5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(tmp_path))
    try:
        out = Lines(launcher.stdout)
        rundir = QMP_LINE.match(out.until(QMP_LINE.match)).group(1)
        out.until(lambda line: line == "ready-42")
        assert listening(port) == ["0100007F"]  # 127.0.0.1, not 0.0.0.0
        modes = {name: stat.S_IMODE(os.lstat(os.path.join(rundir, name)).st_mode)
                 for name in os.listdir(rundir)}
        assert stat.S_IMODE(os.stat(rundir).st_mode) == 0o700
        assert modes["console.sock"] == 0o600
        assert {name for name in modes if name.endswith(".sock")} >= {
            "qmp.sock", "pyrebox-qmp.sock", "console-qmp.sock", "console.sock",
            "nic-send.sock", "nic-recv.sock"}
        assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
        assert stat.S_IMODE(os.stat(disk).st_mode) == 0o600  # made 0600 at once
        rc = launcher.wait(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert rc == 0, out.seen[-30:]
    assert stat.S_IMODE(os.stat(disk).st_mode) == 0o600


def test_hostfwd_rules_reach_qemu_with_an_address():
    from pyrebox import run
    opts = run.RunOptions(nic="e1000", hostfwd=["tcp::18090-:22", "udp:0.0.0.0:5555-:7777",
                                                "tcp:127.0.0.2:80-10.0.2.15:8080"])
    run.validate(opts)
    assert opts.hostfwd == ["tcp:127.0.0.1:18090-:22", "udp:0.0.0.0:5555-:7777",
                            "tcp:127.0.0.2:80-10.0.2.15:8080"]
    with pytest.raises(run.RunError, match=r"--hostfwd tcp:18090-:22: expected QEMU's "
                                           r"hostfwd form .* its colon may not"):
        run.validate(run.RunOptions(nic="e1000", hostfwd=["tcp:18090-:22"]))


# ------------------------------------------------------- guest text and success

FAKES = ("printf '[pyrebox] error: x\\nPYREBOX-CMD-END 2 rc=0\\nPYREBOX-GUEST-END\\n"
         "pyrebox: all good\\n[python] hi\\n'; "
         "printf '\\033[2J\\033]0;title\\007\\n'; printf 'c1=\\302\\233 raw=\\233 tab=\\t.\\n'; "
         "stty -F /dev/console -echo; poweroff -f")


@pytest.fixture(scope="module")
def spoofing(tmp_path_factory):
    work = tmp_path_factory.mktemp("spoof")
    return run_pyrebox("run", "--timeout", "300", "--cmd", "echo first", "--cmd", FAKES,
                       "--cmd", "echo never", cwd=str(work))


def test_guest_markers_do_not_make_a_run_succeed(spoofing):
    assert spoofing.returncode == 1, spoofing.stdout
    lines = spoofing.stdout.splitlines()
    # Command 2 printed a fake end of itself and of the guest, then powered
    # the guest off: it did not finish, and command 3 never ran.
    assert lines[-1] == (f"pyrebox: command 2 ({FAKES[:57]}...) did not finish: the guest "
                         f"powered off after command 1 ended (success is judged from the "
                         f"markers of this run only)")
    assert [l for l in lines if l.startswith("PYREBOX-")] == [
        "PYREBOX-CMD-BEGIN 1", "PYREBOX-CMD-END 1 rc=0", "PYREBOX-CMD-BEGIN 2"]
    assert "never" not in lines
    assert command_outputs(spoofing.stdout) == {1: (["first"], 0)}


def test_guest_lines_that_look_like_the_host_are_prefixed(spoofing):
    lines = spoofing.stdout.splitlines()
    start = lines.index("PYREBOX-CMD-BEGIN 2")
    assert lines[start + 1:start + 8] == [
        "guest> [pyrebox] error: x",
        "guest> PYREBOX-CMD-END 2 rc=0",
        "guest> PYREBOX-GUEST-END",
        "guest> pyrebox: all good",
        "guest> [python] hi",
        "^[[2J^[]0;title^G",
        "c1=\\x9b raw=\\x9b tab=\t.",
    ]
    assert "\x1b" not in spoofing.stdout and "\x07" not in spoofing.stdout
    # The run's nonce never shows.
    assert not re.search(r"[0-9a-f]{32}", spoofing.stdout)


def test_markers_are_shown_without_the_nonce_on_success(tmp_path):
    result = run_pyrebox("run", "--timeout", "300", "--cmd", "printf no-newline",
                         "--cmd", "echo '[x] mine'; exit 3", cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    start = lines.index("PYREBOX-CMD-BEGIN 1")
    # A marker after output without a final newline gets a line of its own.
    assert lines[start:start + 7] == ["PYREBOX-CMD-BEGIN 1", "no-newline",
                                      "PYREBOX-CMD-END 1 rc=0", "PYREBOX-CMD-BEGIN 2",
                                      "guest> [x] mine", "PYREBOX-CMD-END 2 rc=3",
                                      "PYREBOX-GUEST-END"]
    assert command_outputs(result.stdout) == {1: (["no-newline"], 0), 2: ([], 3)}


def test_interactive_output_to_a_pipe_is_neutralised(tmp_path):
    launcher = subprocess.Popen([LAUNCHER, "run", "--timeout", "300"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=str(tmp_path))
    try:
        data = b""
        deadline = time.monotonic() + 120
        while GREETING.encode() not in data and time.monotonic() < deadline:
            chunk = os.read(launcher.stdout.fileno(), 4096)
            if not chunk:
                break
            data += chunk
        assert GREETING.encode() in data, data[-2000:]
        launcher.stdin.write(b"printf 'A\\033[2JB\\n[pyrebox] fake\\n'; exit\n")
        launcher.stdin.flush()
        rest, _ = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    lines = (data + rest).decode().splitlines()
    assert "A^[[2JB" in lines and "guest> [pyrebox] fake" in lines, lines[-20:]
    assert b"\x1b" not in data + rest and b"\r" not in data + rest
    assert launcher.returncode == 0
