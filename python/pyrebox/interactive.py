"""Opening the PyREBox shell from a script: `ipython_shell.start_shell()`.

The shell runs on the thread of the script that asks for it (usually a vCPU
thread inside a callback): a ShellRequest is handed to the console server,
whose session thread relays the client and hands the shell's work back to
that thread. The console server registers itself here when it starts
(`set_server`); without one there is nobody to talk to and the shell is not
opened.
"""

from __future__ import annotations

import queue
import threading

from . import machine, output
from .native import pyrebox as _pyrebox

WAITING_SHELL_MARKER = "PyREBox shell is waiting for you"

_server = None  # the console server (pyrebox.console.ConsoleServer), once started
_serving = threading.local()  # .active: this thread is running a shell line


def set_server(server) -> None:
    """Registers the console server that serves requested shells (None: none)."""
    global _server
    _server = server


def in_shell() -> bool:
    """True on a thread that is running a line of a PyREBox shell."""
    return getattr(_serving, "active", False)


def set_in_shell(active: bool) -> None:
    _serving.active = active


class ShellRequest:
    """A shell opened by a script on its own thread (usually a vCPU thread
    inside a callback): that thread runs `serve()`, executing what the
    session thread hands it, until the shell is left."""

    def __init__(self, cpu_index: int, reason: str | None = None):
        self.cpu_index = cpu_index
        self.reason = reason
        self.work: queue.Queue = queue.Queue()
        self.taken = threading.Event()

    def call(self, fn, *args):
        """From the session thread: runs fn(*args) on the requesting thread."""
        box: queue.Queue = queue.Queue()
        self.work.put((fn, args, box))
        ok, value = box.get()
        if not ok:
            raise value
        return value

    def finish(self) -> None:
        self.work.put(None)

    def serve(self) -> None:
        while True:
            item = self.work.get()
            if item is None:
                return
            fn, args, box = item
            try:
                box.put((True, fn(*args)))
            except BaseException as e:  # noqa: BLE001 - handed back to the caller
                box.put((False, e))


def start_shell(cpu_index: int = 0, reason: str | None = None) -> None:
    """Opens the shell on vCPU `cpu_index`; `reason`, if given, is shown in
    its banner (e.g. which breakpoint was hit)."""
    server = _server
    if server is None:
        output.error("start_shell: this QEMU has no PyREBox console (the plugin argument "
                     "console=PATH, which pyrebox run passes); the shell is not opened")
        return
    if in_shell():
        print("start_shell: already in the PyREBox shell")
        return
    num = _pyrebox.num_cpus()
    if not isinstance(cpu_index, int) or not 0 <= cpu_index < num:
        raise ValueError(f"start_shell: no vCPU {cpu_index!r} (this VM has {num})")
    request = ShellRequest(cpu_index, reason)
    in_callback = _pyrebox.callback_vcpu() >= 0
    frozen = num > 1 and in_callback and _pyrebox.freeze_other_vcpus()
    # The guest's clock stops too, so the time spent in the shell does not
    # reach the guest as a jump (timers firing at once, stall warnings); a
    # script's guest_clock_stopped() blocks inside nest in it.
    clock = machine.guest_clock_stopped()
    clock.__enter__()
    try:
        server.request_shell(request)
        if not request.taken.wait(0.3):
            where = server.path.rsplit("/", 1)[0] if "/" in server.path else server.path
            # (The thread's name says nothing: a vCPU thread is Python's "Dummy-N".)
            opened = f"{reason}: the shell opened" if reason else "a script opened the shell"
            context = " (inside a callback)" if in_callback else ""
            output.message(
                f"{WAITING_SHELL_MARKER}: {opened} on vCPU {cpu_index}{context}; the VM is "
                f"frozen until you attach: pyrebox attach {where} (or Ctrl-] in the pyrebox "
                f"run terminal)")
        request.serve()
    finally:
        clock.__exit__(None, None, None)
        if frozen:
            _pyrebox.thaw_other_vcpus()
