"""PyREBox's guest agent plugin (`plugins.guest_agent`) on QEMU's guest agent.

PyREBox scripts copy a sample into the guest and start it with

    from plugins.guest_agent import guest_agent
    guest_agent.copy_file("/host/sample", "/root/sample")
    guest_agent.execute_file("/root/sample", ["arg"])
    guest_agent.stop_agent()

usually from initialize_callbacks, before the guest has booted. The calls
queue commands and return at once, as PyREBox's did; a worker thread runs
them in order through qemu-guest-agent in the guest (pyrebox.guest_agent),
as soon as the agent answers, and reports each on the console: a copy with
its size, a program with its guest pid when it starts and with its exit
status and output when it ends. A command that fails is reported and the
next one runs; the VM runs on.

The agent channel is the run's (a VM started with `pyrebox run --agent` or
`--image DISK`); `set_socket` gives its path (the composition root does).

PyREBox's own agent was a guest program found by name, driven through an
unused opcode; `exit_agent()` ended that program and `stop_agent()` ended
the plugin. qemu-guest-agent is the guest's service and stays: here
`exit_agent()` only marks the queue, and `stop_agent()` ends the worker once
what was queued before it has run (later commands are refused).

Thread: the methods are called from scripts (any thread, the GIL held); the
worker is the only thread that speaks to the agent.
"""

from __future__ import annotations

import base64
import os
import threading
import time

from . import output
from .guest_agent import AgentError, GuestAgent

CONNECT_WAIT = 10.0     # seconds per connection attempt (the guest may still boot)
POLL_INTERVAL = 0.2     # seconds between status polls of started programs
SHOWN_OUTPUT = 64 * 1024  # bytes of a program's output shown on the console

_socket_path: str | None = None


def set_socket(path: str | None) -> None:
    """The host end of this run's agent channel (None: the VM has none)."""
    global _socket_path
    _socket_path = path


def _default_printer(text: str) -> None:
    output.write("[plugins.guest_agent] ", text)


class GuestAgentPlugin:
    """PyREBox's GuestAgentPlugin interface (its public methods, names and
    arguments)."""

    COPY, EXEC, EXIT, STOP = "COPY_FILE", "EXEC_FILE", "EXIT AGENT", "STOP AGENT"

    def __init__(self):
        self._printer = _default_printer
        self._commands: list[dict] = []
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False   # stop_agent() was queued: nothing more is accepted
        self._closed = False     # clean(): the worker leaves now
        self._running: list[tuple[int, str]] = []  # (guest pid, path) of started programs
        self._said_waiting = False

    # --- PyREBox's interface ---

    def copy_file(self, source_path, destiny_path) -> bool:
        """Queues a copy of the host file `source_path` to the guest path
        `destiny_path` (absolute; its folder is made; the host file's
        permission bits are kept)."""
        if not isinstance(source_path, str) or not isinstance(destiny_path, str):
            raise ValueError("copy_file(source_path, destiny_path) takes two str paths")
        host = os.path.abspath(os.path.expanduser(source_path))
        if not os.path.isfile(host):
            raise ValueError(f"copy_file: host file {source_path} not found")
        if not destiny_path.startswith("/"):
            raise ValueError(f"copy_file: the guest path {destiny_path} must be absolute")
        self._queue(self.COPY, {"source": host, "destiny": destiny_path})
        return True

    def execute_file(self, path, args=[], env={}, exit_afterwards=False) -> bool:  # noqa: B006
        """Queues starting the guest file `path` with the argument list
        `args` (argv[1:]) and the environment variables `env` added; with
        `exit_afterwards`, exit_agent() follows."""
        if type(path) is not str:
            raise ValueError("The path must be a string")
        if type(args) is not list or not all(isinstance(a, str) for a in args):
            raise ValueError("Args must be provided as a python list of str")
        if type(env) is not dict or not all(isinstance(k, str) and isinstance(v, str)
                                            for k, v in env.items()):
            raise ValueError(
                "Env must be provided as a dictionary of variable name -> value mappings (str)")
        self._queue(self.EXEC, {"path": path, "args": list(args), "env": dict(env)})
        if exit_afterwards:
            self.exit_agent()
        return True

    def exit_agent(self) -> bool:
        """Marks the queue (qemu-guest-agent, the guest's service, keeps
        running; commands queued later still run)."""
        self._queue(self.EXIT, {})
        return True

    def stop_agent(self) -> bool:
        """Ends the plugin once the commands queued before have run; later
        commands are refused."""
        self._queue(self.STOP, {})
        return True

    def print_command_list(self) -> None:
        """Prints the commands not yet run."""
        with self._wake:
            commands = list(self._commands)
        self._printer("LIST OF COMMANDS")
        self._printer("================")
        for i, command in enumerate(commands):
            self._printer(f"    [{i}] CMD: {command['command']} - {command['meta']}")

    def remove_command(self, cmd_number) -> None:
        """Removes command `cmd_number` (as print_command_list numbers it)
        from the queue."""
        with self._wake:
            if isinstance(cmd_number, int) and 0 <= cmd_number < len(self._commands):
                del self._commands[cmd_number]
                removed = True
            else:
                removed = False
        if removed:
            self._printer(f"[*] Command {cmd_number} succesfully removed")
        else:
            self._printer(f"[!] No command {cmd_number} in the queue")

    # --- the plugin as a script module ---

    def start(self, printer=None) -> None:
        """initialize_callbacks: the printer to report with; starts the
        worker."""
        if printer is not None:
            self._printer = printer
        with self._wake:
            self._closed = False
            self._ensure_worker()

    def close(self, wait: float = 5.0) -> None:
        """clean(): the worker leaves (commands still queued are dropped)."""
        with self._wake:
            self._closed = True
            dropped = len(self._commands)
            self._commands.clear()
            self._wake.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(wait)
        if dropped:
            self._printer(f"unloaded with {dropped} command(s) not run")

    # --- the worker ---

    def _queue(self, command: str, meta: dict) -> None:
        with self._wake:
            if self._stopping:
                raise AgentError(f"the guest agent plugin was stopped (stop_agent()): "
                                 f"{command} {meta} is not run")
            if command == self.STOP:
                self._stopping = True
            self._commands.append({"command": command, "meta": meta})
            self._ensure_worker()
            self._wake.notify_all()

    def _ensure_worker(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._work, name="pyrebox-guest-agent",
                                            daemon=True)
            self._thread.start()

    def _next(self) -> dict | None:
        """The first queued command, left in the queue (it is taken once
        the agent answers, so the queue shows it until it runs); None when
        closed, or when none is queued while programs are still running
        (the caller polls them)."""
        with self._wake:
            while not self._closed and not self._commands:
                if self._running:
                    self._wake.wait(POLL_INTERVAL)
                    return None
                self._wake.wait()
            if self._closed:
                return None
            return self._commands[0]

    def _take(self, command: dict) -> bool:
        """Removes `command` from the queue; False when remove_command took
        it out first."""
        with self._wake:
            for i, queued in enumerate(self._commands):
                if queued is command:
                    del self._commands[i]
                    return True
            return False

    def _work(self) -> None:
        agent: GuestAgent | None = None
        stopped = False
        try:
            while True:
                command = None
                if not stopped:
                    command = self._next()  # None: closed, or time to poll
                elif self._running:
                    time.sleep(POLL_INTERVAL)
                if self._closed or (stopped and not self._running):
                    break
                if command is not None and command["command"] in (self.STOP, self.EXIT):
                    self._take(command)
                    if command["command"] == self.STOP:
                        stopped = True
                        self._printer("stop_agent: no more commands are run")
                    continue
                if command is None and not self._running:
                    continue
                if agent is None:
                    agent = self._connect()
                    if agent is None:
                        break
                try:
                    if command is not None and self._take(command):
                        self._run(agent, command)
                    self._poll(agent)
                except (AgentError, OSError) as e:
                    what = f"{command['command']} {command['meta']}: " if command else ""
                    self._printer(f"error: {what}{e}")
                # The channel serves one client at a time (the console's
                # put/get/exec and the launcher's copies use it too): it is
                # held for one step only.
                agent.close()
                agent = None
        finally:
            if agent is not None:
                agent.close()

    def _connect(self) -> GuestAgent | None:
        """A connected agent, waiting while the guest boots; None when the
        plugin is closed first or the VM has no agent channel."""
        path = _socket_path
        if path is None or not os.path.exists(path):
            self._printer("error: this VM has no guest agent channel: start it with pyrebox "
                          "run --agent (the default guest) or --image DISK (with "
                          "qemu-guest-agent installed in it); the queued commands are not run")
            with self._wake:
                self._commands.clear()
            return None
        while not self._closed:
            agent = GuestAgent(path, timeout=30.0)
            try:
                agent.connect(wait=CONNECT_WAIT)
                return agent
            except (AgentError, OSError):
                agent.close()
                if not self._said_waiting:
                    self._printer("waiting for the guest agent to answer")
                    self._said_waiting = True
        return None

    def _run(self, agent: GuestAgent, command: dict) -> None:
        meta = command["meta"]
        if command["command"] == self.COPY:
            size = agent.put_file(meta["source"], meta["destiny"])
            self._printer(f"copied {meta['source']} to the guest's {meta['destiny']} "
                          f"({size} bytes)")
        elif command["command"] == self.EXEC:
            arguments = {"path": meta["path"], "arg": meta["args"], "capture-output": True}
            if meta["env"]:
                # The guest program's environment: the agent's, with these set.
                arguments["env"] = [f"{k}={v}" for k, v in meta["env"].items()]
            pid = agent.command("guest-exec", **arguments)["pid"]
            self._running.append((pid, meta["path"]))
            self._printer(f"started {meta['path']} (pid {pid})")

    def _poll(self, agent: GuestAgent) -> None:
        for pid, path in list(self._running):
            try:
                status = agent.command("guest-exec-status", pid=pid)
            except AgentError as e:
                # The agent no longer knows it (restarted): stop asking.
                self._running.remove((pid, path))
                self._printer(f"error: {path} (pid {pid}): its end is unknown: {e}")
                raise
            if not status.get("exited"):
                continue
            self._running.remove((pid, path))
            how = (f"killed by signal {status['signal']}" if "signal" in status
                   else f"exited with status {status.get('exitcode')}")
            self._printer(f"{path} (pid {pid}) {how}")
            for stream in ("out-data", "err-data"):
                data = base64.b64decode(status.get(stream, ""))
                text = data[:SHOWN_OUTPUT].decode("utf-8", "backslashreplace")
                for line in text.splitlines():
                    self._printer(f"  {line}")
                if len(data) > SHOWN_OUTPUT:
                    self._printer(f"  ... ({len(data) - SHOWN_OUTPUT} more bytes)")


guest_agent = GuestAgentPlugin()


def initialize_callbacks(module_hdl, printer) -> None:
    printer("[*]    Initializing guest_agent plugin")
    guest_agent.start(printer)


def clean() -> None:
    guest_agent.close()
