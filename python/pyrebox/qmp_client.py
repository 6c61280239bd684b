"""A small synchronous QMP client (QEMU Machine Protocol over a Unix socket).

Used by the launcher (snapshots around a batch run) and, inside QEMU, under
the plugin's own QMP connection (pyrebox.qmp). One command at a time;
asynchronous events QEMU sends in between are skipped.
"""

from __future__ import annotations

import json
import socket
import time


class QmpError(RuntimeError):
    """QEMU refused a command, or the connection failed; the message says which."""


class Qmp:
    def __init__(self, path: str, timeout: float = 600.0):
        self.path = path
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.settimeout(timeout)
        try:
            self._sock.connect(path)
        except OSError as e:
            self._sock.close()
            raise QmpError(f"cannot connect to QEMU's QMP socket {path}: {e}") from None
        self._file = self._sock.makefile("rb")
        greeting = self._read()
        if "QMP" not in greeting:
            raise QmpError(f"{path} is not a QMP socket (greeting {greeting!r})")
        self.execute("qmp_capabilities")

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

    def _read(self) -> dict:
        line = self._file.readline()
        if not line:
            raise QmpError("QEMU closed the QMP connection")
        return json.loads(line)

    def execute(self, command: str, **arguments):
        message = {"execute": command}
        if arguments:
            message["arguments"] = arguments
        self._sock.sendall(json.dumps(message).encode() + b"\n")
        while True:
            reply = self._read()
            if "event" in reply:
                continue
            if "error" in reply:
                raise QmpError(f"QEMU refused {command}: "
                               f"{reply['error'].get('desc', reply['error'])}")
            return reply.get("return")

    def hmp(self, command_line: str) -> str:
        """A human monitor command; its output text."""
        return self.execute("human-monitor-command", **{"command-line": command_line}) or ""

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._sock.close()

    def __enter__(self) -> "Qmp":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def snapshot(qmp: Qmp, verb: str, name: str) -> None:
    """savevm / loadvm NAME through the human monitor, which reports
    failures as text ("Error: ..."): raised as QmpError."""
    if verb not in ("savevm", "loadvm", "delvm"):
        raise ValueError(f"unknown snapshot command {verb!r}")
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"snapshot name must be a non-empty word, got {name!r}")
    output = qmp.hmp(f"{verb} {name}").strip()
    if output:
        raise QmpError(f"{verb} {name}: {output}")
