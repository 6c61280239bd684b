"""Decoded system-call arguments: what SYSCALL_CB and SYSCALL_RET_CB give
scripts as `args`.

The argument names and C types are the kernel's own (pyrebox.syscall_meta);
how a value is read follows from its type and name, with a table of the
calls whose arguments need more (flag sets, lengths held by another
argument, output buffers). A call the kernel does not describe has its raw
registers only, under arg0..arg5 (`described` False): never a guess.

Input arguments (strings, paths, buffers, sockaddrs, iovecs, argv) are read
from the calling address space; a string whose page is not present at
entry (the kernel faults it in during the call) is Unreadable at entry and
read again at return, where it is reported Unreadable only if it still does
not read. Output arguments (read's buffer up to the returned length, stat
buffers, pipe's fds, accepted addresses, wait status) are decoded at
return, when the call succeeded; at entry, and after a failure, they are
their addresses.

Caps (the guest is untrusted): STRING_MAX bytes per string, BUFFER_MAX
bytes per buffer (set_buffer_max changes it), VECTOR_MAX entries per argv
or iovec array.
"""

from __future__ import annotations

import collections.abc
import errno as _errno
import os
import socket
import struct

from . import machine, syscall_flags as F, syscall_meta
from .syscall_meta import Signature
from .syscall_values import (GuestBytes, GuestString, Named, Struct, Unreadable, Vector,
                             pointer)

STRING_MAX = 4096
BUFFER_MAX = 4096
VECTOR_MAX = 64
ENTRY_UNREADABLE = "not readable at entry"


def set_buffer_max(size: int) -> None:
    """How many bytes of each buffer argument are read (default 4096)."""
    global BUFFER_MAX
    if not isinstance(size, int) or size < 0:
        raise ValueError(f"buffer size must be a non-negative int, got {size!r}")
    BUFFER_MAX = size


# --------------------------------------------------------------- the table
# (call, argument) -> kind; `kind:other` names the argument holding a length.
SPECIAL: dict[tuple[str, str], str] = {}


def _special(kind: str, *pairs: str) -> None:
    for pair in pairs:
        call, arg = pair.split(".")
        SPECIAL[(call, arg)] = kind


_special("open_flags", "open.flags", "openat.flags")
_special("mode", "open.mode", "openat.mode", "creat.mode", "mkdir.mode", "mkdirat.mode",
         "chmod.mode", "fchmod.mode", "fchmodat.mode", "mknod.mode", "mknodat.mode")
_special("prot", "mmap.prot", "mprotect.prot", "pkey_mprotect.prot")
_special("map_flags", "mmap.flags")
_special("int32", "mmap.fd")
_special("int", "mmap.off")
_special("ptr", "mmap.addr", "munmap.addr", "mprotect.start", "madvise.start", "brk.brk",
         "mremap.addr", "mremap.new_addr", "clone.newsp", "clone.tls", "arch_prctl.arg2",
         "set_robust_list.head", "set_tid_address.tidptr", "rseq.rseq", "shmat.shmaddr")
_special("hex", "rseq.rseq_len", "rseq.sig")
_special("madvise", "madvise.behavior")
_special("clone_flags", "clone.clone_flags")
_special("family", "socket.family", "socketpair.family")
_special("socket_type", "socket.type", "socketpair.type")
_special("ipproto", "socket.protocol", "socketpair.protocol")
_special("msg_flags", "sendto.flags", "recvfrom.flags", "sendmsg.flags", "recvmsg.flags")
_special("in_buf:count", "write.buf", "pwrite64.buf")
_special("in_buf:len", "sendto.buff")
_special("out_buf", "read.buf", "pread64.buf", "recvfrom.ubuf", "getrandom.ubuf")
_special("out_path", "readlink.buf", "readlinkat.buf")
_special("out_cstr", "getcwd.buf")
_special("sockaddr:addrlen", "connect.uservaddr", "bind.umyaddr")
_special("sockaddr:addr_len", "sendto.addr")
_special("out_sockaddr", "accept.upeer_sockaddr", "accept4.upeer_sockaddr",
         "getsockname.usockaddr", "getpeername.usockaddr", "recvfrom.addr")
_special("out_int", "accept.upeer_addrlen", "accept4.upeer_addrlen",
         "getsockname.usockaddr_len", "getpeername.usockaddr_len", "recvfrom.addr_len")
_special("iov_in:vlen", "writev.vec", "pwritev.vec", "pwritev2.vec")
_special("iov_out:vlen", "readv.vec", "preadv.vec", "preadv2.vec")
_special("argv", "execve.argv", "execveat.argv")
_special("envp", "execve.envp", "execveat.envp")
_special("out_fds", "pipe.fildes", "pipe2.fildes", "socketpair.usockvec")
_special("pipe_flags", "pipe2.flags", "dup3.flags")
_special("out_wait_status", "wait4.stat_addr")
_special("wait_options", "wait4.options", "waitid.options")
_special("signal", "kill.sig", "tgkill.sig", "tkill.sig", "rt_sigaction.sig", "pidfd_send_signal.sig")
_special("arch_prctl", "arch_prctl.option")
_special("grnd", "getrandom.flags")
_special("out_stat", "newfstatat.statbuf", "newstat.statbuf", "newlstat.statbuf", "newfstat.statbuf")
_special("at_flags", "newfstatat.flag", "unlinkat.flag", "fchownat.flag", "linkat.flags",
         "utimensat.flags", "faccessat2.flags")
_special("access", "access.mode", "faccessat.mode", "faccessat2.mode")
_special("rlimit_resource", "prlimit64.resource", "getrlimit.resource", "setrlimit.resource")
_special("in_rlimit", "prlimit64.new_rlim", "setrlimit.rlim")
_special("out_rlimit", "prlimit64.old_rlim", "getrlimit.rlim")
_special("sigprocmask_how", "rt_sigprocmask.how")
_special("seek", "lseek.whence")
_special("ptrace", "ptrace.request")
_special("out_timespec", "clock_gettime.tp", "clock_getres.tp")
_special("clockid", "clock_gettime.which_clock", "clock_getres.which_clock",
         "clock_nanosleep.which_clock")

FD_NAMES = ("fd", "dfd", "olddfd", "newdfd", "oldfd", "newfd", "fildes", "epfd", "out_fd", "in_fd")
# C types read as signed integers; the others are unsigned.
SIGNED = ("int", "long", "pid_t", "off_t", "loff_t", "clockid_t", "timer_t", "key_t", "mqd_t",
          "s32", "s64", "__s32", "__s64", "int32_t", "int64_t", "long long")
NARROW = ("int", "unsigned int", "u32", "__u32", "s32", "__s32", "pid_t", "uid_t", "gid_t",
          "umode_t", "mode_t", "clockid_t", "key_t", "mqd_t", "timer_t", "qid_t", "rwf_t",
          "unsigned", "int32_t", "uint32_t", "u16", "u8")


def kind_of(call: str, arg: str, ctype: str) -> str:
    """How argument `arg` (C type `ctype`) of `call` is read."""
    special = SPECIAL.get((call, arg))
    if special is not None:
        return special
    ctype = ctype.strip()
    if ctype.endswith("*"):
        return "string" if ctype.replace(" ", "") == "constchar*" else "ptr"
    if arg in FD_NAMES:
        return "fd"
    return "int" if ctype in SIGNED else "uint"


# ------------------------------------------------------------- the reading
class Reader:
    """Reads the address space `pgd` (a test gives its own read)."""

    def __init__(self, pgd: int, read=None):
        self.pgd = pgd
        self._read = read if read is not None else (lambda a, n: machine.r_va(pgd, a, n))

    def bytes(self, address: int, length: int) -> bytes:
        return self._read(address, length) if length else b""

    def cstr(self, address: int, limit: int) -> tuple[bytes, bool]:
        return machine.read_terminated(self._read, address, limit)

    def u32(self, address: int) -> int:
        return struct.unpack("<I", self.bytes(address, 4))[0]

    def words(self, address: int, count: int, size: int = 8) -> list[int]:
        data = self.bytes(address, count * size)
        return list(struct.unpack(f"<{count}{'Q' if size == 8 else 'I'}", data))


def _width(ctype: str, wide: bool) -> int:
    return 32 if (not wide or ctype.strip() in NARROW) else 64


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _reason(error: Exception) -> str:
    return str(error) or type(error).__name__


def read_string(reader: Reader, address: int, at_return: bool, limit: int = STRING_MAX):
    if address == 0:
        return pointer(0)
    try:
        data, complete = reader.cstr(address, limit)
    except Exception as e:  # noqa: BLE001 - unreadable memory is a value, not a failure
        return Unreadable(address, _reason(e) if at_return else ENTRY_UNREADABLE)
    return GuestString(data, address, complete)


def read_buffer(reader: Reader, address: int, length: int, at_return: bool):
    if address == 0:
        return pointer(0)
    length = max(0, length)
    try:
        return GuestBytes(reader.bytes(address, min(length, BUFFER_MAX)), address, length)
    except Exception as e:  # noqa: BLE001
        return Unreadable(address, _reason(e) if at_return else ENTRY_UNREADABLE)


def sockaddr(data: bytes, address: int = 0) -> Struct:
    """A struct sockaddr of `len(data)` bytes, as strace prints it."""
    if len(data) < 2:
        return Struct({}, "{sa_family=???}", address)
    family = struct.unpack_from("<H", data)[0]
    name = F.FAMILIES.get(family, str(family))
    if family == socket.AF_INET and len(data) >= 8:
        port = struct.unpack_from(">H", data, 2)[0]
        host = socket.inet_ntop(socket.AF_INET, data[4:8])
        return Struct({"family": name, "port": port, "address": host},
                      f'{{sa_family={name}, sin_port=htons({port}), sin_addr=inet_addr("{host}")}}',
                      address)
    if family == socket.AF_INET6 and len(data) >= 24:
        port, flow = struct.unpack_from(">HI", data, 2)
        host = socket.inet_ntop(socket.AF_INET6, data[8:24])
        scope = struct.unpack_from("<I", data, 24)[0] if len(data) >= 28 else 0
        return Struct({"family": name, "port": port, "address": host, "flowinfo": flow,
                       "scope_id": scope},
                      f"{{sa_family={name}, sin6_port=htons({port}), sin6_flowinfo=htonl({flow}), "
                      f'inet_pton(AF_INET6, "{host}", &sin6_addr), sin6_scope_id={scope}}}', address)
    if family == socket.AF_UNIX:
        raw = data[2:]
        abstract = raw[:1] == b"\0" and len(raw) > 1
        path = raw[1:] if abstract else raw.split(b"\0", 1)[0]
        text = GuestString(path, address + 2).__repr__()
        return Struct({"family": name, "path": ("@" if abstract else "") +
                       path.decode("utf-8", "backslashreplace")},
                      f"{{sa_family={name}, sun_path={'@' if abstract else ''}{text}}}", address)
    return Struct({"family": name, "data": data[2:]},
                  f"{{sa_family={name}, sa_data={GuestBytes(data[2:16], address + 2, 14)!r}}}",
                  address)


def stat_struct(data: bytes, address: int) -> Struct:
    """x86-64 struct stat (144 bytes): what strace's short form shows."""
    dev, ino, nlink, mode, uid, gid = struct.unpack_from("<QQQIII", data)
    rdev, size = struct.unpack_from("<Qq", data, 40)
    kind = {0o140000: "S_IFSOCK", 0o120000: "S_IFLNK", 0o100000: "S_IFREG", 0o60000: "S_IFBLK",
            0o40000: "S_IFDIR", 0o20000: "S_IFCHR", 0o10000: "S_IFIFO"}.get(mode & 0o170000)
    mode_text = (f"{kind}|{mode & 0o7777:04o}" if kind else f"{mode:#o}")
    if mode & 0o170000 in (0o20000, 0o60000):
        major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & ~0xfff)
        minor = (rdev & 0xff) | ((rdev >> 12) & ~0xff)
        extra = f"st_rdev=makedev({major:#x}, {minor:#x})"
    else:
        extra = f"st_size={size}"
    return Struct({"dev": dev, "ino": ino, "nlink": nlink, "mode": mode, "uid": uid, "gid": gid,
                   "rdev": rdev, "size": size}, f"{{st_mode={mode_text}, {extra}, ...}}", address)


def _rlim(value: int) -> str:
    if value == (1 << 64) - 1:
        return "RLIM64_INFINITY"
    return f"{value // 1024}*1024" if value and value % 1024 == 0 else str(value)


def rlimit_struct(data: bytes, address: int) -> Struct:
    cur, top = struct.unpack_from("<QQ", data)
    return Struct({"cur": cur, "max": top}, f"{{rlim_cur={_rlim(cur)}, rlim_max={_rlim(top)}}}",
                  address)


def wait_status(status: int, address: int) -> Vector:
    if status & 0x7f == 0:
        text = f"[{{WIFEXITED(s) && WEXITSTATUS(s) == {(status >> 8) & 0xff}}}]"
    elif status & 0xff == 0x7f:
        text = f"[{{WIFSTOPPED(s) && WSTOPSIG(s) == {F.signal_text((status >> 8) & 0xff)}}}]"
    else:
        core = " && WCOREDUMP(s)" if status & 0x80 else ""
        text = f"[{{WIFSIGNALED(s) && WTERMSIG(s) == {F.signal_text(status & 0x7f)}{core}}}]"
    return Vector([status], address, text=text)


# Kinds printed symbolically: the function spelling a value of each.
FLAG_TEXTS = {
    "open_flags": F.open_flags_text, "prot": lambda v: F.flag_text(v, F.PROT),
    "map_flags": F.mmap_flags_text, "clone_flags": F.clone_flags_text,
    "family": lambda v: F.enum_text(v, F.FAMILIES), "socket_type": F.socket_type_text,
    "ipproto": lambda v: F.enum_text(v, F.IPPROTO), "msg_flags": lambda v: F.flag_text(v, F.MSG),
    "pipe_flags": lambda v: F.flag_text(v, (F.OPEN_FLAGS[0], "0")),
    "wait_options": lambda v: F.flag_text(v, F.WAIT), "signal": F.signal_text,
    "arch_prctl": lambda v: F.enum_text(v, F.ARCH_PRCTL),
    "grnd": lambda v: F.flag_text(v, F.GRND), "at_flags": lambda v: F.flag_text(v, F.AT_FLAGS),
    "access": lambda v: F.flag_text(v, F.ACCESS),
    "rlimit_resource": lambda v: F.enum_text(v, F.RLIMITS),
    "sigprocmask_how": lambda v: F.enum_text(v, F.SIGPROCMASK_HOW),
    "seek": lambda v: F.enum_text(v, F.SEEK), "ptrace": lambda v: F.enum_text(v, F.PTRACE),
    "madvise": lambda v: F.enum_text(v, F.MADVISE), "clockid": lambda v: F.enum_text(v, F.CLOCKS),
}


def _lengths(values: dict, kind: str) -> int:
    return int(values.get(kind.split(":", 1)[1], 0))


def decode_one(kind: str, raw: int, ctype: str, values: dict, reader: Reader, wide: bool,
               retval: int | None):
    """The value of one argument. `values` holds the earlier arguments'
    raw values by name (lengths); `retval` is None at entry."""
    ok = retval is not None and retval >= 0 and not (-4096 < retval < 0)
    base = kind.split(":", 1)[0]
    bits = _width(ctype, wide)
    if base == "int":
        return _signed(raw, bits)
    if base == "int32":
        return _signed(raw, 32)
    if base == "uint":
        return raw & ((1 << bits) - 1)
    if base == "fd":
        fd = _signed(raw, 32)
        return Named(fd, "AT_FDCWD") if fd == F.AT_FDCWD else fd
    if base == "ptr":
        return pointer(raw)
    if base == "hex":
        return Named(raw & ((1 << bits) - 1), hex(raw & ((1 << bits) - 1)))
    if base == "string":
        return read_string(reader, raw, retval is not None)
    if base == "mode":
        mode = raw & 0xffff
        return Named(mode, f"0{mode:03o}" if mode else "000")
    flags = FLAG_TEXTS.get(base)
    if flags is not None:
        value = raw & ((1 << bits) - 1)
        return Named(value, flags(value))
    if raw == 0:
        return pointer(0)
    try:
        if base == "in_buf":
            return read_buffer(reader, raw, _lengths(values, kind), retval is not None)
        if base == "sockaddr":
            length = max(0, min(_lengths(values, kind), 128))
            return sockaddr(reader.bytes(raw, length), raw)
        if base == "in_rlimit":
            return rlimit_struct(reader.bytes(raw, 16), raw)
        if base in ("argv", "envp"):
            return read_vector(reader, raw, wide, retval is not None, count_only=base == "envp")
        if base in ("iov_in", "iov_out"):
            if base == "iov_out" and not ok:
                return pointer(raw)
            limit = retval if base == "iov_out" else None
            return read_iovec(reader, raw, _lengths(values, kind), retval is not None, limit)
        if not ok:
            return pointer(raw)  # outputs: only after a successful call
        if base == "out_buf":
            return read_buffer(reader, raw, retval, True)
        if base == "out_path":
            return GuestString(reader.bytes(raw, min(retval, STRING_MAX)), raw)
        if base == "out_cstr":
            return read_string(reader, raw, True)
        if base == "out_sockaddr":
            length_at = values.get("_next_ptr")
            length = reader.u32(length_at) if length_at else 128
            return sockaddr(reader.bytes(raw, max(0, min(length, 128))), raw)
        if base == "out_int":
            number = reader.u32(raw)
            return Vector([number], raw, text=f"[{number}]")
        if base == "out_fds":
            fds = list(struct.unpack("<ii", reader.bytes(raw, 8)))
            return Vector(fds, raw)
        if base == "out_wait_status":
            return wait_status(reader.u32(raw), raw)
        if base == "out_stat":
            return stat_struct(reader.bytes(raw, 64), raw)
        if base == "out_rlimit":
            return rlimit_struct(reader.bytes(raw, 16), raw)
        if base == "out_timespec":
            sec, nsec = struct.unpack("<qq", reader.bytes(raw, 16))
            return Struct({"tv_sec": sec, "tv_nsec": nsec},
                          f"{{tv_sec={sec}, tv_nsec={nsec}}}", raw)
    except Exception as e:  # noqa: BLE001 - a structure that does not read is a value
        return Unreadable(raw, _reason(e) if retval is not None else ENTRY_UNREADABLE)
    return pointer(raw)


def read_vector(reader: Reader, address: int, wide: bool, at_return: bool, count_only: bool):
    """A NULL-terminated array of string pointers (argv, envp), at most
    VECTOR_MAX entries; envp prints as strace does: its address and count."""
    size = 8 if wide else 4
    items, complete = [], False
    for i in range(VECTOR_MAX + 1):
        entry = reader.words(address + size * i, 1, size)[0]
        if entry == 0:
            complete = True
            break
        if i == VECTOR_MAX:
            break
        items.append(read_string(reader, entry, at_return))
    if count_only:
        more = "" if complete else "+"
        return Vector(items, address, complete,
                      text=f"{address:#x} /* {len(items)}{more} var{'s' if len(items) != 1 else ''} */")
    return Vector(items, address, complete)


def read_iovec(reader: Reader, address: int, count: int, at_return: bool, limit: int | None):
    """`count` struct iovec (at most VECTOR_MAX) and their bytes: all of
    each (inputs) or the first `limit` bytes across them (what readv read)."""
    entries, left = [], limit
    for i in range(min(max(count, 0), VECTOR_MAX)):
        base, length = reader.words(address + 16 * i, 2)
        take = length if left is None else max(0, min(length, left))
        data = read_buffer(reader, base, take, at_return)
        if left is not None:
            left -= take
        entries.append(Struct({"iov_base": data, "iov_len": length},
                              f"{{iov_base={data!r}, iov_len={length}}}", address + 16 * i))
    return Vector(entries, address, complete=count <= VECTOR_MAX)


def decode(signature: Signature, raw: tuple, reader: Reader, wide: bool = True,
           retval: int | None = None) -> dict:
    """{argument name: value} of a call of `signature` with registers `raw`
    (`retval` None: at entry)."""
    names = signature.arg_names
    values: dict = dict(zip(names, raw))  # lengths may follow the buffer they measure
    out: dict = {}
    for i, (name, ctype) in enumerate(zip(names, signature.arg_types)):
        values["_next_ptr"] = raw[i + 1] if i + 1 < len(names) else 0
        kind = kind_of(signature.name, name, ctype)
        out[name] = decode_one(kind, raw[i], ctype, values, reader, wide, retval)
    return out


# ------------------------------------------------------------- the events
class Arguments(collections.abc.Mapping):
    """The arguments of one system call, by the kernel's names (or arg0..arg5
    when the kernel does not describe the call), in order; `args[0]` is the
    first. Read from the guest on first use during the callback (the event's
    adapter reads them before the callback returns if the callback keeps the
    object); `raw` is the registers, `signature` the kernel's declaration
    (None when it has none), `described` whether it had one."""

    _LOOK_UP = object()  # the signature is looked up on first use
    # Until first use an event's Arguments hold only their inputs (one
    # attribute: they are made for every event, most are never looked at).
    _signature = _LOOK_UP
    _values: dict | None = None
    _read = None

    def __init__(self, pgd: int, number: int, path: int, raw: tuple, retval: int | None = None,
                 signature=_LOOK_UP, read=None):
        self._in = (pgd, number, path, raw, retval)
        if signature is not Arguments._LOOK_UP:
            self._signature = signature
        if read is not None:
            self._read = read

    pgd = property(lambda self: self._in[0])
    number = property(lambda self: self._in[1])
    path = property(lambda self: self._in[2])
    raw = property(lambda self: tuple(self._in[3]))
    retval = property(lambda self: self._in[4])

    @property
    def signature(self) -> Signature | None:
        if self._signature is Arguments._LOOK_UP:
            self._signature = _signature(self.pgd, self.number, self.path)
        return self._signature

    @property
    def described(self) -> bool:
        return self.signature is not None

    def freeze(self) -> "Arguments":
        """Reads every argument now (the guest may change them later)."""
        if self._values is None:
            if self.signature is None:
                self._values = {f"arg{i}": value for i, value in enumerate(self.raw)}
            else:
                self._values = decode(self.signature, self.raw, Reader(self.pgd, self._read),
                                      self.path == 1, self.retval)
        return self

    def _decoded(self) -> dict:
        return self.freeze()._values

    def replaced(self, values: dict) -> "Arguments":
        """A copy with some values replaced (read from elsewhere)."""
        copy = Arguments(self.pgd, self.number, self.path, self.raw, self.retval, self.signature)
        copy._values = {**self._decoded(), **values}
        return copy

    def __getitem__(self, key):
        values = self._decoded()
        if isinstance(key, int):
            return list(values.values())[key]
        return values[key]

    def __iter__(self):
        return iter(self._decoded())

    def __len__(self) -> int:
        return len(self._decoded())

    def __repr__(self) -> str:
        return ", ".join(f"{name}={value!r}" for name, value in self._decoded().items())


def entry_arguments(pgd: int, number: int, path: int, raw: tuple) -> Arguments:
    """SYSCALL_CB's `args` (nothing is read until they are used)."""
    args = _new(Arguments)
    args._in = (pgd, number, path, raw, None)
    return args


def return_arguments(pgd: int, number: int, path: int, raw: tuple, retval: int) -> Arguments:
    """SYSCALL_RET_CB's `args`: the inputs again and the outputs."""
    args = _new(Arguments)
    args._in = (pgd, number, path, raw, retval)
    return args


_new = object.__new__


def after_exec(args: Arguments, started: dict) -> Arguments:
    """execve's arguments once it has succeeded, completed from what the new
    program was started with (machine.get_process_arguments): its strings
    are copied to the new stack by the kernel, so they read even when the
    caller's pages were not present at entry. Values that read at entry are
    kept."""
    if not args.described or len(args.signature.arg_names) < 3:
        return args
    names = args.signature.arg_names
    filename, argv, envp = (args[n] for n in names[:3])
    changes: dict = {}
    if not isinstance(filename, GuestString):
        changes[names[0]] = GuestString(started["execfn"].encode("utf-8", "backslashreplace"),
                                        args.raw[0])
    if not isinstance(argv, Vector) or any(not isinstance(a, GuestString) for a in argv):
        changes[names[1]] = Vector([GuestString(a.encode("utf-8", "backslashreplace"), 0)
                                    for a in started["argv"]], args.raw[1])
    if not isinstance(envp, Vector) or any(not isinstance(e, GuestString) for e in envp):
        count = started["envc"]
        changes[names[2]] = Vector([], args.raw[2], text=f"{args.raw[2]:#x} /* {count} "
                                                         f"var{'s' if count != 1 else ''} */")
    return args.replaced(changes) if changes else args


def _signature(pgd: int, number: int, path: int) -> Signature | None:
    try:
        return syscall_meta.signature(pgd, number, path)
    except Exception:  # noqa: BLE001 - without a signature the call has raw arguments
        return None


# Names of the kernel's internal restart codes, which reach a tracer (never
# user space) when a signal interrupts a call.
RESTART_NAMES = {512: "ERESTARTSYS", 513: "ERESTARTNOINTR", 514: "ERESTARTNOHAND",
                 515: "ENOIOCTLCMD", 516: "ERESTART_RESTARTBLOCK"}
RESTART_TEXTS = {512: "To be restarted if SA_RESTART is set", 513: "To be restarted",
                 514: "To be restarted if no handler", 515: "Unknown ioctl",
                 516: "Interrupted by signal"}
MAX_ERRNO = 4095
# Codes with two names: the one strace (and the kernel's errno.h first) uses.
ERRNO_SPELLINGS = {95: "EOPNOTSUPP", 35: "EDEADLK", 11: "EAGAIN"}


def error_name(retval: int) -> str | None:
    """SYSCALL_RET_CB's `error`: "ENOENT" for -2 and the like, None when
    `retval` is no error (-4095..-1 are errors, as the kernel's
    IS_ERR_VALUE says)."""
    if retval >= 0 or retval < -MAX_ERRNO:
        return None
    code = -retval
    return (RESTART_NAMES.get(code) or ERRNO_SPELLINGS.get(code) or _errno.errorcode.get(code)
            or f"E{code}")


def error_text(retval: int) -> str:
    """The description strace prints after the name."""
    code = -retval
    return RESTART_TEXTS.get(code) or os.strerror(code)
