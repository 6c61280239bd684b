"""The guest's `strace -ff` and `pyrebox trace` of the same program,
compared line for line (tests/guest/test_trace.py, and the per-kernel
boots of tests/guest/kernels).

Differences the comparison allows, as docs/trace.md documents them:
- addresses (ASLR), thread ids (each run has its own) and times are
  compared as placeholders;
- strace's own execve of the program comes before the trace starts (the
  trace starts at the program's exec), and its `---`/`+++` signal and exit
  lines are not system calls;
- futex waits depend on thread timing, and getrandom's readiness on the
  entropy pool at that moment: compared in neither;
- calls outside strace_format.LIKE_STRACE (structures strace expands) are
  compared by name and result only.
"""

from __future__ import annotations

import re

from pyrebox.strace_format import LIKE_STRACE

# Prints the files of `strace -ff -o /tmp/st`, each after a marker line.
STRACE_FILES = "for f in /tmp/st.*; do echo \"TRACE-FILE ${f#/tmp/st.}\"; cat $f; done"
UNCOMPARED = ("futex", "getrandom")


def strace_threads(stdout: str) -> dict[int, list[str]]:
    """The guest strace's lines per thread id (from its -ff files)."""
    threads: dict[int, list[str]] = {}
    current = None
    for line in stdout.splitlines():
        if line.startswith("TRACE-FILE "):
            current = threads.setdefault(int(line.split()[1]), [])
        elif current is not None and re.match(r"^[a-z_0-9]+\(", line):
            current.append(line)
        elif line.startswith("PYREBOX-CMD-END"):
            current = None
    return threads


def trace_threads(text: str) -> dict[int, list[str]]:
    threads: dict[int, list[str]] = {}
    for line in text.splitlines():
        m = re.match(r"^\[pid +(\d+)\] (.*)$", line)
        assert m, line
        threads.setdefault(int(m.group(1)), []).append(m.group(2))
    return threads


def normalized(threads: dict[int, list[str]]) -> list[list[tuple[str, str, str]]]:
    """Per thread, in thread-id order: (name, arguments, result) with the
    run's own numbers replaced."""
    ids = sorted(threads)
    out = []
    for tid in ids:
        calls = []
        for line in threads[tid]:
            for i, other in enumerate(ids):
                # A number on its own (not part of an address like 127.0.0.1).
                line = re.sub(rf"(?<![\w.]){other}(?![\w.])", f"T{i}", line)
            line = re.sub(r"0x[0-9a-f]{5,}", "ADDR", line)
            line = re.sub(r"tv_(sec|nsec)=\d+", r"tv_\1=N", line)
            m = re.match(r"^([a-z_0-9]+)\((.*)\)\s+= (.*)$", line)
            assert m, line
            if m.group(1) not in UNCOMPARED:
                calls.append((m.group(1), m.group(2), m.group(3)))
        out.append(calls)
    return out


def assert_same_calls(strace_stdout: str, trace_text: str, threads: int = 3) -> None:
    """strace's threads (from STRACE_FILES' output) and the trace's agree:
    the same number of threads, and per thread the same calls in order."""
    theirs = normalized(strace_threads(strace_stdout))
    ours = normalized(trace_threads(trace_text))
    assert len(theirs) == len(ours) == threads
    # strace's first line is its own execve of the program.
    assert theirs[0][0][0] == "execve"
    theirs[0] = theirs[0][1:]
    for thread, (expected, got) in enumerate(zip(theirs, ours)):
        assert len(got) == len(expected), (thread, expected, got)
        for (name, args, result), (our_name, our_args, our_result) in zip(expected, got):
            assert (our_name, our_result) == (name, result), (thread, name, args)
            if name in LIKE_STRACE:
                assert our_args == args, (thread, name, our_args, args)
