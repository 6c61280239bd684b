"""Bounded reads of guest memory for the unwinder.

A walk reads through one Memory: whole 4 KiB pages, cached (a page is
mapped or not as a whole), at most `max_pages` of them per walk, so a
hostile stack or unwind table cannot make a walk read without end. Every
failure is an UnwindError naming the address and the reason.
"""

from __future__ import annotations

import io
import struct
from typing import Callable

PAGE = 4096
ADDRESS_LIMIT = 1 << 64

ReadFn = Callable[[int, int], bytes]


class UnwindError(ValueError):
    """The stack or an unwind table cannot be followed at `address`;
    `reason` says why."""

    def __init__(self, address: int, reason: str):
        self.address = address
        self.reason = reason
        super().__init__(f"{reason} (at {address:#x})")


class ReadLimit(UnwindError):
    """The walk has read as many pages as its Memory allows."""


class Memory:
    """Page-cached reads through `read(addr, size)` (which raises on an
    unreadable address); at most `max_pages` distinct pages are read."""

    def __init__(self, read: ReadFn, max_pages: int = 1024):
        self._read = read
        self._pages: dict[int, bytes | None] = {}
        self.max_pages = max_pages

    def _page(self, number: int) -> bytes:
        if number not in self._pages:
            if len(self._pages) >= self.max_pages:
                raise ReadLimit(number * PAGE, f"the read limit of {self.max_pages} pages "
                                               f"was reached by this walk")
            try:
                data = bytes(self._read(number * PAGE, PAGE))
                self._pages[number] = data if len(data) == PAGE else None
            except Exception:  # noqa: BLE001 - any failure of the reader is "unreadable"
                self._pages[number] = None
        page = self._pages[number]
        if page is None:
            raise UnwindError(number * PAGE, "unreadable memory")
        return page

    def read(self, addr: int, size: int) -> bytes:
        if addr < 0 or size < 0 or addr + size > ADDRESS_LIMIT:
            raise UnwindError(addr & (ADDRESS_LIMIT - 1), f"bad read of {size} bytes")
        out = bytearray()
        while size > 0:
            page = self._page(addr // PAGE)
            start = addr % PAGE
            chunk = page[start:start + size]
            out += chunk
            addr += len(chunk)
            size -= len(chunk)
        return bytes(out)

    def readable(self, addr: int, size: int = 1) -> bool:
        try:
            self.read(addr, size)
            return True
        except UnwindError:
            return False

    def u8(self, addr: int) -> int:
        return self.read(addr, 1)[0]

    def u16(self, addr: int) -> int:
        return struct.unpack("<H", self.read(addr, 2))[0]

    def u32(self, addr: int) -> int:
        return struct.unpack("<I", self.read(addr, 4))[0]

    def s32(self, addr: int) -> int:
        return struct.unpack("<i", self.read(addr, 4))[0]

    def u64(self, addr: int) -> int:
        return struct.unpack("<Q", self.read(addr, 8))[0]


class MemoryStream(io.RawIOBase):
    """A read-only file over a Memory whose offsets are virtual addresses
    (what pyelftools parses), limited to [start, end)."""

    def __init__(self, memory: Memory, start: int, end: int):
        super().__init__()
        self.memory = memory
        self.start = start
        self.end = end
        self.pos = start

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.end}[whence]
        self.pos = base + offset
        return self.pos

    def tell(self) -> int:
        return self.pos

    def readinto(self, buffer) -> int:
        if not self.start <= self.pos <= self.end:
            raise UnwindError(self.pos, "unwind table read outside its segment")
        size = min(len(buffer), self.end - self.pos)
        data = self.memory.read(self.pos, size)
        buffer[:size] = data
        self.pos += size
        return size
