"""Writer for the SVR4 "newc" cpio format (magic 070701), stdlib only.

This is the format the Linux kernel unpacks as an initramfs.  The kernel also
accepts several archives concatenated back to back (each with its own
TRAILER!!!), later entries landing on top of earlier ones; that is how a small
per-run archive is appended to the base guest image.

Contract:
  * Paths are guest paths, absolute or not ("/etc/passwd" == "etc/passwd");
    they are stored without the leading slash, as the kernel expects.  "." and
    ".." components are rejected.
  * Missing parent directories are added automatically (mode 0755) before the
    entry that needs them, so an archive never names a child before its parent.
  * Entries are written in the order they were added; inode numbers count up
    from 1 in that order.  All timestamps are the archive's ``mtime`` (default
    0), so the same calls always give the same bytes.
  * Adding a directory that already exists only updates its mode/owner; adding
    any other entry at a path already taken raises ValueError.
  * Every header+name and every data block is padded to 4 bytes; the archive
    ends with a TRAILER!!! entry (no padding to 512 bytes is needed by the
    kernel, none is added).
"""

from __future__ import annotations

import io
import os
import stat
from dataclasses import dataclass
from typing import BinaryIO

__all__ = ["CpioArchive"]

NEWC_MAGIC = b"070701"
TRAILER_NAME = "TRAILER!!!"


@dataclass
class _Entry:
    name: str  # stored name, no leading slash
    mode: int  # full st_mode: file type bits | permission bits
    uid: int
    gid: int
    data: bytes  # file content, or symlink target; empty otherwise
    rdev_major: int = 0
    rdev_minor: int = 0


def _normalize(path: str | os.PathLike[str]) -> str:
    """Return the stored form of a guest path: relative, no '.', no '..'."""
    text = os.fspath(path)
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if not parts:
        raise ValueError(f"cpio: empty path {text!r}")
    if ".." in parts:
        raise ValueError(f"cpio: '..' is not allowed in {text!r}")
    return "/".join(parts)


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


class CpioArchive:
    """An in-memory newc archive under construction."""

    def __init__(self, mtime: int = 0) -> None:
        self.mtime = int(mtime)
        self._entries: dict[str, _Entry] = {}

    # ------------------------------------------------------------------ adding

    def add_directory(self, path, mode: int = 0o755, uid: int = 0, gid: int = 0) -> None:
        name = _normalize(path)
        existing = self._entries.get(name)
        if existing is not None:
            if not stat.S_ISDIR(existing.mode):
                raise ValueError(f"cpio: {name!r} already exists and is not a directory")
            existing.mode = stat.S_IFDIR | (mode & 0o7777)
            existing.uid, existing.gid = uid, gid
            return
        self._add_parents(name)
        self._entries[name] = _Entry(name, stat.S_IFDIR | (mode & 0o7777), uid, gid, b"")

    def add_file(
        self,
        path,
        data: bytes | None = None,
        *,
        source: str | os.PathLike[str] | None = None,
        mode: int | None = None,
        uid: int = 0,
        gid: int = 0,
    ) -> None:
        """Add a regular file with ``data`` or the content of host file ``source``.

        ``mode`` defaults to the source file's permission bits, or 0644 for data.
        """
        if (data is None) == (source is None):
            raise ValueError("cpio: give exactly one of data= or source=")
        if source is not None:
            with open(source, "rb") as handle:
                if mode is None:
                    mode = stat.S_IMODE(os.fstat(handle.fileno()).st_mode)
                data = handle.read()
        if mode is None:
            mode = 0o644
        self._add_new(_Entry(_normalize(path), stat.S_IFREG | (mode & 0o7777), uid, gid, bytes(data)))

    def add_symlink(self, path, target: str, uid: int = 0, gid: int = 0) -> None:
        """Add a symlink at ``path`` pointing to ``target`` (stored verbatim)."""
        if not target:
            raise ValueError("cpio: empty symlink target")
        self._add_new(_Entry(_normalize(path), stat.S_IFLNK | 0o777, uid, gid, os.fsencode(target)))

    def add_char_device(
        self, path, major: int, minor: int, mode: int = 0o600, uid: int = 0, gid: int = 0
    ) -> None:
        """Add a character device node (e.g. /dev/console = 5,1)."""
        self._add_new(
            _Entry(_normalize(path), stat.S_IFCHR | (mode & 0o7777), uid, gid, b"", major, minor)
        )

    # --------------------------------------------------------------- inspecting

    def __contains__(self, path) -> bool:
        return _normalize(path) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def paths(self) -> list[str]:
        """Guest paths (with leading slash) in archive order."""
        return ["/" + name for name in self._entries]

    # ------------------------------------------------------------------ output

    def write_to(self, stream: BinaryIO) -> None:
        """Write the whole archive, trailer included, to a binary stream."""
        ino = 0
        for entry in self._entries.values():
            ino += 1
            nlink = 2 if stat.S_ISDIR(entry.mode) else 1
            self._write_entry(stream, entry, ino, nlink)
        self._write_entry(stream, _Entry(TRAILER_NAME, 0, 0, 0, b""), 0, 1)

    def to_bytes(self) -> bytes:
        buffer = io.BytesIO()
        self.write_to(buffer)
        return buffer.getvalue()

    def write(self, path: str | os.PathLike[str]) -> None:
        """Write the archive to a host file (replaced atomically)."""
        path = os.fspath(path)
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as handle:
            self.write_to(handle)
        os.replace(tmp, path)

    # ---------------------------------------------------------------- internals

    def _add_parents(self, name: str) -> None:
        parts = name.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            parent = "/".join(parts[:depth])
            existing = self._entries.get(parent)
            if existing is None:
                self._entries[parent] = _Entry(parent, stat.S_IFDIR | 0o755, 0, 0, b"")
            elif not stat.S_ISDIR(existing.mode):
                raise ValueError(f"cpio: parent {parent!r} of {name!r} is not a directory")

    def _add_new(self, entry: _Entry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"cpio: {entry.name!r} already exists")
        self._add_parents(entry.name)
        self._entries[entry.name] = entry

    def _write_entry(self, stream: BinaryIO, entry: _Entry, ino: int, nlink: int) -> None:
        name = entry.name.encode() + b"\0"
        fields = (
            ino,
            entry.mode,
            entry.uid,
            entry.gid,
            nlink,
            self.mtime if entry.name != TRAILER_NAME else 0,
            len(entry.data),
            0,  # devmajor of the containing filesystem: meaningless here
            0,  # devminor
            entry.rdev_major,
            entry.rdev_minor,
            len(name),
            0,  # check: only used by the "crc" variant (070702)
        )
        header = NEWC_MAGIC + b"".join(b"%08X" % (value & 0xFFFFFFFF) for value in fields)
        stream.write(header + name + _pad4(len(header) + len(name)))
        if entry.data:
            stream.write(entry.data + _pad4(len(entry.data)))
