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

import itertools
import json
import socket
import threading

import _pyrebox

TIMEOUT = 30.0


class QmpError(RuntimeError):
    """QMP is unavailable, or QEMU refused a command (QEMU's message is kept)."""


_lock = threading.Lock()
_conn: tuple[socket.socket, object] | None = None
_ids = itertools.count(1)
_unavailable: str | None = None  # why commands cannot run now, if they cannot


def set_unavailable(reason: str | None) -> None:
    """Marks QMP unusable (start-up, exit) with a reason, or usable again."""
    global _unavailable
    _unavailable = reason


def _read_message(reader) -> dict:
    line = reader.readline()
    if not line:
        raise QmpError("QEMU closed the QMP connection")
    return json.loads(line)


def _connect() -> tuple[socket.socket, object]:
    path = _pyrebox.qmp_path()
    if not path:
        raise QmpError("no QMP socket: this VM was not started by `pyrebox run` (or the plugin "
                       "was given no qmp=SOCKET argument)")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise QmpError(f"cannot connect to the QMP socket {path}: {e.strerror or e}") from None
    reader = sock.makefile("rb")
    try:
        greeting = _read_message(reader)
        if "QMP" not in greeting:
            raise QmpError(f"{path} is not a QMP socket (greeting {greeting!r})")
        _exchange(sock, reader, "qmp_capabilities", {})
    except (OSError, ValueError) as e:
        sock.close()
        raise QmpError(f"QMP handshake on {path} failed: {e}") from None
    return sock, reader


def _exchange(sock, reader, name: str, arguments: dict):
    ident = next(_ids)
    message = {"execute": name, "id": ident}
    if arguments:
        message["arguments"] = arguments
    sock.sendall(json.dumps(message).encode() + b"\n")
    while True:
        reply = _read_message(reader)
        if reply.get("id") != ident:
            continue  # an asynchronous event
        if "error" in reply:
            error = reply["error"]
            raise QmpError(f"QEMU refused {name}: {error.get('desc', error)}")
        return reply.get("return")


def command(name: str, **arguments):
    """Runs one QMP command and returns its result."""
    global _conn
    if _unavailable is not None:
        raise QmpError(f"{name}: {_unavailable}")
    with _lock:
        if _conn is None:
            _conn = _connect()
        sock, reader = _conn
        try:
            return _exchange(sock, reader, name, arguments)
        except (OSError, ValueError) as e:
            sock.close()
            _conn = None
            raise QmpError(f"{name}: the QMP connection failed ({e})") from None
