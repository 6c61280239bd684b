"""The script behind `pyrebox trace`: an strace-format log of one program
and all its descendants.

Configured by the [TRACE] section the launcher writes (docs/trace.md):
`program` (the process name to follow: the first process that execs it,
then every process it forks and every exec of those), `output` (a host
file; empty: the console), `filter` (strace's -e: names and classes),
`json` (JSON lines instead of strace's text).

A line is written when a call completes, as strace writes it when it does
not interleave: at its return; at entry for exit and exit_group (which do
not return); execve's line, with `= 0`, when the thread's next call shows
that it did not return. The child's return of fork/clone has no line (as in
strace). Threads are followed with their process (same address space).
A call still in progress when the trace ends is written with
`<unfinished ...>`.
"""

from __future__ import annotations

import json

from . import callbacks as cb, machine, output, runtime, strace_format, syscall_args
from .trace_filter import Filter
from .syscall_values import GuestBytes, GuestString, Named, Struct, Unreadable, Vector

def to_json(value):
    """A decoded value as JSON: ints, strings, lists and objects."""
    if isinstance(value, Unreadable):
        return {"unreadable": value.address, "reason": value.reason}
    if isinstance(value, GuestString):
        return str(value)
    if isinstance(value, GuestBytes):
        return {"bytes": bytes(value).hex(), "address": value.address, "length": value.length}
    if isinstance(value, Named):
        return int(value)
    if isinstance(value, Struct):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, (Vector, list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return value


COMM_LEN = 15  # the kernel keeps the first 15 bytes of a process name


class Tracer:
    def __init__(self, program: str, write, filter_text: str = "", as_json: bool = False):
        self.program = program[:COMM_LEN]
        self.write = write
        self.filter = Filter(filter_text)
        self.as_json = as_json
        self.pids: set[int] = set()      # the processes followed (tgids)
        self.pgds: set[int] = set()      # their address spaces, monitored
        self.pending: dict[int, tuple] = {}  # tid -> the call it is in
        self.lines = 0

    # ------------------------------------------------------------ processes
    def follow(self, pid: int, pgd: int) -> None:
        self.pids.add(pid)
        if pgd and pgd not in self.pgds:
            self.pgds.add(pgd)
            machine.start_monitoring_process(pgd)

    def on_create(self, params) -> None:
        pid, pgd, name = params["pid"], params["pgd"], params["name"]
        if pid in self.pids:
            self.follow(pid, pgd)  # an exec of a followed process
        elif not self.pids:
            if name == self.program:
                self.follow(pid, pgd)
        else:
            parent = next((p["ppid"] for p in machine.get_process_list() if p["pid"] == pid), None)
            if parent in self.pids:
                self.follow(pid, pgd)

    def on_remove(self, params) -> None:
        pgd = params["pgd"]
        if pgd in self.pgds:
            self.pgds.discard(pgd)
            machine.stop_monitoring_process(pgd)

    # ------------------------------------------------------------ calls
    def on_enter(self, params) -> None:
        if params["pid"] not in self.pids:
            return
        tid = params["tid"]
        earlier = self.pending.pop(tid, None)
        if earlier is not None:
            # The thread's earlier call did not return: execve succeeded
            # (its result is 0; its strings are read from the new program
            # where they did not read at entry), anything else has none.
            pid, name, number, args = earlier
            if name in ("execve", "execveat") and args is not None:
                try:
                    args = syscall_args.after_exec(args, machine.get_process_arguments(pid))
                except Exception:  # noqa: BLE001 - the entry's values stay
                    pass
                self.emit(pid, tid, name, number, args, retval=0)
            else:
                self.emit(pid, tid, name, number, args, retval=None)
        name, args = params["name"], params["args"]
        if name in strace_format.NO_RETURN:
            self.emit(params["pid"], tid, name, params["number"], args.freeze(), retval=None)
        else:
            # execve's arguments are gone once it succeeds: read them now.
            self.pending[tid] = (params["pid"], name, params["number"],
                                 args.freeze() if name in ("execve", "execveat") else None)

    def on_return(self, params) -> None:
        if params["child"] or params["pid"] not in self.pids:
            return
        earlier = self.pending.pop(params["tid"], None)
        args = params["args"]
        if earlier is not None and earlier[3] is not None:
            args = earlier[3]
        self.emit(params["pid"], params["tid"], params["name"], params["number"], args,
                  retval=params["retval"])

    def emit(self, pid, tid, name, number, args, retval, unfinished: bool = False) -> None:
        """One line; strace's `[pid N]` is the thread's id (`tid`)."""
        if args is None or not self.filter.wants(name, args):
            return
        self.lines += 1
        if self.as_json:
            record = {"pid": pid, "tid": tid, "name": name, "number": number,
                      "args": {k: to_json(v) for k, v in args.items()},
                      "raw": list(args.raw), "retval": retval,
                      "error": None if retval is None else strace_format.error_name(retval),
                      "text": strace_format.line(name, number, args, retval)}
            if unfinished:
                record["unfinished"] = True
            self.write(json.dumps(record))
        elif unfinished:
            self.write(f"[pid {tid:5d}] {strace_format.call_text(name, number, args)} "
                       "<unfinished ...>")
        else:
            self.write(strace_format.line(name, number, args, retval, tid))

    def register(self, cm) -> None:
        """Adds the tracer's callbacks to the (new-style) manager `cm`."""
        with cm.batch():
            cm.add_callback(cb.CREATEPROC_CB, self.on_create, name="trace_create")
            cm.add_callback(cb.REMOVEPROC_CB, self.on_remove, name="trace_remove")
            cm.add_callback(cb.SYSCALL_CB, self.on_enter, name="trace_enter")
            cm.add_callback(cb.SYSCALL_RET_CB, self.on_return, name="trace_return")

    def finish(self) -> None:
        for tid, (pid, name, number, args) in self.pending.items():
            if args is not None:
                self.emit(pid, tid, name, number, args, None, unfinished=True)
        self.pending.clear()


cm = None
tracer: Tracer | None = None
_out = None


def initialize_callbacks(module_hdl, printer) -> None:
    global cm, tracer, _out
    section = (runtime.config.sections.get("TRACE", {}) if runtime.config else {})
    program = section.get("program", "").strip()
    if not program:
        raise ValueError("[TRACE] program is not set: name the process to trace")
    path = section.get("output", "").strip()
    if path:
        _out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed in clean()

        def write(text: str) -> None:
            _out.write(text + "\n")
    else:
        def write(text: str) -> None:
            output.write("", text)
    as_json = section.get("json", "false").strip().lower() == "true"
    tracer = Tracer(program, write, section.get("filter", ""), as_json)
    cm = cb.CallbackManager(module_hdl, new_style=True)
    tracer.register(cm)


def clean() -> None:
    global _out
    if tracer is not None:
        tracer.finish()
        for pgd in list(tracer.pgds):
            machine.stop_monitoring_process(pgd)
    if cm is not None:
        cm.clean()
    if _out is not None:
        _out.close()
        _out = None
