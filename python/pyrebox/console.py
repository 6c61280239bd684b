"""The PyREBox console: a server inside QEMU, on a Unix socket of the run dir.

The runtime starts it at boot when the plugin got `console=PATH` (the
launcher passes `<run dir>/console.sock`). One client at a time talks to it
(`pyrebox attach`, or the escape key of `pyrebox run`); a second one is told
the console is busy.

Protocol: one JSON object per line, both ways.
  client -> server  {"op": "hello"}                         first, once
                    {"op": "line", "text": ..., "seq": N}   a line typed at prompt N
                    {"op": "eof", "seq": N}                 Ctrl-D at prompt N
                    {"op": "complete", "text": ...}         text before the cursor
  server -> client  {"t": "out", "data": ...}               output to show
                    {"t": "prompt", "text": ..., "seq": N, "mode": "console"|"shell"}
                    {"t": "completions", "items": [...], "start": -K}
                    {"t": "bye"}                            the session ends
Every line answers one prompt with exactly one new prompt (or bye). The
server may also send a prompt unasked: when a script opens the shell while
the client sits at the console prompt; the client then drops what was being
typed and uses the newest prompt (lines answering an older prompt are
ignored).

Console commands: sh, import_module NAME, unload_module HANDLE,
reload_module HANDLE, list_modules, put HOST GUEST, get GUEST HOST, exec CMD
(the guest agent: pyrebox.agent_commands), help, q / quit; anything else goes to
QEMU's human monitor (QMP human-monitor-command on the plugin's qmp= socket).

Freezing: `sh` stops the VM through QMP (`stop`) and continues it when the
shell is left, if it was running. A script calling
`ipython_shell.start_shell()` inside a callback blocks its vCPU thread
instead; that thread runs the shell's cells (see ShellRequest) while the
session thread relays the client.
"""

from __future__ import annotations

import difflib
import json
import os
import queue
import select
import socket
import threading
import traceback

from . import agent_commands, output, script_api
from .guest_agent import AgentError
from .interactive import WAITING_SHELL_MARKER, ShellRequest  # noqa: F401 - part of this module's API
from .qmp_client import LazyQmp, QmpError

CONSOLE_COMMANDS = {
    "sh": "open the PyREBox shell (the VM is frozen until you leave it)",
    "import_module": "import_module NAME: load the script NAME (dotted module path)",
    "unload_module": "unload_module HANDLE: unload a script (its clean() runs)",
    "reload_module": "reload_module HANDLE: unload a script and load its current code",
    "list_modules": "list the scripts: handle, name, loaded or not",
    **agent_commands.USAGE,
    "help": "this list",
    "q": "leave the console (the VM keeps running)",
    "quit": "leave the console (the VM keeps running)",
}
CONSOLE_PROMPT = "pyrebox> "
# Seconds a session waits, after a shell is left, for the next shell a
# script requests (a breakpoint hit as the VM resumes) before it shows the
# console prompt.
NEXT_SHELL_WAIT = 0.3


class Channel:
    """JSON lines over a socket; sends are serialised (any thread)."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self._buf = b""
        self._send_lock = threading.Lock()
        self.closed = False

    def send(self, **msg) -> None:
        data = json.dumps(msg).encode() + b"\n"
        with self._send_lock:
            if self.closed:
                return
            try:
                self.sock.sendall(data)
            except OSError:
                self.closed = True

    def out(self, text: str) -> None:
        if text:
            self.send(t="out", data=text)

    def pending(self) -> bool:
        return b"\n" in self._buf

    def recv_nowait(self) -> dict | None:
        """A complete buffered message, or None."""
        if b"\n" not in self._buf:
            return None
        line, self._buf = self._buf.split(b"\n", 1)
        try:
            return json.loads(line)
        except ValueError:
            return {"op": "bad"}

    def fill(self) -> bool:
        """Reads what is available; False at end of stream."""
        try:
            data = self.sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self._buf += data
        return True


class ConsoleServer:
    def __init__(self, path: str, qmp_path: str):
        self.path = path
        self.qmp = LazyQmp(qmp_path, missing=(
            "no QMP socket was given to PyREBox (plugin argument console_qmp=PATH), so "
            "QEMU's monitor is not reachable from the console"))
        self._listener: socket.socket | None = None
        self._session: Session | None = None
        self._lock = threading.Lock()
        # Shells requested by scripts, waiting for a session to serve them.
        self.requests: queue.Queue[ShellRequest] = queue.Queue()
        self._wake_r, self._wake_w = os.pipe()

    def start(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(self.path)
        # Whoever connects drives the VM: the socket is the user's alone
        # (`pyrebox attach` joins only a 0600-or-tighter console socket).
        os.chmod(self.path, 0o600)
        sock.listen(4)
        self._listener = sock
        threading.Thread(target=self._accept_loop, name="pyrebox-console", daemon=True).start()

    @property
    def attached(self) -> bool:
        return self._session is not None

    def request_shell(self, request: ShellRequest) -> None:
        self.requests.put(request)
        os.write(self._wake_w, b"!")

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                busy = self._session is not None
                if not busy:
                    self._session = Session(self, Channel(conn))
            if busy:
                chan = Channel(conn)
                chan.out("another client is attached to this PyREBox console; "
                         "leave it there first (q)\n")
                chan.send(t="bye")
                conn.close()
                continue
            threading.Thread(target=self._serve_session, args=(self._session,),
                             name="pyrebox-console-session", daemon=True).start()

    def _serve_session(self, session: "Session") -> None:
        try:
            if session.handshake():
                session.run()
        except Exception:
            output.error(f"the console session failed:\n{traceback.format_exc().rstrip()}")
        finally:
            with self._lock:
                self._session = None
            try:
                session.chan.sock.close()
            except OSError:
                pass

    def drain_wake(self) -> None:
        try:
            while select.select([self._wake_r], [], [], 0)[0]:
                os.read(self._wake_r, 4096)
        except OSError:
            pass


class ClientGone(Exception):
    """The client disconnected."""


class Session:
    """One attached client: the console, and shells opened from it or for it."""

    def __init__(self, server: ConsoleServer, chan: Channel):
        self.server = server
        self.chan = chan
        self.seq = 0
        self.mode = "console"
        self._completer = None  # (text) -> (items, start) for the current mode
        self._monitor_cache: dict[str, list[str]] = {}  # help line -> names (_monitor_words)

    # --- talking to the client ---

    def handshake(self) -> bool:
        """A client first says {"op": "hello"}; a connection that does not
        (a probe, a stray connect) is closed without serving anything."""
        self.chan.sock.settimeout(10)
        try:
            while not self.chan.pending():
                if not self.chan.fill():
                    return False
        except OSError:
            return False
        finally:
            self.chan.sock.settimeout(None)
        return self.chan.recv_nowait().get("op") == "hello"

    def prompt(self, text: str, mode: str) -> None:
        self.seq += 1
        self.mode = mode
        self.chan.send(t="prompt", text=text, seq=self.seq, mode=mode)

    def read_line(self, allow_requests: bool = True) -> str | None:
        """The client's answer to the current prompt (None for Ctrl-D).
        Answers completion requests meanwhile; serves shells scripts request
        (when allowed) and then repeats the prompt."""
        while True:
            msg = self.chan.recv_nowait()
            if msg is None:
                fds = [self.chan.sock] + ([self.server._wake_r] if allow_requests else [])
                ready, _, _ = select.select(fds, [], [], 1.0)
                if self.server._wake_r in ready:
                    self.server.drain_wake()
                if allow_requests and not self.server.requests.empty():
                    saved_mode, saved_completer = self.mode, self._completer
                    self.serve_requests()
                    self._completer = saved_completer
                    self.prompt(self._prompt_text(saved_mode), saved_mode)
                    continue
                if self.chan.sock in ready and not self.chan.fill():
                    raise ClientGone()
                continue
            op = msg.get("op")
            if op == "complete":
                items, start = self._complete(msg.get("text", ""))
                self.chan.send(t="completions", items=items, start=start)
                continue
            if msg.get("seq") != self.seq:
                continue  # answers a prompt that was replaced
            if op == "eof":
                return None
            if op == "line":
                return str(msg.get("text", ""))

    def _prompt_text(self, mode: str) -> str:
        return CONSOLE_PROMPT if mode == "console" else self._shell_prompt

    def _complete(self, text: str) -> tuple[list[str], int]:
        try:
            if self._completer is not None:
                return self._completer(text)
        except Exception:
            pass
        return [], 0

    # --- the console ---

    def run(self) -> None:
        self.chan.out("PyREBox console: 'help' lists the commands, 'sh' opens the shell; "
                      "other commands go to QEMU's monitor.\n")
        try:
            self.serve_requests()
            while True:
                self._completer = self._complete_console
                self.prompt(CONSOLE_PROMPT, "console")
                line = self.read_line()
                if line is None:
                    break
                line = line.strip()
                if line in ("q", "quit"):
                    break
                if line:
                    self.console_command(line)
            self.chan.send(t="bye")
        except ClientGone:
            pass

    def console_command(self, line: str) -> None:
        word, _, rest = line.partition(" ")
        rest = rest.strip()
        out = self.chan.out
        try:
            if word == "help":
                out("".join(f"  {name:<14} {text}\n" for name, text in CONSOLE_COMMANDS.items())
                    + "  anything else  a QEMU monitor command (e.g. info registers)\n"
                    + "The shell's commands: 'list_commands' inside it (docs/shell.md).\n")
            elif word == "sh":
                self.console_shell()
                self.serve_requests(linger=True)
            elif word == "list_modules":
                out(format_modules(script_api.manager()))
            elif word in ("import_module", "unload_module", "reload_module"):
                if not rest:
                    out(f"usage: {CONSOLE_COMMANDS[word]}\n")
                    return
                with capture_output(out):
                    module_command(word, rest)
            elif word in agent_commands.USAGE:
                out(agent_commands.run(os.path.dirname(self.server.path), word, rest))
            else:
                self.monitor(line)
        except (AgentError, OSError) as e:
            out(f"{word}: {e}\n")
        except Exception:
            out(f"error: {traceback.format_exc().rstrip()}\n")

    def monitor(self, line: str) -> None:
        try:
            result = self.server.qmp.hmp(line)
        except QmpError as e:
            self.chan.out(f"monitor: {e}\n")
            return
        if isinstance(result, str):
            if "unknown command" in result:
                word = line.split()[0]
                close = difflib.get_close_matches(word, list(CONSOLE_COMMANDS), n=3)
                if close:
                    result += f"(PyREBox console commands close to '{word}': {', '.join(close)})\n"
            self.chan.out(result.replace("\r\n", "\n"))

    def _monitor_words(self, help_line: str) -> list[str]:
        """The command names QEMU's monitor lists for `help_line` ("help":
        its commands, "info": info's subcommands), read once per session
        (QEMU does not change under it); none when the monitor cannot be
        asked."""
        cache = self._monitor_cache
        if help_line not in cache:
            try:
                listing = self.server.qmp.hmp(help_line)
            except QmpError:
                return []
            names = set()
            for line in (listing or "").splitlines():
                head = line.split(" ", 1)[0] if help_line == "help" else \
                    (line.split()[1] if len(line.split()) > 1 and line.startswith("info ") else "")
                names.update(n for n in head.split("|") if n and n[0].isalpha())
            cache[help_line] = sorted(names)
        return cache[help_line]

    def _complete_console(self, text: str) -> tuple[list[str], int]:
        """Console commands and QEMU monitor commands for the first word,
        info's subcommands after `info`, script module names after
        import_module, script handles after unload_module and reload_module."""
        scripts = script_api.manager()
        words = text.split(" ")
        if len(words) == 1:
            names = set(CONSOLE_COMMANDS) | set(self._monitor_words("help"))
            return sorted(c for c in names if c.startswith(words[0])), -len(words[0])
        if words[0] == "info" and len(words) == 2:
            return [c for c in self._monitor_words("info") if c.startswith(words[1])], \
                -len(words[1])
        if words[0] == "import_module" and len(words) == 2 and scripts is not None:
            return scripts.module_names(words[1]), -len(words[1])
        if words[0] in ("unload_module", "reload_module") and scripts is not None:
            last = words[-1]
            return [str(s.handle) for s in scripts.known()
                    if str(s.handle).startswith(last)], -len(last)
        return [], 0

    # --- shells ---

    _shell_prompt = "pyrebox-shell> "

    def console_shell(self) -> None:
        """`sh`: stop the VM, serve a shell on this thread, continue it."""
        from . import shell as shell_mod
        try:
            was_running = self.server.qmp.running()
            if was_running:
                # While waiting for `stop`, a callback may have opened a shell
                # (its vCPU then cannot pause): serve it first.
                self.server.qmp.call("stop", on_wait=self._serve_while_waiting)
        except QmpError as e:
            self.chan.out(f"cannot stop the VM ({e}); the shell is not opened\n")
            return
        try:
            shell = shell_mod.Shell(cpu_index=0, origin="console")
            self._run_shell(lambda fn, *a: fn(*a), shell)
        finally:
            if was_running:
                try:
                    self.server.qmp.execute("cont")
                except QmpError as e:
                    self.chan.out(f"cannot continue the VM: {e}\n")

    def _serve_while_waiting(self) -> None:
        if not self.server.requests.empty():
            self.serve_requests()

    def serve_requests(self, linger: bool = False) -> None:
        """Serves every shell scripts have requested, oldest first. After a
        shell is left (and with `linger`, before the first), the next
        request is awaited NEXT_SHELL_WAIT seconds: a breakpoint hit right
        after `c` then opens its shell without a console prompt between
        the two shells."""
        from . import shell as shell_mod
        wait = linger
        while True:
            try:
                request = (self.server.requests.get(timeout=NEXT_SHELL_WAIT) if wait
                           else self.server.requests.get_nowait())
            except queue.Empty:
                return
            wait = True
            request.taken.set()
            try:
                shell = request.call(shell_mod.Shell, request.cpu_index, "script",
                                     request.reason)
                self._run_shell(request.call, shell)
            finally:
                request.finish()

    def _run_shell(self, call, shell) -> None:
        """Relays the client to `shell`; `call(fn, *args)` runs fn where the
        shell lives (this thread, or the thread of the script that opened it)."""
        self._completer = lambda text: call(shell.complete, text)
        self._shell_prompt = shell.prompt
        self.chan.out(call(shell.banner))
        while True:
            self.prompt(shell.prompt, "shell")
            line = self.read_line(allow_requests=False)
            if line is None:
                break
            leave = call(run_captured, self.chan.out, shell.run_line, line)
            if leave:
                break
        self.chan.out(call(shell.farewell))
        self._completer = self._complete_console


def format_modules(scripts) -> str:
    if scripts is None or not scripts.known():
        return "no scripts loaded\n"
    lines = [f"{'handle':>6}  {'loaded':<6}  name"]
    for s in scripts.known():
        lines.append(f"{s.handle:>6}  {'yes' if s.is_loaded else 'no':<6}  {s.name}")
    return "\n".join(lines) + "\n"


def module_command(word: str, arg: str) -> None:
    if word == "import_module":
        script_api.import_module(arg)
        return
    try:
        handle = int(arg, 0)
    except ValueError:
        print(f"{word}: '{arg}' is not a script handle (a number; list_modules shows them)")
        return
    if word == "unload_module":
        script_api.unload_module(handle)
    else:
        script_api.reload_module(handle)


def run_captured(sink, fn, *args):
    """fn(*args) with this thread's output routed to `sink`."""
    with capture_output(sink):
        return fn(*args)


class capture_output:
    """Routes this thread's prints (sys.stdout/stderr and PyREBox console
    lines) to `sink` while active."""

    def __init__(self, sink):
        self.sink = sink

    def __enter__(self):
        output.capture_thread(threading.get_ident(), self.sink)
        return self

    def __exit__(self, *exc):
        output.release_thread(threading.get_ident())
        return False


_server: ConsoleServer | None = None


def server() -> ConsoleServer | None:
    return _server


def start(path: str, qmp_path: str) -> None:
    global _server
    _server = ConsoleServer(path, qmp_path)
    _server.start()
