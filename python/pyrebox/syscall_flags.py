"""Symbolic names of system-call constants: flag sets and enumerations of
the x86-64 Linux ABI (the values are the ABI's, fixed for user space; the
spellings are the ones strace prints).

A flag set is (names by bit, the name of 0 or None); an enumeration maps a
value to its name. `flag_text` and `enum_text` spell a value; bits or
values with no name are printed in hex, so nothing is hidden.
"""

from __future__ import annotations

import signal as _signal

FlagSet = tuple[tuple[tuple[int, str], ...], "str | None"]

O_ACCMODE = 3
OPEN_ACCESS = {0: "O_RDONLY", 1: "O_WRONLY", 2: "O_RDWR"}
OPEN_FLAGS: FlagSet = ((
    (0o100, "O_CREAT"), (0o200, "O_EXCL"), (0o400, "O_NOCTTY"), (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"), (0o4000, "O_NONBLOCK"), (0o4010000, "O_SYNC"), (0o10000, "O_DSYNC"),
    (0o20000, "O_ASYNC"), (0o40000, "O_DIRECT"), (0o20200000, "O_TMPFILE"), (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"), (0o1000000, "O_NOATIME"), (0o2000000, "O_CLOEXEC"),
    (0o10000000, "O_PATH"), (0o100000, "O_LARGEFILE")), None)

PROT: FlagSet = (((1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC"),
                  (0x1000000, "PROT_GROWSDOWN"), (0x2000000, "PROT_GROWSUP")), "PROT_NONE")

MAP_TYPES = {1: "MAP_SHARED", 2: "MAP_PRIVATE", 3: "MAP_SHARED_VALIDATE"}
MAP: FlagSet = ((
    (0x10, "MAP_FIXED"), (0x20, "MAP_ANONYMOUS"), (0x40, "MAP_32BIT"), (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"), (0x1000, "MAP_EXECUTABLE"), (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"), (0x8000, "MAP_POPULATE"), (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"), (0x40000, "MAP_HUGETLB"), (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE")), None)

CLONE: FlagSet = ((
    (0x100, "CLONE_VM"), (0x200, "CLONE_FS"), (0x400, "CLONE_FILES"), (0x800, "CLONE_SIGHAND"),
    (0x1000, "CLONE_PIDFD"), (0x2000, "CLONE_PTRACE"), (0x4000, "CLONE_VFORK"),
    (0x8000, "CLONE_PARENT"), (0x10000, "CLONE_THREAD"), (0x20000, "CLONE_NEWNS"),
    (0x40000, "CLONE_SYSVSEM"), (0x80000, "CLONE_SETTLS"), (0x100000, "CLONE_PARENT_SETTID"),
    (0x200000, "CLONE_CHILD_CLEARTID"), (0x400000, "CLONE_DETACHED"),
    (0x800000, "CLONE_UNTRACED"), (0x1000000, "CLONE_CHILD_SETTID"),
    (0x2000000, "CLONE_NEWCGROUP"), (0x4000000, "CLONE_NEWUTS"), (0x8000000, "CLONE_NEWIPC"),
    (0x10000000, "CLONE_NEWUSER"), (0x20000000, "CLONE_NEWPID"), (0x40000000, "CLONE_NEWNET"),
    (0x80000000, "CLONE_IO")), None)

AT_FDCWD = -100
AT_FLAGS: FlagSet = (((0x100, "AT_SYMLINK_NOFOLLOW"), (0x200, "AT_REMOVEDIR"),
                      (0x400, "AT_SYMLINK_FOLLOW"), (0x800, "AT_NO_AUTOMOUNT"),
                      (0x1000, "AT_EMPTY_PATH")), "0")

SOCK_TYPES = {1: "SOCK_STREAM", 2: "SOCK_DGRAM", 3: "SOCK_RAW", 4: "SOCK_RDM",
              5: "SOCK_SEQPACKET", 6: "SOCK_DCCP", 10: "SOCK_PACKET"}
SOCK_FLAGS: FlagSet = (((0o4000, "SOCK_NONBLOCK"), (0o2000000, "SOCK_CLOEXEC")), None)
FAMILIES = {0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK",
            17: "AF_PACKET"}
IPPROTO = {0: "IPPROTO_IP", 1: "IPPROTO_ICMP", 6: "IPPROTO_TCP", 17: "IPPROTO_UDP",
           58: "IPPROTO_ICMPV6", 255: "IPPROTO_RAW"}
MSG: FlagSet = (((1, "MSG_OOB"), (2, "MSG_PEEK"), (4, "MSG_DONTROUTE"), (0x40, "MSG_DONTWAIT"),
                 (0x100, "MSG_WAITALL"), (0x4000, "MSG_NOSIGNAL"), (0x8000, "MSG_MORE")), "0")

WAIT: FlagSet = (((1, "WNOHANG"), (2, "WUNTRACED"), (8, "WCONTINUED"), (0x40000000, "__WNOTHREAD"),
                  (0x80000000, "__WCLONE")), "0")

GRND: FlagSet = (((1, "GRND_NONBLOCK"), (2, "GRND_RANDOM"), (4, "GRND_INSECURE")), "0")

ARCH_PRCTL = {0x1001: "ARCH_SET_GS", 0x1002: "ARCH_SET_FS", 0x1003: "ARCH_GET_FS",
              0x1004: "ARCH_GET_GS", 0x1011: "ARCH_GET_CPUID", 0x1012: "ARCH_SET_CPUID"}
SIGPROCMASK_HOW = {0: "SIG_BLOCK", 1: "SIG_UNBLOCK", 2: "SIG_SETMASK"}
RLIMITS = {0: "RLIMIT_CPU", 1: "RLIMIT_FSIZE", 2: "RLIMIT_DATA", 3: "RLIMIT_STACK",
           4: "RLIMIT_CORE", 5: "RLIMIT_RSS", 6: "RLIMIT_NPROC", 7: "RLIMIT_NOFILE",
           8: "RLIMIT_MEMLOCK", 9: "RLIMIT_AS"}
MADVISE = {0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
           4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 12: "MADV_MERGEABLE",
           14: "MADV_HUGEPAGE", 15: "MADV_NOHUGEPAGE"}
SEEK = {0: "SEEK_SET", 1: "SEEK_CUR", 2: "SEEK_END", 3: "SEEK_DATA", 4: "SEEK_HOLE"}
ACCESS: FlagSet = (((4, "R_OK"), (2, "W_OK"), (1, "X_OK")), "F_OK")
PTRACE = {0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 4: "PTRACE_POKETEXT",
          5: "PTRACE_POKEDATA", 7: "PTRACE_CONT", 8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP",
          12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
          0x4206: "PTRACE_SEIZE"}

CLOCKS = {0: "CLOCK_REALTIME", 1: "CLOCK_MONOTONIC", 2: "CLOCK_PROCESS_CPUTIME_ID",
          3: "CLOCK_THREAD_CPUTIME_ID", 4: "CLOCK_MONOTONIC_RAW", 5: "CLOCK_REALTIME_COARSE",
          6: "CLOCK_MONOTONIC_COARSE", 7: "CLOCK_BOOTTIME"}

# Signals by number: the host's signal module has the Linux numbering (the
# guest's ABI) and strace's spellings.
SIGNALS = {int(s): s.name for s in _signal.Signals
           if s.name.startswith("SIG") and not s.name.startswith("SIG_")
           and s.name not in ("SIGRTMIN", "SIGRTMAX")}
# Real-time signals as strace names them: SIGRTMIN is the kernel's 32, then
# SIGRT_1 (33, which glibc keeps for itself) ... SIGRT_32 (64).
SIGNALS.update({32: "SIGRTMIN", **{n: f"SIGRT_{n - 32}" for n in range(33, 65)}})


def flag_text(value: int, flags: FlagSet) -> str:
    """`value` as strace spells a flag set: names joined by '|', bits no
    name covers in hex, the set's name of 0 (or "0") for 0."""
    names, zero = flags
    if value == 0:
        return zero if zero is not None else "0"
    out, rest = [], value
    for bit, name in names:
        if bit and (rest & bit) == bit:
            out.append(name)
            rest &= ~bit
    if rest:
        out.append(hex(rest))
    return "|".join(out)


def enum_text(value: int, names: dict[int, str]) -> str:
    """The name of `value`, or its hex spelling when it has none."""
    return names.get(value, hex(value) if value >= 0 else str(value))


def open_flags_text(value: int) -> str:
    """open/openat flags: the access mode, then the other flags."""
    access = OPEN_ACCESS.get(value & O_ACCMODE, hex(value & O_ACCMODE))
    rest = value & ~O_ACCMODE
    return access if rest == 0 else access + "|" + flag_text(rest, OPEN_FLAGS)


def mmap_flags_text(value: int) -> str:
    kind = MAP_TYPES.get(value & 0xf, hex(value & 0xf))
    rest = value & ~0xf
    return kind if rest == 0 else kind + "|" + flag_text(rest, MAP)


def socket_type_text(value: int) -> str:
    kind = enum_text(value & 0xf, SOCK_TYPES)
    rest = value & ~0xf
    return kind if rest == 0 else kind + "|" + flag_text(rest, SOCK_FLAGS)


def clone_flags_text(value: int) -> str:
    """clone's flags: the flag set, then the exit signal in the low byte."""
    rest, signal = value & ~0xff, value & 0xff
    parts = [flag_text(rest, CLONE)] if rest else []
    if signal:
        parts.append(SIGNALS.get(signal, str(signal)))
    return "|".join(parts) if parts else "0"


def signal_text(value: int) -> str:
    return SIGNALS.get(value, str(value))
