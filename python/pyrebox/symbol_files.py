"""Full symbol tables of guest files from files on the host, matched by GNU
build ID: gdb's debug-file-directory, WinDbg's symbol path. A stripped
library's static functions (libc's __libc_start_call_main) and a program's
own functions (its .symtab: main without -rdynamic) get their names when
the host has the file's debug file (Debian's -dbg packages) or an
unstripped copy of it.

The path is a list of folders. Each is searched two ways: as a debug-file
folder (<dir>/.build-id/xx/rest.debug, the layout of Debian's -dbg and
-dbgsym packages) and as a folder of ELF files (the regular files directly
in it, each identified by its own build ID). The default is /usr/lib/debug;
[SYMBOLS] debug_path in pyrebox.conf (folders separated by ':') and the
shell's `sympath` set it.

Guest memory is untrusted input: the build ID is read with bounded reads
(the ELF header, at most 64 program headers, 4 KiB of notes, an ID of at
most 64 bytes) and any failure means "no build ID", never an exception.
Host files are the analyst's, but still bounded: at most MAX_FOLDER_FILES
files of a folder are identified, a symbol table gives at most MAX_SYMBOLS
symbols, and a file that does not parse is skipped.
"""

from __future__ import annotations

import os
import struct
import threading
from typing import Callable, NamedTuple

DEFAULT_PATH = ("/usr/lib/debug",)
MAX_FOLDER_FILES = 4096
MAX_SYMBOLS = 1 << 20
MAX_FILE_SIZE = 2 << 30
_MAX_PHDRS = 64
_MAX_NOTES = 4096
_MAX_ID = 64
_CACHE_FILES = 32
_PT_LOAD, _PT_NOTE, _NT_GNU_BUILD_ID = 1, 4, 3

_lock = threading.Lock()
_path: list[str] = list(DEFAULT_PATH)
_folders: dict[tuple[str, int], dict[bytes, str]] = {}   # (folder, mtime) -> id -> file
_tables: dict[tuple[str, int, int], "HostSymbols | None"] = {}


class Symbol(NamedTuple):
    value: int   # st_value: a link-time address
    size: int
    name: str


class HostSymbols(NamedTuple):
    """A host file's symbol table. `first_vaddr`: the page of its first
    PT_LOAD, the link-time address the module's base maps to."""
    file: str
    first_vaddr: int
    symbols: list[Symbol]

    def rebased(self, base: int) -> list[tuple[int, int, str]]:
        """(runtime address, size, name) of each symbol, for a module
        mapped at `base`."""
        bias = base - self.first_vaddr
        return [(s.value + bias, s.size, s.name) for s in self.symbols]


def path() -> list[str]:
    with _lock:
        return list(_path)


def set_path(folders) -> list[str]:
    """Replaces the path (a list of folders, or one ':'-separated string);
    returns it. Folders that do not exist are kept (they may appear
    later) and simply give nothing."""
    if isinstance(folders, str):
        folders = folders.split(":")
    cleaned = [os.path.abspath(os.path.expanduser(f.strip())) for f in folders if f.strip()]
    with _lock:
        _path[:] = cleaned
        return list(_path)


def add_path(folder: str) -> list[str]:
    """Appends a folder (once); returns the path."""
    folder = os.path.abspath(os.path.expanduser(folder))
    with _lock:
        if folder not in _path:
            _path.append(folder)
        return list(_path)


# --- the build ID of a module in guest memory ---


def build_id(read: Callable[[int, int], bytes], base: int) -> bytes | None:
    """The GNU build ID of the ELF image mapped at `base`, read through
    `read(addr, length)` (which raises on an unreadable address); None
    when the image has none or it cannot be read (all failures alike)."""
    try:
        header = read(base, 64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return None
        phoff, = struct.unpack_from("<Q", header, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", header, 0x36)
        if phentsize != 56 or not 0 < phnum <= _MAX_PHDRS or phoff > 1 << 20:
            return None
        table = read(base + phoff, phentsize * phnum)
        phdrs = [struct.unpack_from("<IIQQQQQQ", table, i * 56) for i in range(phnum)]
        loads = [p[3] for p in phdrs if p[0] == _PT_LOAD]
        if not loads:
            return None
        bias = base - (min(loads) & ~0xFFF)
        for p_type, _, _, vaddr, _, _, memsz, _ in phdrs:
            if p_type == _PT_NOTE and 0 < memsz <= _MAX_NOTES:
                found = _notes_build_id(read(bias + vaddr, memsz))
                if found:
                    return found
    except (ValueError, RuntimeError, struct.error, OverflowError):
        return None
    return None


def _notes_build_id(notes: bytes) -> bytes | None:
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        name_at = at + 12
        desc_at = name_at + ((namesz + 3) & ~3)
        end = desc_at + ((descsz + 3) & ~3)
        if end > len(notes):
            return None
        if kind == _NT_GNU_BUILD_ID and notes[name_at:name_at + namesz] == b"GNU\0" \
                and 0 < descsz <= _MAX_ID:
            return bytes(notes[desc_at:desc_at + descsz])
        at = end
    return None


# --- host files ---


def find(ident: bytes) -> HostSymbols | None:
    """The symbol table of the first file on the path whose build ID is
    `ident` and that has one (.symtab), or None."""
    hexid = ident.hex()
    for folder in path():
        table = _table(os.path.join(folder, ".build-id", hexid[:2], hexid[2:] + ".debug"))
        if table is None:  # the folder's own files are identified only when needed
            named = _folder_index(folder).get(ident)
            table = _table(named) if named else None
        if table is not None:
            return table
    return None


def _folder_index(folder: str) -> dict[bytes, str]:
    """build ID -> file, of the regular ELF files directly in `folder`;
    re-read when the folder's modification time changes."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return {}
    key = (folder, mtime)
    with _lock:
        if key in _folders:
            return _folders[key]
    index: dict[bytes, str] = {}
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)[:MAX_FOLDER_FILES]
    except OSError:
        entries = []
    for entry in entries:
        try:
            if not entry.is_file() or entry.stat().st_size > MAX_FILE_SIZE:
                continue
            ident = _file_build_id(entry.path)
        except OSError:
            continue
        if ident and ident not in index:
            index[ident] = entry.path
    with _lock:
        for old in [k for k in _folders if k[0] == folder]:
            del _folders[old]
        _folders[key] = index
    return index


def _file_build_id(file: str) -> bytes | None:
    with open(file, "rb") as f:
        def read(addr: int, length: int) -> bytes:
            f.seek(addr)
            data = f.read(length)
            if len(data) != length:
                raise ValueError(f"{file}: short read at {addr:#x}")
            return data
        # A file's PT_NOTE p_vaddr equals its p_offset for the images
        # linkers write (notes sit in the first, offset-0 segment).
        return build_id(read, 0)


def _table(file: str) -> HostSymbols | None:
    try:
        st = os.stat(file)
    except OSError:
        return None
    key = (file, st.st_mtime_ns, st.st_size)
    with _lock:
        if key in _tables:
            return _tables[key]
    table = _read_table(file) if st.st_size <= MAX_FILE_SIZE else None
    with _lock:
        if len(_tables) >= _CACHE_FILES:
            _tables.pop(next(iter(_tables)))
        _tables[key] = table
    return table


def _read_table(file: str) -> HostSymbols | None:
    """The functions and objects of `file`'s .symtab; None when it has
    none or does not parse."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile
    try:
        with open(file, "rb") as f:
            elf = ELFFile(f)
            loads = [seg["p_vaddr"] for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
            symtab = elf.get_section_by_name(".symtab")
            if not loads or symtab is None or symtab["sh_type"] != "SHT_SYMTAB":
                return None
            if symtab.num_symbols() > MAX_SYMBOLS:
                return None
            symbols = []
            for sym in symtab.iter_symbols():
                if sym["st_info"]["type"] not in ("STT_FUNC", "STT_OBJECT", "STT_GNU_IFUNC"):
                    continue
                if sym["st_shndx"] in ("SHN_UNDEF", "SHN_ABS") or not sym.name:
                    continue
                symbols.append(Symbol(sym["st_value"], sym["st_size"], sym.name))
    except (OSError, ELFError, ValueError, KeyError, struct.error):
        return None
    symbols.sort()
    return HostSymbols(file, min(loads) & ~0xFFF, symbols)
