"""A small synchronous QMP client (QEMU Machine Protocol over a Unix socket).

Used by the launcher (snapshots around a batch run), by the console (its
own QMP socket: monitor commands, stop/cont) and, inside QEMU, under the
plugin's own QMP connection (pyrebox.qmp). One command at a time per
connection (calls are serialised); asynchronous events QEMU sends in
between are skipped.
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time

POLL = 0.2  # seconds between on_wait calls while an answer is awaited


class QmpError(RuntimeError):
    """QEMU refused a command, or the connection failed; the message says which."""


class _Commands:
    """The conveniences both connection kinds offer, on top of call()."""

    def call(self, command: str, arguments: dict | None = None, timeout: float | None = None,
             on_wait=None):
        raise NotImplementedError

    def execute(self, command: str, **arguments):
        return self.call(command, arguments)

    def hmp(self, command_line: str) -> str:
        """A human monitor command; its output text."""
        return self.call("human-monitor-command", {"command-line": command_line}) or ""

    def running(self) -> bool:
        return bool(self.call("query-status")["running"])


class Qmp(_Commands):
    """One connection, opened at construction."""

    def __init__(self, path: str, timeout: float = 600.0):
        self.path = path
        self.timeout = timeout
        self._buf = b""
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._sock.connect(path)
        except OSError as e:
            self._sock.close()
            raise QmpError(f"cannot connect to QEMU's QMP socket {path}: "
                           f"{e.strerror or e}") from None
        try:
            greeting = self._read(timeout=10)
            if "QMP" not in greeting:
                raise QmpError(f"{path} is not a QMP socket (greeting {greeting!r})")
            self.call("qmp_capabilities", timeout=10)
        except (QmpError, OSError, ValueError) as e:
            self.close()
            raise QmpError(f"QMP handshake on {path} failed: {e}") from None

    @classmethod
    def wait_for(cls, path: str, timeout: float = 30.0) -> "Qmp":
        """Connects once QEMU has created the socket."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return cls(path)
            except QmpError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _read(self, timeout: float | None, on_wait=None) -> dict:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buf:
            ready, _, _ = select.select([self._sock], [], [], POLL)
            if not ready:
                if on_wait is not None:
                    on_wait()
                if deadline is not None and time.monotonic() > deadline:
                    raise QmpError("QEMU's monitor did not answer in time")
                continue
            data = self._sock.recv(65536)
            if not data:
                raise QmpError("QEMU closed the QMP connection")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def call(self, command: str, arguments: dict | None = None, timeout: float | None = None,
             on_wait=None):
        """Runs a QMP command and returns its result. `on_wait` is called every
        0.2 s while the answer is awaited (the console serves shells then);
        `timeout` defaults to the connection's."""
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        with self._lock:
            self._sock.sendall(json.dumps(message).encode() + b"\n")
            while True:
                reply = self._read(self.timeout if timeout is None else timeout, on_wait)
                if "event" in reply:
                    continue
                if "error" in reply:
                    raise QmpError(f"QEMU refused {command}: "
                                   f"{reply['error'].get('desc', reply['error'])}")
                return reply.get("return")

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> "Qmp":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LazyQmp(_Commands):
    """A connection opened on first use and opened again after it failed
    (QEMU may not serve the socket yet when the owner starts)."""

    def __init__(self, path: str, missing: str, timeout: float = 30.0):
        self.path = path
        self.missing = missing  # the error when no path was given
        self.timeout = timeout
        self._conn: Qmp | None = None
        self._lock = threading.Lock()

    def _connection(self) -> Qmp:
        with self._lock:
            if self._conn is None:
                if not self.path:
                    raise QmpError(self.missing)
                self._conn = Qmp(self.path, timeout=self.timeout)
            return self._conn

    def call(self, command: str, arguments: dict | None = None, timeout: float | None = None,
             on_wait=None):
        conn = self._connection()
        try:
            return conn.call(command, arguments, timeout, on_wait)
        except (OSError, ValueError) as e:
            self._drop(conn)
            raise QmpError(f"{command}: the QMP connection failed ({e})") from None
        except QmpError as e:
            if "closed the QMP connection" in str(e):
                self._drop(conn)
            raise

    def _drop(self, conn: Qmp) -> None:
        with self._lock:
            if self._conn is conn:
                conn.close()
                self._conn = None



def check_snapshot_name(name) -> None:
    """A snapshot name is one non-empty word (the monitor splits on spaces)."""
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"snapshot name must be a non-empty word, got {name!r}")


def snapshot(qmp, verb: str, name: str) -> None:
    """savevm / loadvm NAME through the human monitor of `qmp` (anything
    with an hmp(command_line) method), which reports failures as text
    ("Error: ..."): raised as QmpError."""
    if verb not in ("savevm", "loadvm", "delvm"):
        raise ValueError(f"unknown snapshot command {verb!r}")
    check_snapshot_name(name)
    output = qmp.hmp(f"{verb} {name}").strip()
    if output:
        raise QmpError(f"{verb} {name}: {output}")
