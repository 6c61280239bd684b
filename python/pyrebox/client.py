"""The console client: `pyrebox attach`, and the console side of `pyrebox run`.

Line editing, history and tab completion come from prompt_toolkit when the
terminal is a real one; completions are asked from the server (it knows the
shell's namespace). Without a terminal (a pipe) lines are read plainly.
The protocol is described in pyrebox/console.py.
"""

from __future__ import annotations

import glob
import json
import os
import queue
import socket
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


def find_run_dir(rundir: str | None) -> str:
    """The console socket of `rundir`, or of the most recent live run."""
    if rundir:
        path = os.path.join(rundir, CONSOLE_SOCKET) if os.path.isdir(rundir) else rundir
        if not os.path.exists(path):
            raise AttachError(f"no PyREBox console at {path} (is the VM still running?)")
        return path
    candidates = glob.glob(os.path.join(tempfile.gettempdir(), RUN_DIR_PATTERN, CONSOLE_SOCKET))
    candidates.sort(key=lambda p: os.stat(p).st_mtime if os.path.exists(p) else 0, reverse=True)
    for path in candidates:
        if _alive(os.path.dirname(path)):
            return path
    raise AttachError("no running PyREBox VM with a console was found (start one with "
                      "pyrebox run, or give its run dir: pyrebox attach RUNDIR)")


def _alive(rundir: str) -> bool:
    """Whether the QEMU of a run dir runs (its pid file names it)."""
    try:
        with open(os.path.join(rundir, "qemu.pid")) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


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
    try:
        path = find_run_dir(rundir)
        sock = connect(path)
    except AttachError as e:
        print(f"pyrebox: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"pyrebox: cannot attach: {e}", file=sys.stderr)
        return 1
    ConsoleClient(sock).interact()
    return 0
