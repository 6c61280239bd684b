"""Shared by the own-VM tests (test_own_vm_*.py, and the default guest's
agent test): the Debian 12 VM image built by guest/vm_image.py (build/vm; a
skip naming `make vm-image` when it is not built), its manifest, the
host-compiled test program, the image's hash (every run must leave the
image's bytes as they were), and an interactive run with a client of its
PyREBox console (Console)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import LAUNCHER, Wire
from pyrebox import paths

HERE = os.path.dirname(os.path.abspath(__file__))


def manifest() -> dict:
    if not os.path.exists(paths.VM_MANIFEST):
        pytest.skip("needs the Debian 12 VM image (build/vm/manifest.json): run 'make vm-image'")
    with open(paths.VM_MANIFEST) as f:
        return json.load(f)


def image_path(m: dict) -> str:
    return os.path.join(paths.VM, m["image"]["file"])


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def report_program(folder) -> str:
    """own_vm/report.c compiled static on the host, in FOLDER."""
    out = os.path.join(str(folder), "report")
    subprocess.run(["gcc", "-static", "-O1", "-o", out, os.path.join(HERE, "report.c")],
                   check=True)
    return out


def assert_image_unchanged(m: dict) -> None:
    assert sha256(image_path(m)) == m["image"]["sha256"], "a run wrote the VM's image"


class Console:
    """A `pyrebox run` in interactive mode (stdout to run.log in WORK) and a
    client of its PyREBox console: line() types a line and returns what it
    showed."""

    def __init__(self, work, *args: str, timeout: int = 300):
        self.work = work
        self.log_path = work / "run.log"
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([LAUNCHER, "run", "--timeout", str(timeout), *args],
                                     cwd=str(work), stdin=subprocess.PIPE, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 60
            rundir = None
            while rundir is None and time.monotonic() < deadline:
                found = re.search(r"\[pyrebox\] QMP socket: (\S+)/qmp\.sock",
                                  self.log_path.read_text())
                rundir = found.group(1) if found else time.sleep(0.2)
            assert rundir, self.log_path.read_text()
            path = os.path.join(rundir, "console.sock")
            while not os.path.exists(path) and self.proc.poll() is None:
                time.sleep(0.2)  # the plugin makes it as it starts
            self.wire = Wire(path, timeout=120)
            self.prompt = self.wire.until("prompt")
        except BaseException:
            self.close()
            raise

    def line(self, text: str, until: str = "prompt") -> str:
        self.wire.send(op="line", text=text, seq=self.prompt["seq"])
        msg = self.wire.until(until)
        if until == "prompt":
            self.prompt = msg
        return self.wire.shown

    def until_agent(self, command: str, wait: float = 120) -> str:
        """Types `command` (an exec) until the guest agent answers it, at
        most `wait` seconds; what it showed last."""
        deadline = time.monotonic() + wait
        while True:
            shown = self.line(command)
            if "[exit status" in shown or time.monotonic() > deadline:
                return shown

    def close(self) -> None:
        """Stops the run as a user's kill does (SIGTERM), SIGKILL if it
        does not end in time."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
