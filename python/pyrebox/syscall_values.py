"""The values of decoded system-call arguments.

Each value is a plain Python type with what it was read from attached, and
prints the way strace spells it (str() and repr() give that text):

- Named: an int with a symbolic spelling (AT_FDCWD, O_RDONLY|O_CLOEXEC,
  0644, NULL, 0x7f1234560000); compares and computes as the int;
- GuestString: a str read from a C string (its `raw` bytes, `address`,
  `complete` False when it was cut at the cap before its NUL);
- GuestBytes: bytes of a buffer (`address`, `length` the call's own length,
  `complete` False when fewer bytes than `length` were read);
- Unreadable: an address whose memory could not be read, with the reason;
- Struct: a dict of fields (sockaddr, stat, rlimit, ...) with strace's
  text; Vector: a list (argv, iovecs, fd pairs) with its `address`.
"""

from __future__ import annotations

STRSIZE = 32  # bytes of a buffer strace prints before "..." (its -s default)


class Named(int):
    """An int that prints as `text`."""

    def __new__(cls, value: int, text: str):
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


def pointer(value: int) -> Named:
    return Named(value, "NULL" if value == 0 else hex(value))


def quote(data: bytes, limit: int | None = None) -> str:
    """`data` as a C string literal, as strace prints it: printable ASCII as
    is; \\n \\t \\r \\v \\f \\\\ \\" escaped; other bytes in octal (three digits
    when a digit follows). Cut at `limit` bytes, with "..." after the quote."""
    cut = limit is not None and len(data) > limit
    shown = data[:limit] if cut else data
    out = []
    escapes = {0x0a: "\\n", 0x09: "\\t", 0x0d: "\\r", 0x0b: "\\v", 0x0c: "\\f",
               0x5c: "\\\\", 0x22: '\\"'}
    for i, byte in enumerate(shown):
        if byte in escapes:
            out.append(escapes[byte])
        elif 0x20 <= byte < 0x7f:
            out.append(chr(byte))
        else:
            following = shown[i + 1] if i + 1 < len(shown) else None
            if following is not None and 0x30 <= following <= 0x37:
                out.append(f"\\{byte:03o}")
            else:
                out.append(f"\\{byte:o}")
    return '"' + "".join(out) + '"' + ("..." if cut else "")


class GuestString(str):
    """A C string read from the guest."""

    def __new__(cls, raw: bytes, address: int, complete: bool = True):
        obj = super().__new__(cls, raw.decode("utf-8", "backslashreplace"))
        obj.raw, obj.address, obj.complete = raw, address, complete
        return obj

    def __repr__(self) -> str:
        return quote(self.raw) + ("" if self.complete else "...")

    def __str__(self) -> str:
        return str.__str__(self)


class GuestBytes(bytes):
    """The bytes of a buffer read from the guest."""

    def __new__(cls, data: bytes, address: int, length: int):
        obj = super().__new__(cls, data)
        obj.address, obj.length = address, length
        obj.complete = len(data) >= length
        return obj

    def __repr__(self) -> str:
        data = bytes(self)
        text = quote(data, STRSIZE)
        if len(data) <= STRSIZE and not self.complete:
            text += "..."
        return text

    __str__ = __repr__


class Unreadable:
    """Memory at `address` that could not be read, and why."""

    __slots__ = ("address", "reason")

    def __init__(self, address: int, reason: str):
        self.address, self.reason = address, reason

    def __repr__(self) -> str:
        return hex(self.address)

    __str__ = __repr__

    def __eq__(self, other) -> bool:
        return isinstance(other, Unreadable) and (self.address, self.reason) == (
            other.address, other.reason)

    def __hash__(self) -> int:
        return hash((self.address, self.reason))


class Struct(dict):
    """Fields of a structure read from the guest, with strace's text."""

    def __init__(self, fields: dict, text: str, address: int = 0):
        super().__init__(fields)
        self.text, self.address = text, address

    def __repr__(self) -> str:
        return self.text

    __str__ = __repr__


class Vector(list):
    """A list read from the guest (argv, iovecs, a pair of fds)."""

    def __init__(self, items, address: int = 0, complete: bool = True, text: str | None = None):
        super().__init__(items)
        self.address, self.complete, self._text = address, complete, text

    def __repr__(self) -> str:
        if self._text is not None:
            return self._text
        return "[" + ", ".join(repr(item) for item in self) + ("..." if not self.complete else "") + "]"

    __str__ = __repr__
