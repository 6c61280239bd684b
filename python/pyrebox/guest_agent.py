"""A client of QEMU's guest agent (qemu-guest-agent in the guest), over the
host end of its virtio-serial channel (own_vm.agent_args).

The agent speaks QMP-like JSON lines: one command, one answer. The channel
outlives agent restarts and may hold a stale answer, so every connection
starts with guest-sync-delimited: the agent answers after a 0xFF byte,
and everything before that byte is discarded.

Commands run with guest-exec (output captured, polled with
guest-exec-status); files move with guest-file-open/read/write/close in
base64 chunks. Every wait is bounded: AgentError says which command did not
answer in time and what to check.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import random
import socket
import time

CHUNK = 48 * 1024          # bytes per guest-file-read/write
# The host end of a run's agent channel, in its run directory (beside the
# console's socket): the launcher creates it, the console's commands use it.
AGENT_SOCKET = "agent.sock"
NO_AGENT = ("the guest agent does not answer: install and start qemu-guest-agent in the VM "
            "(Debian: apt install qemu-guest-agent; it serves the virtio-serial port "
            "org.qemu.guest_agent.0, which pyrebox run --image adds)")


class AgentError(Exception):
    """The agent is missing, refused a command, or did not answer in time."""


class GuestAgent:
    def __init__(self, socket_path: str, timeout: float = 10.0):
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._buffer = b""

    # --- protocol ---

    def connect(self, wait: float | None = None) -> None:
        """Connects and synchronises; waits up to `wait` seconds (default:
        the timeout) for the agent to answer, e.g. while the guest boots."""
        deadline = time.monotonic() + (self.timeout if wait is None else wait)
        last = ""
        while True:
            try:
                self._open()
                self._sync(min(2.0, max(0.1, deadline - time.monotonic())))
                return
            except (OSError, AgentError) as e:
                last = str(e)
                self.close()
            if time.monotonic() >= deadline:
                raise AgentError(f"{NO_AGENT} ({last})")
            time.sleep(0.5)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        self._buffer = b""

    def _open(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket_path)
        self._sock = sock

    def _sync(self, timeout: float) -> None:
        token = random.randrange(1, 1 << 31)
        self._send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
        deadline = time.monotonic() + timeout
        # Everything up to the agent's 0xFF delimiter is stale.
        while b"\xff" not in self._buffer:
            self._fill(deadline, "guest-sync-delimited")
        self._buffer = self._buffer.split(b"\xff")[-1]
        while True:
            answer = self._receive(deadline, "guest-sync-delimited")
            if answer.get("return") == token:
                return

    def _send(self, message: dict) -> None:
        assert self._sock is not None
        self._sock.sendall(json.dumps(message).encode() + b"\n")

    def _fill(self, deadline: float, what: str) -> None:
        assert self._sock is not None
        left = deadline - time.monotonic()
        if left <= 0:
            raise AgentError(f"the guest agent did not answer {what} in time")
        self._sock.settimeout(left)
        try:
            data = self._sock.recv(65536)
        except socket.timeout:
            raise AgentError(f"the guest agent did not answer {what} in time") from None
        if not data:
            raise AgentError(f"the guest agent's channel closed during {what}")
        self._buffer += data

    def _receive(self, deadline: float, what: str) -> dict:
        while b"\n" not in self._buffer:
            self._fill(deadline, what)
        line, self._buffer = self._buffer.split(b"\n", 1)
        line = line.strip().lstrip(b"\xff")
        if not line:
            return self._receive(deadline, what)
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            raise AgentError(f"the guest agent answered {what} with no JSON: {line[:200]!r}") \
                from None

    def command(self, name: str, timeout: float | None = None, **arguments):
        """Runs one agent command; its `return` value, or AgentError with
        the agent's own error message."""
        if self._sock is None:
            self.connect()
        message = {"execute": name}
        if arguments:
            message["arguments"] = arguments
        self._send(message)
        answer = self._receive(time.monotonic() + (timeout or self.timeout), name)
        if "error" in answer:
            error = answer["error"]
            raise AgentError(f"{name}: {error.get('desc', error)}")
        return answer.get("return")

    # --- what PyREBox uses ---

    def ping(self) -> None:
        self.command("guest-ping")

    def exec(self, argv: list[str], timeout: float = 600.0,
             stdin: bytes | None = None) -> tuple[int | None, bytes, bytes]:
        """Runs argv in the guest; (exit code, or None when it ended by a
        signal; stdout; stderr). AgentError when it runs longer than
        `timeout` (it is left running)."""
        code, signal_number, out, err = self.exec_status(argv, timeout, stdin)
        return (code if signal_number is None else None), out, err

    def exec_status(self, argv: list[str], timeout: float = 600.0,
                    stdin: bytes | None = None) -> tuple[int | None, int | None, bytes, bytes]:
        """exec(), with how it ended: (exit code or None, signal number or
        None, stdout, stderr)."""
        args = {"path": argv[0], "arg": list(argv[1:]), "capture-output": True}
        if stdin is not None:
            args["input-data"] = base64.b64encode(stdin).decode()
        pid = self.command("guest-exec", **args)["pid"]
        deadline = time.monotonic() + timeout
        delay = 0.05
        while True:
            status = self.command("guest-exec-status", pid=pid)
            if status.get("exited"):
                out = base64.b64decode(status.get("out-data", ""))
                err = base64.b64decode(status.get("err-data", ""))
                if "signal" in status:
                    return None, int(status["signal"]), out, err
                return status.get("exitcode"), None, out, err
            if time.monotonic() >= deadline:
                raise AgentError(f"{' '.join(argv)}: still running after {timeout:g} s in "
                                 f"the guest (pid {pid}); it is left running")
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 0.5)

    def put(self, data: bytes, guest_path: str, mode: int | None = None) -> None:
        """Writes `data` to `guest_path` (created or truncated)."""
        handle = self.command("guest-file-open", path=guest_path, mode="w")
        try:
            for start in range(0, len(data), CHUNK):
                chunk = data[start:start + CHUNK]
                written = self.command("guest-file-write", handle=handle,
                                       **{"buf-b64": base64.b64encode(chunk).decode()})
                if written.get("count") != len(chunk):
                    raise AgentError(f"{guest_path}: the guest wrote {written.get('count')} of "
                                     f"{len(chunk)} bytes (is its disk full?)")
        finally:
            self.command("guest-file-close", handle=handle)
        if mode is not None:
            code, _, err = self.exec(["/bin/chmod", f"{mode:o}", guest_path], timeout=30)
            if code != 0:
                raise AgentError(f"chmod {mode:o} {guest_path}: {err.decode(errors='replace')}")

    def put_file(self, host: str, guest_path: str) -> int:
        """Copies the host file HOST to GUEST_PATH with HOST's permission
        bits, making GUEST_PATH's folder when it is missing; the bytes
        copied. AgentError names the guest path that failed."""
        with open(host, "rb") as f:
            data = f.read()
        mode = os.stat(host).st_mode & 0o777
        folder = posixpath.dirname(guest_path) or "/"
        code, out, err = self.exec(["/bin/mkdir", "-p", "--", folder], timeout=60.0)
        if code != 0:
            raise AgentError(f"cannot make the guest folder {folder}: "
                             f"{(err or out).decode(errors='replace').strip()}")
        try:
            self.put(data, guest_path, mode=mode)
        except AgentError as e:
            raise AgentError(f"copying {host} to the guest's {guest_path} failed: {e}") from None
        return len(data)

    def get(self, guest_path: str, limit: int = 1 << 30) -> bytes:
        """The contents of `guest_path`; AgentError beyond `limit` bytes."""
        handle = self.command("guest-file-open", path=guest_path, mode="r")
        parts, total = [], 0
        try:
            while True:
                read = self.command("guest-file-read", handle=handle, count=CHUNK)
                chunk = base64.b64decode(read.get("buf-b64", ""))
                parts.append(chunk)
                total += len(chunk)
                if total > limit:
                    raise AgentError(f"{guest_path}: larger than {limit} bytes")
                if read.get("eof") or not chunk:
                    break
        finally:
            self.command("guest-file-close", handle=handle)
        return b"".join(parts)
