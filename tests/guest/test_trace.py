"""`pyrebox trace` against the guest's own strace: the same program
(syscall_seq, our known sequence) once under `strace -ff` in the guest and
once under `pyrebox trace` (text and --json), in parallel boots; the
sequence of (thread, call, arguments, result) agrees line for line.

Differences the comparison allows, as docs/trace.md documents them:
- addresses (ASLR), thread ids (each run has its own) and times are
  compared as placeholders;
- strace's own execve of the program comes before the trace starts (the
  trace starts at the program's exec), and its `---`/`+++` signal and exit
  lines are not system calls;
- futex waits depend on thread timing, and getrandom's readiness on the
  entropy pool at that moment: compared in neither;
- calls outside strace_format.LIKE_STRACE (structures strace expands) are
  compared by name and result only. The int 0x80 getpid is named from the
  kernel's 32-bit dispatch switch, as strace names it from its own table.
"""

from __future__ import annotations

import concurrent.futures
import json
import re

import pytest

from conftest import run_pyrebox

THREAD_GETPIDS = 5
PROGRAM = f"syscall_seq {THREAD_GETPIDS} > /tmp/seq.out; cat /tmp/seq.out"
STRACE = (f"strace -ff -o /tmp/st {PROGRAM}; "
          "for f in /tmp/st.*; do echo \"TRACE-FILE ${f#/tmp/st.}\"; cat $f; done")
UNCOMPARED = ("futex", "getrandom")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    work = tmp_path_factory.mktemp("trace")
    text, lines = work / "trace.txt", work / "trace.jsonl"
    jobs = {
        "strace": ("run", "--timeout", "300", "--cmd", STRACE),
        "trace": ("trace", "--timeout", "300", "-o", str(text), "--cmd", PROGRAM),
        "json": ("trace", "--timeout", "300", "--json", "-o", str(lines), "-e", "%file,%network",
                 "--cmd", PROGRAM),
    }
    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        futures = {name: pool.submit(run_pyrebox, *args, cwd=str(work), timeout=400)
                   for name, args in jobs.items()}
        results = {name: f.result() for name, f in futures.items()}
    for name, result in results.items():
        assert result.returncode == 0, (name, result.stdout[-3000:], result.stderr[-3000:])
    return {"strace": results["strace"].stdout, "trace": text.read_text(),
            "json": [json.loads(l) for l in lines.read_text().splitlines()],
            "json_stdout": results["json"].stdout}


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
                line = re.sub(rf"\b{other}\b", f"T{i}", line)
            line = re.sub(r"0x[0-9a-f]{5,}", "ADDR", line)
            line = re.sub(r"tv_(sec|nsec)=\d+", r"tv_\1=N", line)
            m = re.match(r"^([a-z_0-9]+)\((.*)\)\s+= (.*)$", line)
            assert m, line
            if m.group(1) not in UNCOMPARED:
                calls.append((m.group(1), m.group(2), m.group(3)))
        out.append(calls)
    return out


def test_the_trace_agrees_with_the_guests_strace_line_for_line(runs):
    from pyrebox.strace_format import LIKE_STRACE

    theirs = normalized(strace_threads(runs["strace"]))
    ours = normalized(trace_threads(runs["trace"]))
    assert len(theirs) == len(ours) == 3  # main, its thread, the forked child
    # strace's first line is its own execve of the program.
    assert theirs[0][0][0] == "execve" and "syscall_seq" in theirs[0][0][1]
    theirs[0] = theirs[0][1:]
    for thread, (expected, got) in enumerate(zip(theirs, ours)):
        assert len(got) == len(expected), (thread, expected, got)
        for (name, args, result), (our_name, our_args, our_result) in zip(expected, got):
            assert (our_name, our_result) == (name, result), (thread, name, args)
            if name in LIKE_STRACE:
                assert our_args == args, (thread, name)


def test_the_known_calls_are_decoded(runs):
    lines = runs["trace"].splitlines()
    body = [l.split("] ", 1)[1] for l in lines]
    assert any(l.startswith('openat(AT_FDCWD, "/tmp/syscall_seq.txt", '
                            'O_WRONLY|O_CREAT|O_TRUNC, 0644)') and l.endswith("= 3") for l in body)
    assert any(l.startswith('write(3, "abcdefghijklmnopqrstuvwxyz", 26)') and l.endswith("= 26")
               for l in body)
    assert any(l.startswith('read(3, "abcdefghijklmnopqrstuvwxyz", 64)') and l.endswith("= 26")
               for l in body)
    assert any(l.startswith('openat(AT_FDCWD, "/nonexistent/syscall_seq", O_RDONLY)') and
               l.endswith("= -1 ENOENT (No such file or directory)") for l in body)
    assert any(l.startswith('sendto(3, "hello", 5, 0, {sa_family=AF_INET, sin_port=htons(9999), '
                            'sin_addr=inet_addr("127.0.0.1")}, 16)') for l in body)
    assert any(l.startswith('execve("/bin/true", ["true"], ') and l.endswith("= 0") for l in body)
    # The thread's, main's own and the int 0x80 one.
    assert sum(l.startswith("getpid()") for l in body) == THREAD_GETPIDS + 2


def test_json_lines_carry_pids_decoded_arguments_and_errors_for_the_filtered_classes(runs):
    records = runs["json"]
    names = {r["name"] for r in records}
    assert names <= {"openat", "readlink", "newfstatat", "execve", "socket", "sendto"}
    assert {"openat", "socket", "sendto", "execve"} <= names
    failed = [r for r in records if r["name"] == "openat" and r["retval"] == -2]
    assert len(failed) == 1 and failed[0]["error"] == "ENOENT"
    assert failed[0]["args"]["filename"] == "/nonexistent/syscall_seq"
    [send] = [r for r in records if r["name"] == "sendto"]
    assert send["args"]["addr"] == {"family": "AF_INET", "port": 9999, "address": "127.0.0.1"}
    assert bytes.fromhex(send["args"]["buff"]["bytes"]) == b"hello"
    main_pid = int(re.search(r"^pid=(\d+)", runs["json_stdout"], re.M).group(1))
    child = int(re.search(r"^child=(\d+)", runs["json_stdout"], re.M).group(1))
    assert {r["pid"] for r in records} == {main_pid, child}
    assert [r["args"]["argv"] for r in records if r["name"] == "execve"] == [["true"]]
    assert {r["pid"] for r in records if r["name"] in ("socket", "sendto")} == {main_pid}
    assert all(r["text"].startswith(r["name"] + "(") for r in records)
