"""System calls as strace prints them: `name(args) = result`.

The arguments print as their decoded values do (pyrebox.syscall_values);
this module adds what strace does per call: clone's named arguments, open's
mode only with O_CREAT or O_TMPFILE, results in hex for calls returning
addresses, `= ?` for calls that do not return, errors as `-1 ENOENT (No
such file or directory)`. Calls in LIKE_STRACE print as strace prints them
(the tests compare them line for line); the others print their arguments
by the kernel's types: structures strace expands (sigaction, sigset, futex
operations, clone3's clone_args, ioctl requests) are their addresses here.
A call the kernel does not describe prints as `syscall_0xNN(raw, ...)`.
"""

from __future__ import annotations

from .syscall_args import Arguments, error_name, error_text

HEX_RESULTS = ("mmap", "brk", "mremap", "shmat")
NO_RETURN = ("exit", "exit_group", "rt_sigreturn", "sigreturn")
COLUMN = 39  # strace pads `name(args)` to this width before " = "

# The calls whose arguments print exactly as strace's do.
LIKE_STRACE = frozenset((
    "read", "write", "pread64", "pwrite64", "open", "openat", "close", "creat", "access",
    "faccessat", "unlink", "unlinkat", "rename", "renameat", "mkdir", "mkdirat", "rmdir",
    "chdir", "readlink", "readlinkat", "getcwd", "newfstatat", "lseek", "dup", "dup2", "dup3",
    "pipe", "pipe2", "mmap", "mprotect", "munmap", "brk", "madvise", "socket", "connect", "bind",
    "sendto", "listen", "accept", "accept4", "writev", "readv", "execve", "wait4", "kill",
    "tgkill", "clone", "exit", "exit_group", "getpid", "getppid", "gettid", "getuid", "getgid",
    "geteuid", "getegid", "arch_prctl", "set_tid_address", "set_robust_list", "rseq",
    "prlimit64", "getrandom", "clock_gettime", "sched_yield", "nanosleep"))


def call_text(name: str | None, number: int, args: Arguments) -> str:
    """`name(arguments)`."""
    if name is None or not args.described:
        return f"syscall_{number:#x}(" + ", ".join(hex(v) for v in args.raw) + ")"
    values = list(args.values())
    if name == "clone" and len(values) >= 5:
        flags, stack, parent_tid, child_tid, tls = values[:5]
        parts = [f"child_stack={stack!r}", f"flags={flags!r}"]
        if int(flags) & 0x101000:  # CLONE_PARENT_SETTID | CLONE_PIDFD
            parts.append(f"parent_tid={parent_tid!r}")
        if int(flags) & 0x80000:   # CLONE_SETTLS
            parts.append(f"tls={tls!r}")
        if int(flags) & 0x1200000:  # CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID
            parts.append(f"child_tidptr={child_tid!r}")
        return f"clone({', '.join(parts)})"
    if name in ("open", "openat") and len(values) >= 3:
        flags_at = 1 if name == "open" else 2
        if not int(values[flags_at]) & 0o20000100:  # O_CREAT | __O_TMPFILE
            values = values[:flags_at + 1]
    return f"{name}(" + ", ".join(repr(v) for v in values) + ")"


def result_text(name: str | None, retval: int | None) -> str:
    """What follows " = ": the result, `?` when the call did not return."""
    if retval is None:
        return "?"
    error = error_name(retval)
    if error is not None:
        prefix = "?" if error.startswith("ERESTART") or error == "ENOIOCTLCMD" else "-1"
        return f"{prefix} {error} ({error_text(retval)})"
    if name in HEX_RESULTS:
        return hex(retval & (1 << 64) - 1)
    return str(retval)


def line(name: str | None, number: int, args: Arguments, retval: int | None,
         pid: int | None = None) -> str:
    """One trace line: `[pid N] name(args) = result` (no prefix without pid)."""
    text = call_text(name, number, args)
    prefix = f"[pid {pid:5d}] " if pid is not None else ""
    return f"{prefix}{text.ljust(COLUMN)} = {result_text(name, retval)}"

