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


def pytest_configure(config):
    config.addinivalue_line("markers", "guest: boots the default guest under QEMU")


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
