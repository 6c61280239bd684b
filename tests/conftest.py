"""Shared helpers of the Python test suite.

Guest tests boot the default guest (~6 s each under TCG): they share boots
through module-scoped fixtures wherever the assertions allow.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))

from pyrebox import paths  # noqa: E402

LAUNCHER = os.path.join(ROOT, "pyrebox")


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


def pytest_collection_modifyitems(config, items):
    reasons: dict[str, str | None] = {}
    for item in items:
        rel = os.path.relpath(str(item.path), os.path.join(ROOT, "tests"))
        folder = rel.split(os.sep, 1)[0]
        if folder in _FOLDER_MARKERS and item.get_closest_marker(_FOLDER_MARKERS[folder]) is None:
            item.add_marker(_FOLDER_MARKERS[folder])
        for marker in ("guest", "qemu", "built_guest"):
            if item.get_closest_marker(marker) is None:
                continue
            if marker not in reasons:
                reasons[marker] = _missing(marker)
            if reasons[marker] is not None:
                item.add_marker(pytest.mark.skip(reason=reasons[marker]))
                break


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


def built_release() -> str:
    """The default guest kernel's release (e.g. 6.1.0-57-amd64), as built:
    Debian's point releases change it, so tests read it instead of naming it."""
    with open(os.path.join(paths.GUEST, "kernel-release")) as f:
        return f.read().strip()


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
        elif current is not None and not line.startswith("["):
            lines.append(line)
    return result


@pytest.fixture
def tmp_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path
