"""A small synchronous QMP client: how scripts drive QEMU's UI (keyboard,
mouse, screen) from inside the VM's own process.

The plugin is given a QMP server socket of its own (plugin argument qmp=;
`pyrebox run` creates it beside the user's qmp.sock, so a user's QMP client
and the scripts never compete for the one connection a QMP server accepts).

Threads: QMP commands run on QEMU's main loop. A call blocks the calling
thread (with the GIL released while it waits on the socket) until the reply
arrives. That is safe from a vCPU-thread callback: a TCG vCPU runs guest code,
and so our callbacks, without QEMU's big lock, so the main loop serves the
command meanwhile. It is not possible while the main loop is not running:
during start-up (initialize_callbacks of start-up scripts runs while the plugin
is being installed) and at exit (clean()); calls then raise QmpError at once.
"""

from __future__ import annotations

from .native import pyrebox as _pyrebox
from .qmp_client import LazyQmp, QmpError  # noqa: F401 - QmpError is part of this API

TIMEOUT = 30.0


_conn: LazyQmp | None = None
_unavailable: str | None = None  # why commands cannot run now, if they cannot


def set_unavailable(reason: str | None) -> None:
    """Marks QMP unusable (start-up, exit) with a reason, or usable again."""
    global _unavailable
    _unavailable = reason


def command(name: str, **arguments):
    """Runs one QMP command and returns its result."""
    global _conn
    if _unavailable is not None:
        raise QmpError(f"{name}: {_unavailable}")
    if _conn is None:
        _conn = LazyQmp(_pyrebox.qmp_path(), timeout=TIMEOUT, missing=(
            "no QMP socket: this VM was not started by `pyrebox run` (or the plugin was "
            "given no qmp=SOCKET argument)"))
    return _conn.call(name, arguments)


def hmp(command_line: str) -> str:
    """A human monitor command; its output text."""
    return command("human-monitor-command", **{"command-line": command_line}) or ""
