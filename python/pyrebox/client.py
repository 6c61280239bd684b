"""The console client: `pyrebox attach`, and the console side of `pyrebox run`.

Line editing, history and tab completion come from prompt_toolkit when the
terminal is a real one; completions are asked from the server (it knows the
shell's namespace). Without a terminal (a pipe) lines are read plainly.
The protocol is described in pyrebox/console.py.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import queue
import socket
import stat
import sys
import tempfile
import threading

RUN_DIR_PATTERN = "pyrebox-run-*"
CONSOLE_SOCKET = "console.sock"


class AttachError(Exception):
    """No console to attach to; the message says what to do."""


def connect(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        raise
    return sock


@dataclasses.dataclass
class Run:
    """A run dir found for `pyrebox attach`."""
    rundir: str
    socket: str
    pid: int | None  # its QEMU's, from qemu.pid (None: unreadable)
    alive: bool


def private_problem(rundir: str) -> str | None:
    """Why `rundir` is not a run dir to attach to without being named, or
    None. Only a directory of this user with mode 0700 whose console socket
    is this user's with mode 0600 or tighter qualifies: anything else in the
    shared temporary directory may have been put there by another user (a
    socket there would receive what is typed into the console)."""
    me = os.geteuid()
    try:
        st = os.lstat(rundir)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not stat.S_ISDIR(st.st_mode):
        return "not a directory"
    if st.st_uid != me:
        return f"owned by uid {st.st_uid}, not by you (uid {me})"
    if stat.S_IMODE(st.st_mode) != 0o700:
        return f"mode {stat.S_IMODE(st.st_mode):04o}, not 0700"
    path = os.path.join(rundir, CONSOLE_SOCKET)
    try:
        st = os.lstat(path)
    except OSError:
        return f"no {CONSOLE_SOCKET}"
    if not stat.S_ISSOCK(st.st_mode):
        return f"{CONSOLE_SOCKET} is not a socket"
    if st.st_uid != me:
        return f"{CONSOLE_SOCKET} is owned by uid {st.st_uid}, not by you (uid {me})"
    if stat.S_IMODE(st.st_mode) & 0o177:
        return f"{CONSOLE_SOCKET} has mode {stat.S_IMODE(st.st_mode):04o}, not 0600 or tighter"
    return None


def qemu_pid(rundir: str) -> int | None:
    try:
        with open(os.path.join(rundir, "qemu.pid")) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _alive(rundir: str) -> bool:
    """Whether the QEMU of a run dir runs: the process its pid file names
    exists and its command line names the run dir (so a pid reused by
    another program does not count)."""
    pid = qemu_pid(rundir)
    if pid is None:
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except OSError:
        return False
    return os.fsencode(os.path.abspath(rundir)) in cmdline


def runs(base: str | None = None) -> tuple[list[Run], list[tuple[str, str]]]:
    """Run dirs under `base` (the temporary directory): (the private ones,
    newest first; [(rundir, why it was ignored)])."""
    base = base or tempfile.gettempdir()
    found, ignored = [], []
    for rundir in glob.glob(os.path.join(base, RUN_DIR_PATTERN)):
        problem = private_problem(rundir)
        if problem:
            ignored.append((rundir, problem))
            continue
        found.append(Run(rundir, os.path.join(rundir, CONSOLE_SOCKET), qemu_pid(rundir),
                         _alive(rundir)))
    found.sort(key=lambda r: _mtime(r.socket), reverse=True)
    return found, sorted(ignored)


def _mtime(path: str) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0


def _gone(run: Run) -> str:
    pid = f"pid {run.pid}" if run.pid is not None else "its pid file unreadable"
    return f"the VM of {run.rundir} is gone (its QEMU, {pid}, no longer runs)"


def find_run_dir(rundir: str | None, ask=None) -> Run:
    """The run to attach to: `rundir` (a run dir or its console socket), or
    the one private live run; with several, `ask(live)` picks one (None:
    refused). Raises AttachError with the reason otherwise."""
    if rundir:
        path = os.path.join(rundir, CONSOLE_SOCKET) if os.path.isdir(rundir) else rundir
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.exists(path):
            raise AttachError(f"no PyREBox console at {path} (is the VM still running?)")
        run = Run(directory, path, qemu_pid(directory), _alive(directory))
        if run.pid is not None and not run.alive:
            raise AttachError(_gone(run))
        return run
    found, ignored = runs()
    for directory, why in ignored:
        print(f"pyrebox: ignoring {directory}: {why}", file=sys.stderr)
    live = [r for r in found if r.alive]
    if not live:
        if found:
            raise AttachError("; ".join(_gone(r) for r in found))
        raise AttachError("no running PyREBox VM with a console was found (start one with "
                          "pyrebox run, or give its run dir: pyrebox attach RUNDIR)")
    if len(live) == 1:
        return live[0]
    chosen = (ask or _ask)(live)
    if chosen is None:
        listing = "".join(f"\n  {i}) {r.rundir} (QEMU pid {r.pid})" for i, r in
                          enumerate(live, 1))
        raise AttachError(f"{len(live)} PyREBox VMs are running; name one: "
                          f"pyrebox attach RUNDIR{listing}")
    return chosen


def _ask(live: list[Run]) -> Run | None:
    """Asks on the terminal which run to join; None when stdin is not a
    terminal (nobody to ask). Raises AttachError for an answer that is not
    one of the numbers."""
    if not sys.stdin.isatty():
        return None
    print(f"{len(live)} PyREBox VMs are running:")
    for i, r in enumerate(live, 1):
        print(f"  {i}) {r.rundir} (QEMU pid {r.pid})")
    try:
        answer = input(f"attach to which one [1-{len(live)}]? ").strip()
    except EOFError:
        answer = ""
    if not answer.isdigit() or not 1 <= int(answer) <= len(live):
        raise AttachError(f"{answer!r} is not one of 1-{len(live)}; nothing was attached")
    return live[int(answer) - 1]


class _Interrupted:
    """Marks a prompt abandoned because the server sent a newer one."""


class ConsoleClient:
    def __init__(self, sock: socket.socket, out=None, interactive: bool | None = None):
        self.sock = sock
        self.out = out or sys.stdout
        self.interactive = sys.stdin.isatty() if interactive is None else interactive
        self.prompts: queue.Queue = queue.Queue()
        self.completions: queue.Queue = queue.Queue()
        self._send_lock = threading.Lock()
        self._session = None
        self._app = None
        self.closed = threading.Event()

    # --- wire ---

    def send(self, **msg) -> None:
        with self._send_lock:
            try:
                self.sock.sendall(json.dumps(msg).encode() + b"\n")
            except OSError:
                self.closed.set()

    def _reader(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                buf += data
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    self._handle(json.loads(line))
        except (OSError, ValueError):
            pass
        self.closed.set()
        self.prompts.put(None)
        self._interrupt_prompt()

    def _handle(self, msg: dict) -> None:
        kind = msg.get("t")
        if kind == "out":
            self.show(msg.get("data", ""))
        elif kind == "prompt":
            self.prompts.put(msg)
            if msg.get("seq", 0) > self._current_seq + 0 and self._prompting:
                self._interrupt_prompt()
        elif kind == "completions":
            self.completions.put(msg)
        elif kind == "bye":
            self.prompts.put(None)

    _current_seq = 0
    _prompting = False

    def _interrupt_prompt(self) -> None:
        app = self._app
        if app is not None and app.is_running:
            try:
                app.loop.call_soon_threadsafe(lambda: app.exit(result=_Interrupted)
                                              if app.is_running else None)
            except RuntimeError:
                pass

    def show(self, text: str) -> None:
        """Prints text (above the prompt while one is shown)."""
        if not text:
            return
        if self._app is not None and self._app.is_running:
            from prompt_toolkit.application import run_in_terminal
            done = threading.Event()

            def write():
                self.out.write(text)
                self.out.flush()
                done.set()
            try:
                self._app.loop.call_soon_threadsafe(lambda: run_in_terminal(write))
                done.wait(2)
                return
            except RuntimeError:
                pass
        self.out.write(text)
        self.out.flush()

    # --- completion ---

    def complete(self, text: str) -> tuple[list[str], int]:
        while not self.completions.empty():
            self.completions.get_nowait()
        self.send(op="complete", text=text)
        try:
            msg = self.completions.get(timeout=3)
        except queue.Empty:
            return [], 0
        return list(msg.get("items", [])), int(msg.get("start", 0))

    def _completer(self):
        from prompt_toolkit.completion import Completer, Completion
        client = self

        class Remote(Completer):
            def get_completions(self, document, complete_event):
                items, start = client.complete(document.text_before_cursor)
                for item in items:
                    yield Completion(item, start_position=start)
        return Remote()

    # --- the loop ---

    def _read(self, prompt: str, mode: str):
        if not self.interactive:
            self.out.write(prompt)
            self.out.flush()
            line = sys.stdin.readline()
            if not line:
                raise EOFError
            return line.rstrip("\n")
        if self._session is None:
            from prompt_toolkit import PromptSession
            from prompt_toolkit.history import InMemoryHistory
            self._session = PromptSession(history=InMemoryHistory(),
                                          completer=self._completer(),
                                          complete_while_typing=False)
        self._prompting = True
        try:
            self._app = self._session.app

            def newer_prompt_pending():
                # A prompt that arrived while this one was starting (the app
                # not running yet, so _handle could not interrupt it).
                if not self.prompts.empty():
                    self._app.exit(result=_Interrupted)
            return self._session.prompt(prompt, pre_run=newer_prompt_pending)
        finally:
            self._prompting = False

    def interact(self) -> None:
        """Serves the user until the console is left (q, or the VM ends)."""
        self.send(op="hello")
        threading.Thread(target=self._reader, daemon=True).start()
        try:
            while True:
                msg = self.prompts.get()
                # Only the newest prompt counts (a script may have opened a shell).
                while msg is not None and not self.prompts.empty():
                    nxt = self.prompts.get()
                    msg = nxt if nxt is not None else None
                if msg is None:
                    return
                self._current_seq = msg.get("seq", 0)
                try:
                    line = self._read(msg.get("text", "> "), msg.get("mode", "console"))
                except KeyboardInterrupt:
                    self.prompts.put(msg)  # Ctrl-C: a fresh prompt
                    continue
                except EOFError:
                    self.send(op="eof", seq=msg.get("seq"))
                    continue
                if line is _Interrupted:
                    continue
                self.send(op="line", text=line, seq=msg.get("seq"))
        finally:
            self._app = None
            try:
                self.sock.close()
            except OSError:
                pass


def attach(rundir: str | None) -> int:
    """`pyrebox attach`: 0 after a console session; 1 when there is nothing
    to attach to (none, refused, the VM gone) or the socket refuses."""
    try:
        run = find_run_dir(rundir)
        sock = connect(run.socket)
    except AttachError as e:
        print(f"pyrebox: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pyrebox: cannot attach: {e}", file=sys.stderr)
        return 1
    pid = f"QEMU pid {run.pid}" if run.pid is not None else "QEMU pid unknown"
    print(f"[pyrebox] attached to the run in {run.rundir} ({pid})", flush=True)
    ConsoleClient(sock).interact()
    return 0
