"""SYSCALL_CB and SYSCALL_RET_CB in the default guest: one boot with the
monitored test programs (workload's getppid loop, fork_exec's children,
syscall_seq's known sequence with a thread and an int 0x80 call), every
entry paired with its return in the thread it came from."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "syscall_probe.py")
ROUNDS = 1000
CHILDREN = 2
# x86-64 system-call numbers are the ABI's (the names come from the kernel).
CLONE, EXECVE, EXIT_GROUP, GETPPID = 56, 59, 231, 110
READ, WRITE, CLOSE, MMAP, MPROTECT, MUNMAP, GETPID, SOCKET, SENDTO, WAIT4, EXIT = (
    0, 1, 3, 9, 10, 11, 39, 41, 44, 61, 60)
OPENAT, CLONE3 = 257, 435
GETPID_32 = 20  # int 0x80: the i386 numbering
# syscall32's calls, i386 numbers.
WRITE_32, OPEN_32, GETPPID_32, EXIT_GROUP_32 = 4, 5, 64, 252
INT80, SYSCALL32 = 2, 4  # entry paths (the default CPU is AMD's: its vDSO uses syscall)
THREAD_GETPIDS = 100


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("syscalls")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "syscall_probe.py")
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.syscall_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"echo sh=$$; workload {ROUNDS}; true",
                         "--cmd", f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10",
                         "--cmd", f"syscall_seq {THREAD_GETPIDS}",
                         "--cmd", "sigrestart",
                         cwd=str(work))
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.syscall_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-3000:] + result.stderr
    return {"report": json.loads(lines[0].split("RESULT ", 1)[1]),
            "outputs": command_outputs(result.stdout)}


def test_every_getppid_of_the_loop_enters_and_returns_the_shells_pid(run):
    report = run["report"]
    assert report["errors"] == []
    shell = int(key_values(run["outputs"][1][0])["sh"])
    assert report["enter"][str(GETPPID)] == ROUNDS
    assert report["getppid"] == [shell] * ROUNDS
    assert report["old_style"] == ROUNDS


def test_entries_and_returns_pair_up(run):
    enter, ret = run["report"]["enter"], run["report"]["ret"]
    for number, entered in enter.items():
        if int(number) in (CLONE, EXECVE, EXIT_GROUP):
            continue
        assert ret.get(number, 0) == entered, (number, entered, ret.get(number))
    assert set(ret) <= set(enter)
    # A successful execve and exit_group never return; fork returns twice.
    assert EXECVE not in map(int, ret) and EXIT_GROUP not in map(int, ret)
    assert enter[str(CLONE)] == CHILDREN
    assert ret[str(CLONE)] == 2 * CHILDREN


def test_the_childrens_returns_are_told_and_return_zero(run):
    printed = run["outputs"][2][0]
    children = [int(v.split("=", 1)[1].split()[0]) for v in printed if v.startswith("child=")]
    assert len(children) == CHILDREN
    got = run["report"]["children"]
    assert [(c["number"], c["retval"]) for c in got] == [(CLONE, 0)] * CHILDREN
    assert len({c["pgd"] for c in got}) == CHILDREN


def test_names_come_from_the_kernels_table(run):
    names = run["report"]["names"]
    assert names["count"] > 300
    assert (names["0"], names["1"], names["59"], names["110"], names["231"]) == (
        "read", "write", "execve", "getppid", "exit_group")


def seq_calls(run, number, path=1):
    """(entry raw arguments, return value) of syscall_seq's calls of
    `number`, paired in order (one thread's calls of a number do not
    overlap here)."""
    events = [e for e in run["report"]["seq"] if e[2] == number and e[3] == path]
    entries = [e[4] for e in events if e[0] == "E"]
    returns = [e[5] for e in events if e[0] == "R" and not e[6]]
    return list(zip(entries, returns)), len(entries), len(returns)


def test_the_known_sequence_with_arguments_and_results(run):
    printed = key_values(run["outputs"][3][0])
    pid = int(printed["pid"])
    opens, _, _ = seq_calls(run, OPENAT)
    AT_FDCWD = 0xffffff9c  # -100 in the 32-bit int argument
    assert [(raw[0] & 0xffffffff, raw[2], ret) for raw, ret in opens] == [
        (AT_FDCWD, 0o1101, 3), (AT_FDCWD, 0, 3), (AT_FDCWD, 0, -2)]  # O_WRONLY|O_CREAT|O_TRUNC
    assert opens[0][0][3] == 0o644
    writes = [(raw[0], raw[2], ret) for raw, ret in seq_calls(run, WRITE)[0] if raw[0] == 3]
    assert writes == [(3, 26, 26)]
    reads = [(raw[0], raw[2], ret) for raw, ret in seq_calls(run, READ)[0] if raw[0] == 3]
    assert reads == [(3, 64, 26)]
    [(mmap_raw, mapped)] = [c for c in seq_calls(run, MMAP)[0] if c[0][1] == 8192]
    assert mmap_raw[2] == 3 and mapped > 0  # PROT_READ|PROT_WRITE
    assert [(raw[0], raw[1], raw[2], ret) for raw, ret in seq_calls(run, MPROTECT)[0]
            if raw[0] == mapped] == [(mapped, 8192, 1, 0)]
    assert [(raw[0], ret) for raw, ret in seq_calls(run, MUNMAP)[0]] == [(mapped, 0)]
    [(socket_raw, sock)] = seq_calls(run, SOCKET)[0]
    assert socket_raw[:2] == [2, 2]  # AF_INET, SOCK_DGRAM
    assert [(raw[0], raw[2], ret) for raw, ret in seq_calls(run, SENDTO)[0]] == [(sock, 5, 5)]
    int80, entered, returned = seq_calls(run, GETPID_32, path=2)
    assert entered == returned == 1 and int80[0][1] == pid == int(printed["int80_pid"])


def test_a_threads_calls_pair_and_its_start_is_clone3s_second_return(run):
    calls, entered, returned = seq_calls(run, GETPID)
    assert entered == returned == THREAD_GETPIDS + 1  # the thread's and main's own
    pid = int(key_values(run["outputs"][3][0])["pid"])
    assert {ret for _, ret in calls} == {pid}
    clone3 = [e for e in run["report"]["seq"] if e[2] == CLONE3]
    assert [(e[0], e[6]) for e in clone3 if e[0] == "E"] == [("E", 0)]
    returns = sorted((e[6], e[5]) for e in clone3 if e[0] == "R")
    assert returns[0][0] == 0 and returns[0][1] > pid     # the parent gets the thread's id
    assert returns[1] == (1, 0)                            # the thread starts with 0
    exits = [e for e in run["report"]["seq"] if e[2] == EXIT]
    assert [e[0] for e in exits] == ["E"]                  # the thread's exit never returns


def test_fork_wait4_and_execve_in_the_child(run):
    printed = key_values(run["outputs"][3][0])
    child = int(printed["child"])
    seq = run["report"]["seq"]
    forks = [e for e in seq if e[2] == CLONE]
    assert sorted((e[0], e[6], e[5]) for e in forks) == [
        ("E", 0, None), ("R", 0, child), ("R", 1, 0)]
    assert [e[5] for e in seq if e[2] == WAIT4 and e[0] == "R"] == [child]
    execs = [e for e in seq if e[2] == EXECVE]
    assert [e[0] for e in execs] == ["E"]  # the child's execve succeeded: no return
    assert printed["status"] == "0"


def test_events_carry_the_kernels_name_of_the_call(run):
    names = {(e[2], e[3]): e[7] for e in run["report"]["seq"]}
    assert names[(OPENAT, 1)] == "openat" and names[(READ, 1)] == "read"
    assert names[(CLONE3, 1)] == "clone3" and names[(WAIT4, 1)] == "wait4"
    # The 32-bit numbering: this kernel keeps no ia32_sys_call_table (its
    # 32-bit calls go through a switch), read from the switch's code.
    assert names[(GETPID_32, 2)] == "getpid"


def test_events_carry_the_calling_thread_and_decoded_arguments(run):
    printed = key_values(run["outputs"][3][0])
    pid, child = int(printed["pid"]), int(printed["child"])
    seq = run["report"]["seq"]
    clone3 = [e for e in seq if e[2] == CLONE3 and e[0] == "R" and not e[6]]
    thread = clone3[0][5]
    getpids = [(e[8], e[9]) for e in seq if e[2] == GETPID and e[0] == "E"]
    assert getpids.count((pid, thread)) == THREAD_GETPIDS and getpids.count((pid, pid)) == 1
    # The fork child's calls are its own; every other call is the main thread's.
    assert {(e[8], e[9]) for e in seq if e[8] == child} == {(child, child)}
    assert {e[8] for e in seq} == {pid, child}
    # The child's own return of fork is in the child.
    assert [(e[8], e[9]) for e in seq if e[2] == CLONE and e[0] == "R" and e[6]] == [(child, child)]
    # Arguments by the kernel's names, printed as strace does; the read's
    # buffer on return holds the 26 bytes written; errors are named.
    assert run["report"]["open_args"][0] == {
        "dfd": "AT_FDCWD", "filename": '"/tmp/syscall_seq.txt"',
        "flags": "O_WRONLY|O_CREAT|O_TRUNC", "mode": "0644"}
    assert run["report"]["read_buf"] == "abcdefghijklmnopqrstuvwxyz"
    opens = [e for e in seq if e[2] == OPENAT and e[0] == "R"]
    assert [e[10] for e in opens] == [None, None, "ENOENT"]


def test_a_32_bit_programs_calls_through_every_entry_path(run):
    """syscall32 (exec'ed by syscall_seq's fork child): getpid and
    exit_group through int 0x80; through the vDSO's syscall (from 32-bit
    code: the compat entry) getpid, open, and its writes; and getppid
    through that instruction outside the vDSO, which returns at the vDSO's
    landing pad. Numbers, registers and names are i386's."""
    printed = key_values(run["outputs"][3][0])
    parent, child = int(printed["pid"]), int(printed["child"])
    events = run["report"]["i386"]
    assert {e[7] for e in events} == {child}
    entries = [(e[1], e[2], e[3]) for e in events if e[0] == "E"]
    writes = [(SYSCALL32, WRITE_32, "write")]
    assert entries == [
        (INT80, GETPID_32, "getpid"), *writes,
        (SYSCALL32, GETPID_32, "getpid"), *writes,
        (SYSCALL32, OPEN_32, "open"), *writes, *writes,
        (SYSCALL32, GETPPID_32, "getppid"), *writes,
        (SYSCALL32, GETPID_32, "getpid"), (SYSCALL32, GETPID_32, "getpid"), *writes,
        (INT80, EXIT_GROUP_32, "exit_group")]
    returns = [(e[1], e[2], e[5], e[6]) for e in events if e[0] == "R"]
    lines = ["i386_int80_pid=%d\n" % child, "i386_vdso_pid=%d\n" % child, "i386_open=-2\n",
             "i386_fast=syscall\n", "i386_raw_ppid=%d\n" % parent, "i386_getpids=2\n"]
    w = [(SYSCALL32, WRITE_32, len(line), None) for line in lines]
    assert returns == [
        (INT80, GETPID_32, child, None), w[0],
        (SYSCALL32, GETPID_32, child, None), w[1],
        (SYSCALL32, OPEN_32, -2, "ENOENT"), w[2], w[3],
        (SYSCALL32, GETPPID_32, parent, None), w[4],
        (SYSCALL32, GETPID_32, child, None), (SYSCALL32, GETPID_32, child, None), w[5]]
    # ECX reaches the kernel in EBP on this path: the write's buffer and the
    # open's flags are the second argument.
    assert [e[9] for e in events if e[0] == "E" and e[2] == WRITE_32] == lines
    [opened] = [e for e in events if e[0] == "E" and e[2] == OPEN_32]
    assert (opened[8]["filename"], opened[8]["flags"]) == ('"/nonexistent/syscall32"', "O_RDONLY")


def test_a_call_interrupted_by_a_signal_returns_once_restarted_or_with_eintr(run):
    """sigrestart blocks in read(3) while its child sends SIGUSR1; the
    handler writes to fd 6 and returns through rt_sigreturn (which never
    returns). With SA_RESTART the kernel enters the read again, at the same
    place: the first entry has no return, the second returns the byte; without
    it the read returns -EINTR after the handler."""
    printed = key_values(run["outputs"][4][0])
    pid = int(printed["pid"])
    assert (printed["restarted_read"], printed["interrupted_read"], printed["handled"]) == (
        "1", "-4", "2")
    RT_SIGRETURN = 15
    calls = [tuple(e) for e in run["report"]["signals"] if e[1] == pid and (
        (e[2] in (READ, WRITE) and e[3] in (3, 6)) or e[2] == RT_SIGRETURN)]
    handler = [("E", pid, WRITE, 6, None, None), ("R", pid, WRITE, 6, 1, None),
               ("E", pid, RT_SIGRETURN, 0, None, None)]
    calls = [c if c[2] != RT_SIGRETURN else c[:3] + (0,) + c[4:] for c in calls]
    assert calls == [
        ("E", pid, READ, 3, None, None), *handler,
        ("E", pid, READ, 3, None, None), ("R", pid, READ, 3, 1, None),
        ("E", pid, READ, 3, None, None), *handler,
        ("R", pid, READ, 3, -4, "EINTR")]
