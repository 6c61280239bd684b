"""Printing on the PyREBox console.

Inside the plugin, text goes to the console the plugin was given (the
launcher shows it apart from the guest's serial console). Outside it (unit
tests, tools), it goes to stderr, so this module imports everywhere.
"""

from __future__ import annotations

import io
import sys
import threading

from . import native


# Threads whose output goes elsewhere (the shell's client): thread id ->
# function taking text.
_captured: dict[int, object] = {}


def capture_thread(thread_id: int, sink) -> None:
    _captured[thread_id] = sink


def release_thread(thread_id: int) -> None:
    _captured.pop(thread_id, None)


def _sink():
    return _captured.get(threading.get_ident()) if _captured else None


def write(prefix: str, text: str) -> None:
    """Writes `text`, each of its lines starting with `prefix`."""
    text = str(text)
    if text.endswith("\n"):
        text = text[:-1]
    sink = _sink()
    if sink is not None:
        sink("".join(prefix + line + "\n" for line in text.split("\n")))
        return
    if native.available():
        native.pyrebox.write(prefix, text)
    else:
        for line in text.split("\n"):
            sys.stderr.write(prefix + line + "\n")


def message(text: str) -> None:
    write("[pyrebox] ", text)


def warning(text: str) -> None:
    write("[pyrebox] warning: ", text)


def error(text: str) -> None:
    write("[pyrebox] error: ", text)


# PyREBox's `utils` printing functions.

def pp_print(text="") -> None:
    write("[pyrebox] ", text)


def pp_debug(text="") -> None:
    write("[pyrebox] debug: ", text)


def pp_warning(text="") -> None:
    write("[pyrebox] warning: ", text)


def pp_error(text="") -> None:
    write("[pyrebox] error: ", text)


def printer_for(module_name: str):
    """The `printer` a script gets: prints on the script's behalf."""
    prefix = f"[{module_name}] "

    def printer(text="") -> None:
        write(prefix, text)

    return printer


class ConsoleStream(io.TextIOBase):
    """A text stream for sys.stdout / sys.stderr inside QEMU: a script's
    print() reaches the PyREBox console, never the guest's serial console
    (which shares QEMU's stdout). Complete lines are written as they come."""

    def __init__(self, prefix: str):
        super().__init__()
        self._prefix = prefix
        self._pending = ""

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        sink = _sink()
        if sink is not None:
            sink(text)
            return len(text)
        self._pending += text
        if "\n" in self._pending:
            complete, self._pending = self._pending.rsplit("\n", 1)
            write(self._prefix, complete)
        return len(text)

    def flush(self) -> None:
        if self._pending:
            pending, self._pending = self._pending, ""
            write(self._prefix, pending)
