"""The batch of an own-VM run (`pyrebox run --image DISK --cmd ... --file ...`):
files and commands go through QEMU's guest agent (pyrebox.guest_agent), as
guest/init does them for the default guest.

The launcher shows what it does in the default guest's form, so that the
same tools read both:
    [pyrebox] the guest agent answers (12.3 s after QEMU started)
    [pyrebox] copied HOST to GUEST (N bytes)
    PYREBOX-CMD-BEGIN 1
    ...the command's output (stdout, then stderr: the agent captures them
       apart and returns them when the command has ended)...
    PYREBOX-CMD-END 1 rc=0
    PYREBOX-GUEST-END
A command runs as `/bin/sh -c CMD` in `/root` (the agent runs as root); a
command killed by signal N reports rc=128+N, as a shell would.

Every wait is bounded by the run's deadline (--timeout) and, for the agent
to come up, by AGENT_WAIT when no --timeout is given; an agent that never
answers is named with what to install, and the end of the VM's serial
console is shown (what the guest said while booting).
"""

from __future__ import annotations

import collections
import shlex
import time

from .guest_agent import AgentError, GuestAgent

AGENT_WAIT = 300.0          # seconds for the agent to answer after QEMU starts, without --timeout
SHUTDOWN_WAIT = 120.0      # seconds for a clean power-off
CONSOLE_TAIL = 30           # serial console lines shown when the agent does not answer
GUEST_WORKDIR = "/root"


class AgentTimeout(Exception):
    """The run's deadline passed while waiting for the guest."""


class AgentBatch:
    """Drives one run's batch through the agent on `socket_path`. `emit`
    shows a line; `alive()` says whether QEMU still runs; `deadline` is a
    time.monotonic() value or None."""

    def __init__(self, socket_path: str, emit, alive, deadline: float | None):
        self.agent = GuestAgent(socket_path, timeout=30.0)
        self.emit = emit
        self.alive = alive
        self.deadline = deadline
        self.console = collections.deque(maxlen=CONSOLE_TAIL)
        self.started = time.monotonic()
        self.agent_seen = False  # the agent has answered once

    # --- the serial console, kept for diagnosis ---

    def console_line(self, line: str) -> None:
        self.console.append(line)

    def console_tail(self) -> str:
        if not self.console:
            return "the VM printed nothing on its serial console (is its console ttyS0?)"
        return "the VM's serial console ended with:\n" + "\n".join(
            "  " + line for line in self.console)

    # --- waits ---

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.monotonic()

    def _bounded(self, wanted: float) -> float:
        left = self._left()
        if left is not None and left <= 0:
            raise AgentTimeout()
        return wanted if left is None else min(wanted, left)

    def wait_for_agent(self) -> float:
        """Seconds from QEMU's start until the agent answered. AgentError
        when it does not answer in AGENT_WAIT (or QEMU ends first);
        AgentTimeout at the deadline."""
        limit = self.started + AGENT_WAIT
        while True:
            if not self.alive():
                raise AgentError("QEMU ended before the guest agent answered")
            if self.deadline is None and time.monotonic() >= limit:
                raise AgentError(f"no answer within {AGENT_WAIT:g} s of the VM's start")
            try:
                self.agent.connect(wait=self._bounded(5.0))
                self.agent_seen = True
                return time.monotonic() - self.started
            except AgentError:
                continue

    # --- files and commands ---

    def put_file(self, host: str, guest: str) -> None:
        size = self.agent.put_file(host, guest)
        self.emit(f"[pyrebox] copied {host} to {guest} ({size} bytes)")

    def run_command(self, number: int, command: str, show) -> int:
        """Runs one command; shows its markers and output (each line through
        `show`), returns its exit status."""
        self.emit(f"PYREBOX-CMD-BEGIN {number}")
        argv = ["/bin/sh", "-c", f"cd {shlex.quote(GUEST_WORKDIR)} 2>/dev/null; {command}"]
        try:
            code, signal_number, out, err = self.agent.exec_status(
                argv, timeout=self._bounded(float("inf")))
        except AgentError:
            if self._left() is not None and self._left() <= 0:
                raise AgentTimeout() from None
            raise
        for stream in (out, err):
            text = stream.decode("utf-8", "backslashreplace")
            for line in text.replace("\r", "").splitlines():
                show(line)
        rc = code if signal_number is None else 128 + signal_number
        self.emit(f"PYREBOX-CMD-END {number} rc={rc}")
        return rc

    # --- the whole batch ---

    def run(self, files, commands: list[str], show, save=None) -> None:
        """Waits for the agent, copies `files` (GuestFile), calls `save()`
        when given (the snapshot of --savevm: after the files, before the
        commands), runs `commands`. AgentError says what failed;
        AgentTimeout at the deadline."""
        took = self.wait_for_agent()
        self.emit(f"[pyrebox] the guest agent answers ({took:.1f} s after QEMU started)")
        for f in files:
            self.put_file(f.host, f.guest)
        if save is not None:
            save()
        for number, command in enumerate(commands, 1):
            self.run_command(number, command, show)

    def power_off(self, quit_qemu, clean: bool) -> None:
        """Ends the VM: with `clean` (the guest's writes are kept: a kept
        overlay, or the image itself) the guest shuts down through the agent
        and QEMU exits on its own (quit_qemu() after SHUTDOWN_WAIT);
        otherwise quit_qemu() at once (the overlay is thrown away)."""
        if clean:
            try:
                self.agent.command("guest-shutdown", timeout=2.0)
            except AgentError:
                pass  # the agent does not answer a shutdown that started
            end = time.monotonic() + SHUTDOWN_WAIT
            if self.deadline is not None:
                end = min(end, self.deadline)
            while self.alive() and time.monotonic() < end:
                time.sleep(0.1)
            if not self.alive():
                return
            self.emit(f"[pyrebox] the guest did not power off within {SHUTDOWN_WAIT:g} s "
                      f"of the agent's guest-shutdown; QEMU is stopped")
        self.agent.close()
        quit_qemu()
