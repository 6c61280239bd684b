"""The console's put, get and exec in the default guest: `pyrebox run
--agent` adds the agent's virtio-serial port and the guest's init starts
qemu-ga (the machine's, copied into the guest) on it. Without --agent the
commands say the VM has no agent channel."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import LAUNCHER, Wire


class Console:
    """A `pyrebox run` in interactive mode (stdout to a file) and a client
    of its PyREBox console."""

    def __init__(self, work, *args: str):
        self.log_path = work / "run.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([LAUNCHER, "run", "--timeout", "300", *args], cwd=str(work),
                                     stdin=subprocess.PIPE, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        rundir = None
        while rundir is None and time.monotonic() < deadline:
            found = re.search(r"\[pyrebox\] QMP socket: (\S+)/qmp\.sock",
                              self.log_path.read_text())
            rundir = found.group(1) if found else time.sleep(0.2)
        assert rundir, self.log_path.read_text()
        path = os.path.join(rundir, "console.sock")
        while not os.path.exists(path) and self.proc.poll() is None:
            time.sleep(0.2)
        self.wire = Wire(path, timeout=120)
        self.prompt = self.wire.until("prompt")

    def line(self, text: str) -> str:
        self.wire.send(op="line", text=text, seq=self.prompt["seq"])
        self.prompt = self.wire.until("prompt")
        return self.wire.shown

    def until_agent(self, command: str, wait: float = 120) -> str:
        deadline = time.monotonic() + wait
        while True:
            shown = self.line(command)
            if "[exit status" in shown or time.monotonic() > deadline:
                return shown

    def close(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    console = Console(tmp_path_factory.mktemp("default_agent"), "--agent")
    yield console
    console.close()


def test_exec_runs_in_the_default_guest(agent):
    shown = agent.until_agent("exec cat /proc/cmdline; hostname")
    assert shown.endswith("pyrebox-guest\n[exit status 0]\n"), shown
    assert " pyrebox.agent" in shown.splitlines()[0]
    assert agent.line("exec static_loop 10 | tail -1; exit 4") == (
        f"checksum={sum((i * 7 + 3) & 0xff for i in range(10))}\n[exit status 4]\n")


def test_put_and_get_round_trip(agent, tmp_path):
    agent.until_agent("exec true")
    blob = os.urandom(200_000)
    host = tmp_path / "blob"
    host.write_bytes(blob)
    assert agent.line(f"put {host} /tmp/x/blob") == \
        f"copied {host} to the guest's /tmp/x/blob (200000 bytes)\n"
    back = tmp_path / "back"
    assert agent.line(f"get /tmp/x/blob {back}") == \
        f"copied the guest's /tmp/x/blob to {back} (200000 bytes)\n"
    assert back.read_bytes() == blob


def test_without_agent_the_commands_say_so(tmp_path):
    console = Console(tmp_path)
    try:
        shown = console.line("exec true")
        assert shown == ("exec: this VM has no guest agent channel: files and commands reach a "
                         "VM started with pyrebox run --image DISK (with qemu-guest-agent "
                         "installed in it), or the default guest started with pyrebox run "
                         "--agent\n"), shown
    finally:
        console.close()
