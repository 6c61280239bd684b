"""Decoding system-call arguments over fake guest memory, the kernel's
metadata records, and strace's line format."""

from __future__ import annotations

import socket
import struct

import pytest

from pyrebox import strace_format, syscall_args, syscall_meta
from pyrebox.syscall_args import Arguments, Reader, after_exec, error_name
from pyrebox.syscall_meta import Signature
from pyrebox.syscall_values import GuestBytes, GuestString, Unreadable, Vector
from pyrebox.trace_filter import Filter

PAGE = 4096


class Memory:
    """Pages of fake guest memory; reading an absent page raises, naming it."""

    def __init__(self):
        self.pages: dict[int, bytearray] = {}

    def put(self, address: int, data: bytes) -> int:
        for i, byte in enumerate(data):
            page = self.pages.setdefault((address + i) // PAGE, bytearray(PAGE))
            page[(address + i) % PAGE] = byte
        return address

    def read(self, address: int, length: int) -> bytes:
        out = bytearray()
        for a in range(address, address + length):
            page = self.pages.get(a // PAGE)
            if page is None:
                raise ValueError(f"{a:#x} is not mapped")
            out.append(page[a % PAGE])
        return bytes(out)


OPENAT = Signature("openat", ("dfd", "filename", "flags", "mode"),
                   ("int", "const char *", "int", "umode_t"))
READ = Signature("read", ("fd", "buf", "count"), ("unsigned int", "char *", "size_t"))
WRITE = Signature("write", ("fd", "buf", "count"), ("unsigned int", "const char *", "size_t"))
SENDTO = Signature("sendto", ("fd", "buff", "len", "flags", "addr", "addr_len"),
                   ("int", "void *", "size_t", "unsigned int", "struct sockaddr *", "int"))
EXECVE = Signature("execve", ("filename", "argv", "envp"),
                   ("const char *", "const char *const *", "const char *const *"))
PIPE2 = Signature("pipe2", ("fildes", "flags"), ("int *", "int"))
MMAP = Signature("mmap", ("addr", "len", "prot", "flags", "fd", "off"), ("unsigned long",) * 6)


def args(signature, raw, memory, retval=None, path=1):
    raw = tuple(raw) + (0,) * (6 - len(raw))
    return Arguments(0x1000, 0, path, raw, retval, signature, memory.read)


def test_openat_decodes_the_path_flags_and_mode_and_prints_as_strace():
    m = Memory()
    path = m.put(0x400000, b"/tmp/syscall_seq.txt\0")
    a = args(OPENAT, (0xffffff9c, path, 0o1101, 0o644), m, retval=3)
    assert list(a) == ["dfd", "filename", "flags", "mode"]
    assert a["dfd"] == -100 and repr(a["dfd"]) == "AT_FDCWD"
    assert a["filename"] == "/tmp/syscall_seq.txt" and a[1].address == path
    assert int(a["flags"]) == 0o1101 and repr(a["flags"]) == "O_WRONLY|O_CREAT|O_TRUNC"
    assert strace_format.line("openat", 257, a, 3) == (
        'openat(AT_FDCWD, "/tmp/syscall_seq.txt", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3')
    # Without O_CREAT strace leaves the mode out; an error is -1 NAME (text).
    ro = args(OPENAT, (0xffffff9c, path, 0o2000000, 0), m, retval=-2)
    assert strace_format.line("openat", 257, ro, -2, 7) == (
        '[pid     7] openat(AT_FDCWD, "/tmp/syscall_seq.txt", O_RDONLY|O_CLOEXEC) = '
        "-1 ENOENT (No such file or directory)")


def test_a_string_not_present_at_entry_is_unreadable_then_read_at_return():
    m = Memory()
    entry = args(OPENAT, (0xffffff9c, 0x500000, 0, 0), m)
    assert entry["filename"] == Unreadable(0x500000, syscall_args.ENTRY_UNREADABLE)
    m.put(0x500000, b"/etc/hosts\0")  # the kernel faulted it in during the call
    assert args(OPENAT, (0xffffff9c, 0x500000, 0, 0), m, retval=3)["filename"] == "/etc/hosts"
    # Still absent at return: unreadable, with the reader's reason and the address.
    gone = args(OPENAT, (0xffffff9c, 0x600000, 0, 0), m, retval=-14)["filename"]
    assert isinstance(gone, Unreadable) and gone.address == 0x600000
    assert "0x600000 is not mapped" in gone.reason and repr(gone) == "0x600000"


def test_buffers_use_their_length_argument_and_outputs_wait_for_the_return():
    m = Memory()
    data = m.put(0x700000, b"abcdefghijklmnopqrstuvwxyz" + b"\0" * 38)
    w = args(WRITE, (3, data, 26), m, retval=26)
    assert isinstance(w["buf"], GuestBytes) and bytes(w["buf"]) == b"abcdefghijklmnopqrstuvwxyz"
    # read's buffer: its address at entry and after a failure, its bytes up to retval after.
    assert repr(args(READ, (3, data, 64), m)["buf"]) == hex(data)
    assert repr(args(READ, (3, data, 64), m, retval=-9)["buf"]) == hex(data)
    assert bytes(args(READ, (3, data, 64), m, retval=5)["buf"]) == b"abcde"
    # strace's 32 bytes, then "...".
    m.put(0x710000, b"x" * 40)
    long = args(WRITE, (1, 0x710000, 40), m, retval=40)
    assert repr(long["buf"]) == '"' + "x" * 32 + '"...'
    syscall_args.set_buffer_max(4)
    try:
        assert bytes(args(WRITE, (1, 0x710000, 40), m, retval=40)["buf"]) == b"xxxx"
    finally:
        syscall_args.set_buffer_max(4096)


def test_sockaddr_for_ipv4_ipv6_and_unix():
    m = Memory()
    sin = m.put(0x800000, struct.pack("<H", 2) + struct.pack(">H", 9999) +
                socket.inet_aton("127.0.0.1") + b"\0" * 8)
    msg = m.put(0x801000, b"hello")
    a = args(SENDTO, (3, msg, 5, 0, sin, 16), m, retval=5)
    assert dict(a["addr"]) == {"family": "AF_INET", "port": 9999, "address": "127.0.0.1"}
    assert strace_format.call_text("sendto", 44, a) == (
        'sendto(3, "hello", 5, 0, {sa_family=AF_INET, sin_port=htons(9999), '
        'sin_addr=inet_addr("127.0.0.1")}, 16)')
    sin6 = m.put(0x802000, struct.pack("<H", 10) + struct.pack(">HI", 53, 0) +
                 socket.inet_pton(socket.AF_INET6, "::1") + b"\0\0\0\0")
    six = args(SENDTO, (3, msg, 5, 0, sin6, 28), m, retval=5)["addr"]
    assert (six["address"], six["port"]) == ("::1", 53)
    sun = m.put(0x803000, struct.pack("<H", 1) + b"/run/sock\0")
    assert args(SENDTO, (3, msg, 5, 0, sun, 12), m, retval=5)["addr"]["path"] == "/run/sock"


def test_argv_and_envp_are_bounded_and_execve_completes_from_the_new_program():
    m = Memory()
    s1, s2 = m.put(0x900000, b"/bin/true\0"), m.put(0x900100, b"-x\0")
    argv = m.put(0x901000, struct.pack("<QQQ", s1, s2, 0))
    envp = m.put(0x902000, struct.pack("<QQ", s2, 0))
    a = args(EXECVE, (s1, argv, envp), m)
    assert a["argv"] == ["/bin/true", "-x"] and repr(a["envp"]) == "0x902000 /* 1 var */"
    # A NULL-less array of 10000 entries stops at VECTOR_MAX, marked.
    m.put(0xa00000, struct.pack("<Q", s2) * (syscall_args.VECTOR_MAX + 1))
    huge = args(EXECVE, (s1, 0xa00000, envp), m)["argv"]
    assert len(huge) == syscall_args.VECTOR_MAX and not huge.complete
    # Strings unreadable at entry are taken from what the new program got.
    blind = args(EXECVE, (0xb00000, argv - 0x100000, envp - 0x100000), Memory())
    done = after_exec(blind, {"argv": ["true"], "envc": 6, "execfn": "/bin/true"})
    assert strace_format.line("execve", 59, done, 0) == (
        'execve("/bin/true", ["true"], 0x802000 /* 6 vars */) = 0')


def test_outputs_fds_flags_and_hex_results():
    m = Memory()
    fds = m.put(0xc00000, struct.pack("<ii", 3, 4))
    p = args(PIPE2, (fds, 0o2000000), m, retval=0)
    assert p["fildes"] == [3, 4] and strace_format.call_text("pipe2", 293, p) == (
        "pipe2([3, 4], O_CLOEXEC)")
    mm = args(MMAP, (0, 8192, 3, 0x22, 0xffffffff, 0), m, retval=0x7f0000000000)
    assert strace_format.line("mmap", 9, mm, 0x7f0000000000) == (
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = "
        "0x7f0000000000")


def test_a_call_the_kernel_does_not_describe_keeps_raw_arguments():
    a = Arguments(0x1000, 0x14, 2, (3, 4, 5, 6, 7, 8), 42, None, Memory().read)
    assert not a.described and dict(a) == {f"arg{i}": v for i, v in enumerate((3, 4, 5, 6, 7, 8))}
    assert strace_format.line(None, 0x14, a, 42) == (
        "syscall_0x14(0x3, 0x4, 0x5, 0x6, 0x7, 0x8)".ljust(39) + " = 42")
    assert strace_format.result_text("exit_group", None) == "?"


def test_error_names_are_the_kernels_errno_names():
    assert error_name(-2) == "ENOENT" and error_name(-11) == "EAGAIN"
    assert error_name(-95) == "EOPNOTSUPP" and error_name(-512) == "ERESTARTSYS"
    assert error_name(0) is None and error_name(3) is None and error_name(-4096) is None
    assert error_name(-4095) == "E4095"


def test_metadata_records_are_checked_before_they_are_believed():
    m = Memory()
    name, t0, t1, a0, a1 = (m.put(0xd00000 + 0x40 * i, s) for i, s in enumerate(
        (b"sys_kill\0", b"pid_t\0", b"int\0", b"pid\0", b"sig\0")))
    types, names = m.put(0xd01000, struct.pack("<QQ", t0, t1)), m.put(0xd01100,
                                                                      struct.pack("<QQ", a0, a1))
    record = m.put(0xd02000, struct.pack("<QiiQQ", name, 62, 2, types, names))
    r = Reader(0, m.read)
    read_u64 = lambda va: struct.unpack("<Q", m.read(va, 8))[0]  # noqa: E731
    read_str = lambda va, n: r.cstr(va, n)[0].decode()  # noqa: E731
    sig = syscall_meta.read_record(record, "kill", read_u64, r.u32, read_str)
    assert sig == Signature("kill", ("pid", "sig"), ("pid_t", "int"))
    assert syscall_meta.read_record(record, "getpid", read_u64, r.u32, read_str) is None
    # 7.1+ packs other fields above nb_args's 7 bits.
    packed = m.put(0xd04000, struct.pack("<QiBBhQQ", name, 62, 2 | 0x80, 3, 0x15, types, names))
    assert syscall_meta.read_record(packed, "kill", read_u64, r.u32, read_str) == sig
    bad = m.put(0xd03000, struct.pack("<QiiQQ", name, 62, 100, types, names))
    assert syscall_meta.read_record(bad, "kill", read_u64, r.u32, read_str) is None
    assert syscall_meta.read_record(0xdead0000, "kill", read_u64, r.u32, read_str) is None


def test_trace_filter_names_classes_and_negation():
    m = Memory()
    opened = args(OPENAT, (0, 0, 0, 0), m)
    assert Filter("").wants("anything", opened)
    assert Filter("trace=openat,read").wants("openat", opened)
    assert not Filter("read").wants("openat", opened)
    assert Filter("%file").wants("openat", opened)  # by the kernel's argument names
    assert not Filter("%file").wants("read", args(READ, (0, 0, 0), m))
    assert Filter("%network").wants("sendto", opened) and not Filter("!%network").wants("sendto", opened)
    with pytest.raises(ValueError, match="unknown class '%bogus'"):
        Filter("%bogus")


def test_guest_strings_keep_their_bytes():
    s = GuestString(b"caf\xc3\xa9\xff", 0x10)
    assert s.raw == b"caf\xc3\xa9\xff" and str(s) == "caf\u00e9\\xff"
    assert repr(s) == '"caf\\303\\251\\377"'
    assert isinstance(Vector([], 0), list)
