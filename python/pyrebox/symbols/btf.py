"""Kernel types from BTF (the `.BTF` section), through libbpf, as ISF.

libbpf (`libbpf.so.1`, Debian `libbpf1`) validates the blob and indexes it:
`btf__new` on the section bytes, `btf__type_cnt`, `btf__type_by_id`,
`btf__name_by_offset`.  Each `struct btf_type` it hands back is read in place
(uapi/linux/btf.h layout: 12-byte header, then a kind-specific tail), in host
byte order: libbpf converts a foreign-endian blob when it loads it.

Mapping to Volatility 3's ISF (as dwarf2json writes it):
  - typedefs resolve to their target; const/volatile/restrict/type tags are
    dropped;
  - INT/FLOAT become base types by their C name (GCC's spelling, e.g.
    "long unsigned int"), plus "void", "pointer" and the usual C spellings
    ("unsigned long", "long", ...) as aliases;
  - structs and unions become user types; anonymous ones are named
    "unnamed_<kind>_<BTF id>", anonymous members "unnamed_field_<offset hex>"
    with "anonymous": true (ISF 6.2 lifts their fields into the parent);
  - a struct name defined more than once with different layouts keeps the
    plain name for the first definition; the others are "<name>__<BTF id>"
    so that every reference still points at the right layout;
  - forward declarations with no definition become empty user types, so
    pointers to them resolve;
  - bitfields are {"kind": "bitfield", "bit_position", "bit_length", "type"}
    at the offset of the storage unit of their base type's size;
  - pointers to functions are pointers to {"kind": "function"}; arrays carry
    their count (0 for flexible arrays).

Contract: one `Btf` per blob; not thread-safe (libbpf's object is not).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import struct
from dataclasses import dataclass

from .kernel_image import KernelImageError

# BTF kinds (uapi/linux/btf.h).
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4

# Kinds that only qualify or rename another type.
TRANSPARENT = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}

# Bytes after the 12-byte header: fixed, or per vlen item.
_FIXED_TAIL = {INT: 4, ARRAY: 12, VAR: 4, DECL_TAG: 4}
_ITEM_TAIL = {STRUCT: 12, UNION: 12, ENUM: 8, ENUM64: 12, FUNC_PROTO: 8, DATASEC: 12}

# Common C spellings of GCC's base type names: Volatility and scripts ask for
# "unsigned long" or "long" while BTF (like DWARF) says "long unsigned int".
C_ALIASES = {
    "long": "long int",
    "unsigned long": "long unsigned int",
    "short": "short int",
    "unsigned short": "short unsigned int",
    "long long": "long long int",
    "unsigned long long": "long long unsigned int",
    "unsigned": "unsigned int",
    "bool": "_Bool",
}


class BtfError(KernelImageError):
    """BTF missing, unreadable, or a type that cannot be resolved."""


# A kernel's BTF is a few MB (Debian 6.1: 4.4 MB, about 120,000 types); these
# caps leave a wide margin and bound what a hostile blob makes this module
# allocate (a Python object per type and member).
MAX_BTF_SIZE = 64 << 20
MAX_BTF_TYPES = 1 << 20


@dataclass(frozen=True)
class BtfType:
    id: int
    kind: int
    name: str
    vlen: int
    kflag: bool
    size_or_type: int
    tail: bytes  # kind-specific data after the header


class _Libbpf:
    """The few libbpf functions used, with their C signatures."""

    _lib = None

    @classmethod
    def get(cls):
        if cls._lib is None:
            try:
                lib = ctypes.CDLL("libbpf.so.1")
            except OSError:
                try:
                    lib = ctypes.CDLL(ctypes.util.find_library("bpf") or "libbpf.so")
                except OSError:
                    raise BtfError("libbpf is not installed (Debian package libbpf1)") from None
            lib.btf__new.restype = ctypes.c_void_p
            lib.btf__new.argtypes = [ctypes.c_char_p, ctypes.c_uint32]
            lib.btf__free.restype = None
            lib.btf__free.argtypes = [ctypes.c_void_p]
            lib.btf__type_cnt.restype = ctypes.c_uint32
            lib.btf__type_cnt.argtypes = [ctypes.c_void_p]
            lib.btf__type_by_id.restype = ctypes.c_void_p
            lib.btf__type_by_id.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            lib.btf__name_by_offset.restype = ctypes.c_char_p
            lib.btf__name_by_offset.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
            lib.btf__pointer_size.restype = ctypes.c_size_t
            lib.btf__pointer_size.argtypes = [ctypes.c_void_p]
            lib.libbpf_set_print.restype = ctypes.c_void_p
            lib.libbpf_set_print.argtypes = [_PRINT_FN]
            # libbpf's messages ("Invalid BTF total size", ...) would go to
            # stderr: they are kept and become part of our one message.
            lib.libbpf_set_print(_print_callback)
            cls._lib = lib
        return cls._lib


# libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *, va_list);
# on x86-64 (and the other ABIs we run on) a va_list argument is a pointer.
_PRINT_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p)
_libbpf_messages: list[str] = []


def _format_va(fmt: bytes, args: int) -> str:
    libc = ctypes.CDLL(None)
    libc.vsnprintf.restype = ctypes.c_int
    libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
    buffer = ctypes.create_string_buffer(512)
    libc.vsnprintf(buffer, len(buffer), fmt, args)
    return buffer.value.decode("utf-8", "replace").strip()


@_PRINT_FN
def _print_callback(level, fmt, args):
    # Every level: libbpf says why a blob is invalid at its debug level.
    try:
        _libbpf_messages.append(_format_va(fmt, args))
    except Exception:  # noqa: BLE001 - never unwind into libbpf
        pass
    return 0


class Btf:
    """The types of one BTF blob, read once through libbpf."""

    def __init__(self, blob: bytes, name: str = "<BTF>", pointer_size: int = 8,
                 where: str = "the .BTF section", max_size: int = MAX_BTF_SIZE,
                 max_types: int = MAX_BTF_TYPES):
        """WHERE names the blob in messages ("the BTF blob at offset 0x...").
        A blob over MAX_SIZE bytes or MAX_TYPES types is refused (BtfError)."""
        if len(blob) > max_size:
            raise BtfError(f"{name}: {where} is {len(blob)} bytes, more than the {max_size >> 20} MiB a "
                           "kernel's BTF may be (a Debian kernel's is about 5 MB): not a kernel's BTF")
        lib = _Libbpf.get()
        ctypes.set_errno(0)
        del _libbpf_messages[:]
        handle = lib.btf__new(blob, len(blob))
        # libbpf >= 1.0 returns NULL and sets errno; older ones an ERR_PTR.
        if not handle or handle >= (1 << 64) - 4095:
            code = ctypes.get_errno() or (((1 << 64) - handle) if handle else errno.EINVAL)
            said = "; ".join(m.removeprefix("libbpf: ") for m in _libbpf_messages if m)
            problem = f"{said} ({os.strerror(code)})" if said else os.strerror(code)
            raise BtfError(f"{name}: {where} is corrupt: libbpf: {problem}")
        self.name = name
        try:
            self.pointer_size = lib.btf__pointer_size(handle) or pointer_size
            count = lib.btf__type_cnt(handle)
            if count - 1 > max_types:
                raise BtfError(f"{name}: {where} has {count - 1} types, more than the {max_types} a kernel's "
                               "BTF may have (a Debian kernel's has about 120,000): not a kernel's BTF")
            names: dict[int, str] = {}

            def name_at(offset: int) -> str:
                text = names.get(offset)
                if text is None:
                    raw = lib.btf__name_by_offset(handle, offset)
                    text = names[offset] = raw.decode("utf-8", "replace") if raw else ""
                return text

            types: list[BtfType | None] = [None]
            for type_id in range(1, count):
                address = lib.btf__type_by_id(handle, type_id)
                name_off, info, size_or_type = struct.unpack(
                    "=III", ctypes.string_at(address, 12)
                )
                kind = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                tail_size = _FIXED_TAIL.get(kind, 0) + _ITEM_TAIL.get(kind, 0) * vlen
                tail = ctypes.string_at(address + 12, tail_size) if tail_size else b""
                types.append(
                    BtfType(type_id, kind, name_at(name_off), vlen, bool(info >> 31), size_or_type, tail)
                )
            self.types = types
            # Member and enumerator names are resolved now, while libbpf's
            # string table is alive.
            self._member_names = {}
            for t in types[1:]:
                if t.kind in (STRUCT, UNION, ENUM, ENUM64) and t.vlen:
                    step = _ITEM_TAIL[t.kind]
                    self._member_names[t.id] = [
                        name_at(struct.unpack_from("=I", t.tail, i * step)[0]) for i in range(t.vlen)
                    ]
        finally:
            lib.btf__free(handle)

    @property
    def type_count(self) -> int:
        """libbpf's btf__type_cnt: type ids run 0..type_count-1, 0 being void."""
        return len(self.types)

    # ---------------------------------------------------------- raw access

    def members(self, t: BtfType):
        """(name, type id, bit offset, bitfield size or 0) of a struct/union."""
        names = self._member_names.get(t.id, [])
        for i in range(t.vlen):
            _, member_type, offset = struct.unpack_from("=III", t.tail, 12 * i)
            if t.kflag:
                yield names[i], member_type, offset & 0xFFFFFF, offset >> 24
            else:
                yield names[i], member_type, offset, 0

    def enumerators(self, t: BtfType):
        """(name, value) of an ENUM or ENUM64, with the sign its flag says."""
        names = self._member_names.get(t.id, [])
        for i in range(t.vlen):
            if t.kind == ENUM:
                (value,) = struct.unpack_from("=i" if t.kflag else "=I", t.tail, 8 * i + 4)
            else:
                low, high = struct.unpack_from("=II", t.tail, 12 * i + 4)
                value = (high << 32) | low
                if t.kflag and value >= 1 << 63:
                    value -= 1 << 64
            yield names[i], value

    def int_encoding(self, t: BtfType) -> tuple[int, int, int]:
        """(encoding flags, bit offset, bit count) of an INT."""
        (word,) = struct.unpack_from("=I", t.tail)
        return (word >> 24) & 0x0F, (word >> 16) & 0xFF, word & 0xFF

    def array_info(self, t: BtfType) -> tuple[int, int]:
        """(element type id, element count) of an ARRAY."""
        element, _, count = struct.unpack_from("=III", t.tail)
        return element, count

    def strip(self, type_id: int) -> int:
        """TYPE_ID with typedefs and qualifiers removed."""
        seen = 0
        while type_id and self.types[type_id].kind in TRANSPARENT:
            type_id = self.types[type_id].size_or_type
            seen += 1
            if seen > 64:
                raise BtfError(f"{self.name}: typedef loop at type {type_id}")
        return type_id

    def variables(self) -> dict[str, int]:
        """name -> type id of every BTF VAR (the kernel's per-CPU variables)."""
        return {t.name: t.size_or_type for t in self.types[1:] if t.kind == VAR and t.name}


# ---------------------------------------------------------------------- ISF


class IsfTypes:
    """BTF turned into ISF `base_types`, `user_types`, `enums`, and type
    descriptors for symbols."""

    def __init__(self, btf: Btf):
        self.btf = btf
        self.base_types: dict[str, dict] = {}
        self.user_types: dict[str, dict] = {}
        self.enums: dict[str, dict] = {}
        self._descriptors: dict[int, dict] = {}
        self._aggregate_names: dict[int, str] = {}
        self._enum_names: dict[int, str] = {}
        self._name_index: dict[str, list[int]] = {}
        self._name_aggregates()
        self._add_base_types()
        self._add_enums()
        self._add_user_types()

    # -- names

    def _name_aggregates(self) -> None:
        btf = self.btf
        first: dict[tuple[str, str], tuple] = {}  # (namespace, name) -> first definition's layout
        for t in btf.types[1:]:
            if t.name:
                self._name_index.setdefault(t.name, []).append(t.id)
            if t.kind in (STRUCT, UNION):
                names, namespace = self._aggregate_names, "aggregate"
                unnamed = f"unnamed_{'struct' if t.kind == STRUCT else 'union'}_{t.id}"
            elif t.kind in (ENUM, ENUM64):
                names, namespace = self._enum_names, "enum"
                unnamed = f"unnamed_enum_{t.id}"
                if t.name and t.vlen == 0:
                    names[t.id] = t.name  # a forward declaration
                    continue
            else:
                continue
            if not t.name:
                names[t.id] = unnamed
                continue
            layout = (t.kind, t.size_or_type, t.vlen, t.tail)
            known = first.setdefault((namespace, t.name), layout)
            names[t.id] = t.name if known == layout else f"{t.name}__{t.id}"
        # Forward declarations point at the definition, or at an empty type.
        for t in btf.types[1:]:
            if t.kind == FWD:
                self._aggregate_names[t.id] = t.name
                if ("aggregate", t.name) not in first:
                    self.user_types.setdefault(
                        t.name, {"kind": "union" if t.kflag else "struct", "size": 0, "fields": {}}
                    )

    # -- base types

    def _add_base_types(self) -> None:
        btf = self.btf
        self.base_types["void"] = {"kind": "void", "size": 0, "signed": False, "endian": "little"}
        self.base_types["pointer"] = {"kind": "int", "size": btf.pointer_size, "signed": False, "endian": "little"}
        for t in btf.types[1:]:
            if t.kind == INT and t.name not in self.base_types:
                encoding, _, _ = btf.int_encoding(t)
                if encoding & INT_BOOL:
                    kind = "bool"
                elif encoding & INT_CHAR or (t.size_or_type == 1 and "char" in t.name):
                    kind = "char"
                else:
                    kind = "int"
                signed = bool(encoding & INT_SIGNED)
                self.base_types[t.name] = {"kind": kind, "size": t.size_or_type, "signed": signed, "endian": "little"}
            elif t.kind == FLOAT and t.name not in self.base_types:
                self.base_types[t.name] = {"kind": "float", "size": t.size_or_type, "signed": True, "endian": "little"}
        # C spellings; sizes from the BTF's own types, or this ABI's.
        defaults = {
            "char": ("char", 1, True),
            "signed char": ("char", 1, True),
            "unsigned char": ("char", 1, False),
            "short int": ("int", 2, True),
            "short unsigned int": ("int", 2, False),
            "int": ("int", 4, True),
            "unsigned int": ("int", 4, False),
            "long int": ("int", btf.pointer_size, True),
            "long unsigned int": ("int", btf.pointer_size, False),
            "long long int": ("int", 8, True),
            "long long unsigned int": ("int", 8, False),
            "_Bool": ("bool", 1, False),
        }
        for name, (kind, size, signed) in defaults.items():
            self.base_types.setdefault(name, {"kind": kind, "size": size, "signed": signed, "endian": "little"})
        for alias, target in C_ALIASES.items():
            self.base_types.setdefault(alias, dict(self.base_types[target]))

    def _int_base_name(self, size: int, signed: bool) -> str:
        by_size = {
            1: ("signed char", "unsigned char"),
            2: ("short int", "short unsigned int"),
            4: ("int", "unsigned int"),
            8: ("long long int", "long long unsigned int"),
        }
        if size == self.btf.pointer_size:
            by_size[size] = ("long int", "long unsigned int")
        if size not in by_size:
            name = f"{'' if signed else 'unsigned '}int{size * 8}"
            self.base_types.setdefault(name, {"kind": "int", "size": size, "signed": signed, "endian": "little"})
            return name
        return by_size[size][0 if signed else 1]

    # -- enums

    def _add_enums(self) -> None:
        btf = self.btf
        for t in btf.types[1:]:
            if t.kind not in (ENUM, ENUM64):
                continue
            name = self._enum_names[t.id]
            constants = dict(btf.enumerators(t))
            if name in self.enums and (not constants or name == t.name):
                continue  # a forward declaration, or the same enum again
            signed = t.kflag or any(v < 0 for v in constants.values())
            size = t.size_or_type or 4
            self.enums[name] = {"size": size, "base": self._int_base_name(size, signed), "constants": constants}

    # -- user types

    def _add_user_types(self) -> None:
        btf = self.btf
        for t in btf.types[1:]:
            if t.kind not in (STRUCT, UNION):
                continue
            name = self._aggregate_names[t.id]
            if name in self.user_types:
                continue  # the same layout again
            fields: dict[str, dict] = {}
            for member_name, member_type, bit_offset, bit_size in btf.members(t):
                field = self._field(member_type, bit_offset, bit_size)
                if field is None:
                    continue
                if not member_name:
                    if btf.types[btf.strip(member_type)].kind not in (STRUCT, UNION):
                        continue  # unnamed bitfield padding
                    member_name = anonymous_member(fields, field)
                fields[member_name] = field
            self.user_types[name] = {
                "kind": "struct" if t.kind == STRUCT else "union",
                "size": t.size_or_type,
                "fields": fields,
            }

    def _field(self, member_type: int, bit_offset: int, bit_size: int) -> dict | None:
        btf = self.btf
        target = btf.types[btf.strip(member_type)] if btf.strip(member_type) else None
        if not bit_size and target is not None and target.kind == INT:
            _, int_offset, int_bits = btf.int_encoding(target)
            if int_offset or int_bits != 8 * target.size_or_type:
                bit_offset, bit_size = bit_offset + int_offset, int_bits  # pre-kflag bitfield
        if bit_size and target is not None and target.kind in (INT, ENUM, ENUM64):
            unit_size = target.size_or_type or 4
            unit = (bit_offset // (8 * unit_size)) * unit_size
            position = bit_offset - 8 * unit
            if position + bit_size > 8 * unit_size:  # packed across units
                unit, position = bit_offset // 8, bit_offset % 8
            return {
                "offset": unit,
                "type": {
                    "kind": "bitfield",
                    "bit_position": position,
                    "bit_length": bit_size,
                    "type": self.descriptor(target.id),
                },
            }
        return {"offset": bit_offset // 8, "type": self.descriptor(member_type)}

    # -- descriptors

    def descriptor(self, type_id: int) -> dict:
        """The ISF type descriptor of BTF type TYPE_ID."""
        found = self._descriptors.get(type_id)
        if found is not None:
            return found
        btf = self.btf
        if type_id == 0:
            result = {"kind": "base", "name": "void"}
        else:
            t = btf.types[type_id]
            if t.kind in TRANSPARENT:
                result = self.descriptor(btf.strip(type_id))
            elif t.kind in (INT, FLOAT):
                result = {"kind": "base", "name": t.name}
            elif t.kind == PTR:
                target = btf.strip(t.size_or_type)
                if target and btf.types[target].kind in (FUNC_PROTO, FUNC):
                    result = {"kind": "pointer", "subtype": {"kind": "function"}}
                else:
                    result = {"kind": "pointer", "subtype": self.descriptor(t.size_or_type)}
            elif t.kind == ARRAY:
                element, count = btf.array_info(t)
                result = {"kind": "array", "count": count, "subtype": self.descriptor(element)}
            elif t.kind in (STRUCT, UNION):
                kind = "struct" if t.kind == STRUCT else "union"
                result = {"kind": kind, "name": self._aggregate_names[t.id]}
            elif t.kind == FWD:
                result = {"kind": "union" if t.kflag else "struct", "name": self._aggregate_names[t.id]}
            elif t.kind in (ENUM, ENUM64):
                result = {"kind": "enum", "name": self._enum_names[t.id]}
            elif t.kind in (FUNC, FUNC_PROTO):
                result = {"kind": "function"}
            elif t.kind == VAR:
                result = self.descriptor(t.size_or_type)
            else:
                result = {"kind": "base", "name": "void"}
        self._descriptors[type_id] = result
        return result

    def descriptor_for(self, spec: str) -> dict:
        """Descriptor of a C type written as SPEC (see descriptor_from_spec)."""
        return descriptor_from_spec(spec, self._named)

    def _named(self, text: str, spec: str) -> dict:
        kind, _, name = text.partition(" ")
        if kind in ("struct", "union") and name:
            btf_kind = STRUCT if kind == "struct" else UNION
            for type_id in self._name_index.get(name, []):
                if self.btf.types[type_id].kind == btf_kind:
                    return {"kind": kind, "name": self._aggregate_names[type_id]}
            raise BtfError(f"{self.btf.name}: no {kind} {name} in BTF (for {spec!r})")
        if kind == "enum" and name:
            for type_id in self._name_index.get(name, []):
                if self.btf.types[type_id].kind in (ENUM, ENUM64):
                    return {"kind": "enum", "name": self._enum_names[type_id]}
            raise BtfError(f"{self.btf.name}: no enum {name} in BTF (for {spec!r})")
        if text == "void":
            return {"kind": "base", "name": "void"}
        text = C_ALIASES.get(text, text)  # "unsigned long" -> "long unsigned int"
        for type_id in self._name_index.get(text, []):
            if self.btf.types[type_id].kind in (TYPEDEF, INT, FLOAT):
                return self.descriptor(type_id)
        if text in self.base_types:
            return {"kind": "base", "name": text}
        raise BtfError(f"{self.btf.name}: no type {text!r} in BTF (for {spec!r})")


def descriptor_from_spec(spec: str, named) -> dict:
    """Descriptor of a C type written as SPEC: "[struct|union|enum] NAME",
    then any number of "*", then optionally "[COUNT]" (e.g.
    "struct task_struct", "char[42]", "struct list_head *", "pgd_t[512]");
    NAMED(text, spec) gives the descriptor of the NAME part."""
    text = spec.strip()
    count = None
    if text.endswith("]"):
        text, _, number = text[:-1].rpartition("[")
        count = int(number)
        text = text.strip()
    stars = len(text) - len(text.rstrip("*"))
    text = text.rstrip("*").strip()
    result = named(text, spec)
    for _ in range(stars):
        result = {"kind": "pointer", "subtype": result}
    if count is not None:
        result = {"kind": "array", "count": count, "subtype": result}
    return result


def anonymous_member(fields: dict, field: dict) -> str:
    """Marks FIELD, an unnamed struct/union member, anonymous (ISF 6.2 lifts
    its fields into the parent) and returns its name among FIELDS:
    "unnamed_field_<offset hex>", with _N when taken."""
    field["anonymous"] = True
    name = f"unnamed_field_{field['offset']:x}"
    unique, n = name, 1
    while unique in fields:
        unique, n = f"{name}_{n}", n + 1
    return unique
