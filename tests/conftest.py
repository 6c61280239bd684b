"""Shared helpers of the Python test suite.

Guest tests boot the default guest (~6 s each under TCG): they share boots
through module-scoped fixtures wherever the assertions allow.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import psutil
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from pyrebox import paths  # noqa: E402

LAUNCHER = os.path.join(ROOT, "pyrebox")

# Every launcher the tests start makes its run dir under RUNS (TMPDIR is
# inherited), so the QEMUs of this session are told from any other QEMU on
# the machine by that path in their command line. The test process itself
# keeps the usual temporary directory (pytest's tmp_path).
tempfile.gettempdir()
RUNS = tempfile.mkdtemp(prefix="pyrebox-tests-")
os.environ["TMPDIR"] = RUNS


# What each marker needs (pytest.ini declares the markers). Tests under
# tests/guest are `guest` and tests under tests/plugin `qemu` by their folder;
# other tests mark themselves.
_FOLDER_MARKERS = {"guest": "guest", "plugin": "qemu"}


def _missing(marker: str) -> str | None:
    """Why tests with `marker` cannot run here, or None when they can."""
    def absent(path: str, what: str) -> str | None:
        if os.path.exists(path):
            return None
        return f"needs {what} ({os.path.relpath(path, ROOT)}): run 'make bootstrap'"

    if marker == "built_guest":
        return absent(paths.GUEST_KERNEL, "the built default guest")
    if marker == "built_vm":
        if os.path.exists(paths.VM_MANIFEST):
            return None
        return ("needs the Debian 12 VM image (build/vm/manifest.json): "
                "run 'make vm-image' (as root)")
    if marker in ("qemu", "guest"):
        from pyrebox import qemu
        try:
            qemu.find("x86_64")
        except qemu.QemuError as e:
            return f"needs QEMU: {e}"
        reason = absent(paths.PLUGIN, "the PyREBox plugin build")
        if reason is None and marker == "guest":
            reason = (absent(paths.GUEST_KERNEL, "the built default guest")
                      or absent(paths.GUEST_INITRAMFS, "the built default guest"))
        return reason
    return None


# Files that take much of a run (minutes on their own): collected first, so
# that `-n auto --dist loadfile`, which hands out files in collection order,
# starts them at once and the other worker runs the rest meanwhile.
LONGEST_FIRST = ("guest/test_register_reads.py",)


def pytest_collection_modifyitems(config, items):
    def rank(item) -> int:
        rel = os.path.relpath(str(item.path), os.path.join(ROOT, "tests"))
        return LONGEST_FIRST.index(rel) if rel in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)  # stable: the others keep their order
    reasons: dict[str, str | None] = {}
    for item in items:
        rel = os.path.relpath(str(item.path), os.path.join(ROOT, "tests"))
        folder = rel.split(os.sep, 1)[0]
        if folder in _FOLDER_MARKERS and item.get_closest_marker(_FOLDER_MARKERS[folder]) is None:
            item.add_marker(_FOLDER_MARKERS[folder])
        for marker in ("guest", "qemu", "built_guest", "built_vm"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                reasons[marker] = _missing(marker)
            if reasons[marker] is not None:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
                break


def pytest_unconfigure(config):
    shutil.rmtree(RUNS, ignore_errors=True)


def qemus(path: str = RUNS) -> list[psutil.Process]:
    """The running QEMU processes whose command line names `path` (a run
    dir, or RUNS for all of this session's)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        try:
            cmdline = proc.info["cmdline"] or []
            if ((proc.info["name"] or "").startswith("qemu-system")
                    and any(path in arg for arg in cmdline)
                    and proc.status() != psutil.STATUS_ZOMBIE):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def orphans() -> list[psutil.Process]:
    """This session's QEMUs whose launcher is gone (reparented)."""
    result = []
    for proc in qemus():
        try:
            parent = proc.parent()
            if parent is None or "pyrebox.cli" not in " ".join(parent.cmdline()):
                result.append(proc)
        except psutil.Error:
            pass
    return result


def wait_gone(find, timeout: float) -> list[psutil.Process]:
    """Polls find() until it returns nothing or `timeout` passes; returns
    what is left."""
    deadline = time.monotonic() + timeout
    left = find()
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = find()
    return left


def _kill_and_describe(procs: list[psutil.Process]) -> str:
    text = []
    for proc in procs:
        try:
            text.append(f"pid {proc.pid} (parent {proc.ppid()}): {' '.join(proc.cmdline())[:300]}")
            proc.kill()
        except psutil.Error:
            pass
    return "; ".join(text)


@pytest.fixture(autouse=True)
def no_orphaned_qemu():
    """After each test: no QEMU of this session outlived its launcher."""
    yield
    left = wait_gone(orphans, 10)
    if left:
        pytest.fail(f"QEMU left running without its launcher: {_kill_and_describe(left)}")


@pytest.fixture(autouse=True, scope="module")
def no_qemu_after_module():
    """After a module (its fixtures torn down first): no QEMU of this session
    runs at all; a VM a fixture started was stopped."""
    yield
    left = wait_gone(qemus, 15)
    if left:
        pytest.fail(f"QEMU still running after the module: {_kill_and_describe(left)}")


def stop_launcher(child, timeout: float = 30) -> None:
    """Ends a `pyrebox run` started with pexpect the way a user's kill does
    (SIGTERM: the launcher stops its QEMU and removes its run dir); SIGKILL
    only if it does not end in time."""
    if child.isalive():
        child.kill(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while child.isalive() and time.monotonic() < deadline:
            try:
                child.read_nonblocking(65536, timeout=0.5)
            except Exception:  # noqa: BLE001 - EOF or timeout: keep waiting for the exit
                time.sleep(0.1)
    child.close(force=True)


def run_pyrebox(*args: str, cwd: str | None = None, timeout: float = 300,
                env: dict | None = None) -> subprocess.CompletedProcess:
    """Runs ./pyrebox with `args`; stdout and stderr are captured as text."""
    return subprocess.run([LAUNCHER, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_plugin_only(arch: str, *plugin_opts: str, cwd: str | None = None,
                    env: dict | None = None) -> subprocess.CompletedProcess:
    """Starts qemu-system-<arch> with the plugin and no machine (-M none),
    then quits through the monitor: plugin install and script loading run,
    no guest boots. The plugin prints on stderr (fd 2)."""
    plugin = ",".join([paths.PLUGIN, *plugin_opts])
    return subprocess.run(
        [f"qemu-system-{arch}", "-M", "none", "-display", "none", "-monitor", "stdio",
         "-plugin", plugin],
        input="quit\n", capture_output=True, text=True, timeout=60, cwd=cwd,
        env={**os.environ, **(env or {})})


class Wire:
    """The PyREBox console's protocol (JSON lines) spoken directly on a run's
    console.sock, as a client does. until(kind) returns the next message of
    that kind; `shown` then holds the output that came before it."""

    def __init__(self, path: str, timeout: float = 60):
        import socket
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(path)
        self.file = self.sock.makefile("rb")
        self.shown = ""
        self.send(op="hello")

    def send(self, **msg) -> None:
        import json
        self.sock.sendall(json.dumps(msg).encode() + b"\n")

    def until(self, kind: str) -> dict:
        import json
        shown = []
        while True:
            line = self.file.readline()
            if not line:
                raise EOFError("the console closed")
            msg = json.loads(line)
            if msg.get("t") == "out":
                shown.append(msg.get("data", ""))
            if msg.get("t") == kind:
                self.shown = "".join(shown)
                return msg


def built_release() -> str:
    """The default guest kernel's release (e.g. 6.1.0-57-amd64), as built:
    Debian's point releases change it, so tests read it instead of naming it."""
    with open(os.path.join(paths.GUEST, "kernel-release")) as f:
        return f.read().strip()


def on_demand_module(spec: str | None = None) -> dict:
    """{name, path, symbol} of the kernel module a built guest carries for
    tests to insmod and rmmod (manifest.json's on_demand_module: which one
    depends on what the kernel has)."""
    return paths.guest(spec).on_demand_module


def insmod_command(module: dict) -> str:
    """The guest command that inserts MODULE (on_demand_module)."""
    return f"insmod {module['path']}"


def nm_symbol(binary: str, name: str) -> int:
    """The address of symbol `name` in `binary`'s symbol table (nm)."""
    out = subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise AssertionError(f"{name} not in {binary}")


def write(path, text: str) -> str:
    """Writes dedented `text` to `path` (creating folders); returns the path."""
    path = str(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(textwrap.dedent(text).lstrip("\n"))
    return path


def key_values(lines: list[str]) -> dict[str, str]:
    """key=value lines printed by the guest test programs."""
    out = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep and key.isidentifier():
            out[key] = value
    return out


def command_outputs(stdout: str) -> dict[int, tuple[list[str], int]]:
    """Splits a batch run's output by the guest init's markers:
    command number -> (its output lines, its exit status)."""
    result: dict[int, tuple[list[str], int]] = {}
    current = None
    lines: list[str] = []
    for line in stdout.splitlines():
        if line.startswith("PYREBOX-CMD-BEGIN "):
            current, lines = int(line.split()[1]), []
        elif line.startswith("PYREBOX-CMD-END ") and current is not None:
            rc = int(line.split("rc=")[1])
            result[current] = (lines, rc)
            current = None
        elif current is not None and not line.startswith(("[", "guest> [")):
            # "[...]" lines are PyREBox's and the scripts'; "guest> [" the
            # kernel's own (its timestamps), shown with the guest prefix.
            lines.append(line)
    return result


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
