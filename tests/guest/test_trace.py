"""`pyrebox trace` against the guest's own strace: the same program
(syscall_seq, our known sequence) once under `strace -ff` in the guest and
once under `pyrebox trace` (text and --json), in parallel boots; the
sequence of (thread, call, arguments, result) agrees line for line.

The comparison and what it allows: tests/strace_compare.py."""

from __future__ import annotations

import concurrent.futures
import json
import re

import pytest

from conftest import run_pyrebox
from strace_compare import STRACE_FILES, assert_same_calls

THREAD_GETPIDS = 5
PROGRAM = f"syscall_seq {THREAD_GETPIDS} > /tmp/seq.out; cat /tmp/seq.out"
STRACE = f"strace -ff -o /tmp/st {PROGRAM}; {STRACE_FILES}"


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
            "trace_stdout": results["trace"].stdout,
            "json": [json.loads(l) for l in lines.read_text().splitlines()],
            "json_stdout": results["json"].stdout}


def test_the_trace_agrees_with_the_guests_strace_line_for_line(runs):
    assert_same_calls(runs["strace"], runs["trace"])


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
    assert any(l.startswith('execve("/usr/local/bin/syscall32", ["syscall32", "2"], ') and
               l.endswith("= 0") for l in body)
    # The thread's, main's own and the int 0x80 one.
    main_pid = int(re.search(r"^pid=(\d+)", runs["trace_stdout"], re.M).group(1))
    child = int(re.search(r"^child=(\d+)", runs["trace_stdout"], re.M).group(1))
    mine = [l.split("] ", 1)[1] for l in lines if l.startswith(f"[pid {main_pid:5}] ")]
    assert sum(l.startswith("getpid()") for l in mine) == 2
    assert sum(l.startswith("getpid()") for l in body) == THREAD_GETPIDS + 2 + 4


def test_the_32_bit_childs_calls_are_named_and_decoded_from_the_compat_table(runs):
    """syscall32, exec'ed by the fork child: int 0x80, the vDSO's fast call
    (syscall on this AMD-vendor CPU) and that instruction outside the vDSO,
    each named from the kernel's 32-bit table and paired with its return."""
    main_pid = int(re.search(r"^pid=(\d+)", runs["trace_stdout"], re.M).group(1))
    child = int(re.search(r"^child=(\d+)", runs["trace_stdout"], re.M).group(1))
    calls = [l.split("] ", 1)[1] for l in runs["trace"].splitlines()
             if l.startswith(f"[pid {child:5}] ")]
    calls = calls[calls.index(next(c for c in calls if c.startswith("execve("))) + 1:]
    result = r"\s+= "
    expected = [
        rf"getpid\(\){result}{child}",
        rf'write\(1, "i386_int80_pid={child}\\n", \d+\){result}\d+',
        rf"getpid\(\){result}{child}",
        rf'write\(1, "i386_vdso_pid={child}\\n", \d+\){result}\d+',
        r'open\("/nonexistent/syscall32", O_RDONLY\)' + result +
        r"-1 ENOENT \(No such file or directory\)",
        r'write\(1, "i386_open=-2\\n", 13\)' + result + "13",
        r'write\(1, "i386_fast=syscall\\n", 18\)' + result + "18",
        rf"getppid\(\){result}{main_pid}",
        rf'write\(1, "i386_raw_ppid={main_pid}\\n", \d+\){result}\d+',
        rf"getpid\(\){result}{child}",
        rf"getpid\(\){result}{child}",
        r'write\(1, "i386_getpids=2\\n", 15\)' + result + "15",
        r"exit_group\(0\)" + result + r"\?",
    ]
    assert len(calls) == len(expected), calls
    for call, pattern in zip(calls, expected):
        assert re.fullmatch(pattern, call), (call, pattern)


def test_json_lines_carry_pids_decoded_arguments_and_errors_for_the_filtered_classes(runs):
    records = runs["json"]
    names = {r["name"] for r in records}
    assert names <= {"openat", "open", "readlink", "newfstatat", "execve", "socket", "sendto"}
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
    assert [r["args"]["argv"] for r in records if r["name"] == "execve"] == [["syscall32", "2"]]
    [opened] = [r for r in records if r["name"] == "open"]  # the 32-bit child's
    assert (opened["pid"], opened["args"]["filename"], opened["error"]) == (
        child, "/nonexistent/syscall32", "ENOENT")
    assert {r["pid"] for r in records if r["name"] in ("socket", "sendto")} == {main_pid}
    assert all(r["text"].startswith(r["name"] + "(") for r in records)
