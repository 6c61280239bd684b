"""Kernel types from DWARF (a debug vmlinux), through pyelftools, as ISF.

For kernels built without BTF (Debian's i386 kernels: `# CONFIG_DEBUG_INFO_BTF
is not set`), the types come from the DWARF of the kernel's debug image,
which Debian ships as `linux-image-<release>-dbg`
(`/usr/lib/debug/boot/vmlinux-<release>`). The ISF is the one btf.IsfTypes
writes from BTF, with the same mapping (see btf.py): typedefs and qualifiers
resolve to their target, base types by their GCC name plus the C spellings,
structs and unions as user types, bitfields at their storage unit, pointers
to functions, arrays with their count (0 when unbounded). Unnamed types are
"unnamed_<kind>_<DIE offset hex>".

DWARF repeats every type in each compilation unit that uses it; BTF is
deduplicated. Here the first definition of a name (per kind) is the type of
that name; a later definition of the same name with another size is
"<name>__<DIE offset hex>" (as BTF's differing layouts are "<name>__<id>").
A compilation unit is read at its top level only (pyelftools follows
DW_AT_sibling past function bodies); a struct's members are read only for the
definitions that become user types.

Contract: one DwarfTypes per file; not thread-safe. Every malformed piece of
DWARF raises DwarfError naming the file (never another exception).
"""

from __future__ import annotations

from elftools.common.exceptions import ELFError
from elftools.dwarf.die import DIE
from elftools.elf.elffile import ELFFile

from .btf import C_ALIASES, BtfError, anonymous_member, descriptor_from_spec

# DW_ATE_* encodings of base types.
ATE_BOOLEAN, ATE_FLOAT, ATE_SIGNED, ATE_SIGNED_CHAR, ATE_UNSIGNED, ATE_UNSIGNED_CHAR = 2, 4, 5, 6, 7, 8
ATE_UTF = 0x10

# Tags that only qualify or rename another type.
TRANSPARENT = {"DW_TAG_typedef", "DW_TAG_const_type", "DW_TAG_volatile_type",
               "DW_TAG_restrict_type", "DW_TAG_atomic_type", "DW_TAG_immutable_type"}
AGGREGATES = {"DW_TAG_structure_type": "struct", "DW_TAG_union_type": "union",
              "DW_TAG_class_type": "struct"}
DW_OP_PLUS_UCONST = 0x23

# Bounds on what a (possibly hostile) debug file may make this do.
MAX_ARRAY_DIMENSIONS = 16
MAX_TYPE_DEPTH = 256


class DwarfError(BtfError):
    """The file has no usable DWARF, or DWARF this reader cannot follow
    (the message names the file and what is wrong)."""


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class DwarfTypes:
    """DWARF turned into ISF `base_types`, `user_types`, `enums`, the types
    of global variables, and descriptors of C type specs."""

    def __init__(self, stream, name: str, pointer_size: int):
        self.name = name
        self.pointer_size = pointer_size
        try:
            elf = ELFFile(stream)
            if not elf.has_dwarf_info() or elf.get_section_by_name(".debug_info") is None:
                raise DwarfError(no_dwarf_message(name))
            self.dwarf = elf.get_dwarf_info(relocate_dwarf_sections=False)
        except (ELFError, ValueError) as e:
            raise DwarfError(f"{name}: cannot read its DWARF: {e}") from None
        self.base_types: dict[str, dict] = {}
        self.user_types: dict[str, dict] = {}
        self.enums: dict[str, dict] = {}
        self.compile_units = 0
        self._descriptors: dict[int, dict] = {}
        # (kind, name) -> (offset, size) of the first definition.
        self._first: dict[tuple[str, str], tuple[int, int]] = {}
        self._typedefs: dict[str, int] = {}   # name -> offset of the first typedef
        self._variables: dict[str, int] = {}  # name -> offset of the first typed definition
        self._declared: dict[str, int] = {}   # name -> offset of the first typed declaration
        self._pending: list[tuple[str, int]] = []  # (ISF name, DIE offset) to define
        self._defined: set[str] = set()
        try:
            self._index()
            self._add_default_base_types()
            for (kind, type_name), (offset, _) in list(self._first.items()):
                if kind in ("struct", "union"):
                    self._want(type_name, offset)
                elif kind == "enum":
                    self._define_enum(type_name, self._die(offset))
            self._define_pending()
        except DwarfError:
            raise
        except (ELFError, KeyError, IndexError, ValueError, TypeError, AttributeError,
                AssertionError, RecursionError) as e:
            raise DwarfError(f"{name}: malformed DWARF ({type(e).__name__}: {e})") from None

    # -- reading

    def _die(self, offset: int) -> DIE:
        return self.dwarf.get_DIE_from_refaddr(offset)

    @staticmethod
    def _attr(die: DIE, name: str, default=None):
        attr = die.attributes.get(name)
        return default if attr is None else attr.value

    def _name(self, die: DIE) -> str | None:
        value = self._attr(die, "DW_AT_name")
        return None if value is None else _text(value)

    def _type_of(self, die: DIE) -> DIE | None:
        if "DW_AT_type" not in die.attributes:
            return None
        return die.get_DIE_from_attribute("DW_AT_type")

    def _index(self) -> None:
        """One pass over every compilation unit's top-level DIEs."""
        for cu in self.dwarf.iter_CUs():
            self.compile_units += 1
            top = cu.get_top_DIE()
            for die in top.iter_children():
                tag = die.tag
                if tag in AGGREGATES or tag == "DW_TAG_enumeration_type":
                    type_name = self._name(die)
                    if type_name is None or "DW_AT_declaration" in die.attributes:
                        continue
                    kind = AGGREGATES.get(tag, "enum")
                    self._first.setdefault((kind, type_name),
                                           (die.offset, self._attr(die, "DW_AT_byte_size", 0)))
                elif tag == "DW_TAG_typedef":
                    type_name = self._name(die)
                    if type_name is not None:
                        self._typedefs.setdefault(type_name, die.offset)
                elif tag == "DW_TAG_base_type":
                    self._add_base_type(die)
                elif tag == "DW_TAG_variable":
                    var = self._name(die)
                    if var is not None and "DW_AT_type" in die.attributes:
                        # A definition's type (int x[4]) over a declaration's
                        # (extern int x[]).
                        if "DW_AT_declaration" in die.attributes:
                            self._declared.setdefault(var, die.offset)
                        else:
                            self._variables.setdefault(var, die.offset)
            # pyelftools keeps every CU it parsed; the types needed later are
            # read again by offset.
            cu._dielist.clear()
            cu._diemap.clear()

    # -- base types

    def _add_base_type(self, die: DIE) -> None:
        type_name = self._name(die)
        if type_name is None or type_name in self.base_types:
            return
        size = self._attr(die, "DW_AT_byte_size", 0)
        encoding = self._attr(die, "DW_AT_encoding", ATE_SIGNED)
        if encoding == ATE_BOOLEAN:
            kind, signed = "bool", False
        elif encoding == ATE_FLOAT:
            kind, signed = "float", True
        elif encoding in (ATE_SIGNED_CHAR, ATE_UNSIGNED_CHAR) or (size == 1 and "char" in type_name):
            kind, signed = "char", encoding == ATE_SIGNED_CHAR
        else:
            kind, signed = "int", encoding == ATE_SIGNED
        self.base_types[type_name] = {"kind": kind, "size": size, "signed": signed, "endian": "little"}

    def _add_default_base_types(self) -> None:
        self.base_types["void"] = {"kind": "void", "size": 0, "signed": False, "endian": "little"}
        self.base_types["pointer"] = {"kind": "int", "size": self.pointer_size, "signed": False,
                                      "endian": "little"}
        defaults = {
            "char": ("char", 1, True), "signed char": ("char", 1, True),
            "unsigned char": ("char", 1, False), "short int": ("int", 2, True),
            "short unsigned int": ("int", 2, False), "int": ("int", 4, True),
            "unsigned int": ("int", 4, False), "long int": ("int", self.pointer_size, True),
            "long unsigned int": ("int", self.pointer_size, False),
            "long long int": ("int", 8, True), "long long unsigned int": ("int", 8, False),
            "_Bool": ("bool", 1, False),
        }
        for type_name, (kind, size, signed) in defaults.items():
            self.base_types.setdefault(type_name, {"kind": kind, "size": size, "signed": signed,
                                                   "endian": "little"})
        for alias, target in C_ALIASES.items():
            self.base_types.setdefault(alias, dict(self.base_types[target]))

    def _int_base_name(self, size: int, signed: bool) -> str:
        by_size = {1: ("signed char", "unsigned char"), 2: ("short int", "short unsigned int"),
                   4: ("int", "unsigned int"), 8: ("long long int", "long long unsigned int")}
        if size == self.pointer_size:
            by_size[size] = ("long int", "long unsigned int")
        if size not in by_size:
            type_name = f"{'' if signed else 'unsigned '}int{size * 8}"
            self.base_types.setdefault(type_name, {"kind": "int", "size": size, "signed": signed,
                                                   "endian": "little"})
            return type_name
        return by_size[size][0 if signed else 1]

    # -- names of aggregates and enums

    def _aggregate_name(self, die: DIE, kind: str) -> str:
        """The ISF name of the struct/union/enum DIE (queued for definition
        when it is the one that defines that name)."""
        type_name = self._name(die)
        if type_name is None:
            isf_name = f"unnamed_{kind}_{die.offset:x}"
            self._want(isf_name, die.offset, enum=kind == "enum")
            return isf_name
        first = self._first.get((kind, type_name))
        if "DW_AT_declaration" in die.attributes or first is None:
            if first is None and kind != "enum" and type_name not in self.user_types:
                # Declared, never defined: an empty type so that pointers resolve.
                self.user_types[type_name] = {"kind": kind, "size": 0, "fields": {}}
                self._defined.add(type_name)
            return type_name
        if first[0] == die.offset or first[1] == self._attr(die, "DW_AT_byte_size", 0):
            return type_name
        isf_name = f"{type_name}__{die.offset:x}"
        self._want(isf_name, die.offset, enum=kind == "enum")
        return isf_name

    def _want(self, isf_name: str, offset: int, enum: bool = False) -> None:
        if isf_name in self._defined:
            return
        self._defined.add(isf_name)
        if enum:
            self._define_enum(isf_name, self._die(offset))
        else:
            self._pending.append((isf_name, offset))

    def _define_pending(self) -> None:
        while self._pending:
            isf_name, offset = self._pending.pop()
            self._define_aggregate(isf_name, self._die(offset))

    # -- enums

    def _define_enum(self, isf_name: str, die: DIE) -> None:
        self._defined.add(isf_name)
        constants = {}
        for child in die.iter_children():
            if child.tag == "DW_TAG_enumerator":
                constants[_text(self._attr(child, "DW_AT_name", ""))] = \
                    int(self._attr(child, "DW_AT_const_value", 0))
        size = self._attr(die, "DW_AT_byte_size", 4) or 4
        underlying = self._type_of(die)
        if underlying is not None and underlying.tag == "DW_TAG_base_type":
            signed = self._attr(underlying, "DW_AT_encoding") in (ATE_SIGNED, ATE_SIGNED_CHAR)
        else:
            signed = any(v < 0 for v in constants.values())
        self.enums[isf_name] = {"size": size, "base": self._int_base_name(size, signed),
                                "constants": constants}

    # -- user types

    def _member_offset(self, member: DIE) -> int:
        attr = member.attributes.get("DW_AT_data_member_location")
        if attr is None:
            return 0
        value = attr.value
        if isinstance(value, int):
            return value
        # An expression: DW_OP_plus_uconst ULEB128 (what GCC writes).
        data = list(value)
        if data and data[0] == DW_OP_PLUS_UCONST:
            result, shift = 0, 0
            for byte in data[1:]:
                result |= (byte & 0x7F) << shift
                shift += 7
                if not byte & 0x80:
                    return result
        raise DwarfError(f"{self.name}: member at DIE {member.offset:#x} has a location expression "
                         f"this reader does not evaluate ({data[:8]})")

    def _define_aggregate(self, isf_name: str, die: DIE) -> None:
        kind = AGGREGATES[die.tag]
        fields: dict[str, dict] = {}
        for member in die.iter_children():
            if member.tag != "DW_TAG_member":
                continue
            member_type = self._type_of(member)
            byte_offset = self._member_offset(member)
            bit_size = self._attr(member, "DW_AT_bit_size", 0)
            if "DW_AT_data_bit_offset" in member.attributes:
                bit_offset = self._attr(member, "DW_AT_data_bit_offset")
            elif bit_size and "DW_AT_bit_offset" in member.attributes:
                # DWARF 2/3: from the most significant bit of a storage unit
                # of DW_AT_byte_size at the member's location.
                unit = self._attr(member, "DW_AT_byte_size") or self._byte_size(member_type) or 4
                bit_offset = 8 * byte_offset + 8 * unit - self._attr(member, "DW_AT_bit_offset") \
                    - bit_size
            else:
                bit_offset = 8 * byte_offset
            field = self._field(member_type, bit_offset, bit_size)
            member_name = self._name(member)
            if member_name is None:
                target = self._strip(member_type)
                if target is None or target.tag not in AGGREGATES:
                    continue  # unnamed bitfield padding
                member_name = anonymous_member(fields, field)
            fields[member_name] = field
        self.user_types[isf_name] = {"kind": kind, "size": self._attr(die, "DW_AT_byte_size", 0),
                                     "fields": fields}

    def _strip(self, die: DIE | None) -> DIE | None:
        for _ in range(MAX_TYPE_DEPTH):
            if die is None or die.tag not in TRANSPARENT:
                return die
            die = self._type_of(die)
        raise DwarfError(f"{self.name}: a typedef chain at DIE {die.offset:#x} is longer than "
                         f"{MAX_TYPE_DEPTH}")

    def _byte_size(self, die: DIE | None) -> int:
        target = self._strip(die)
        return 0 if target is None else self._attr(target, "DW_AT_byte_size", 0)

    def _field(self, member_type: DIE | None, bit_offset: int, bit_size: int) -> dict:
        target = self._strip(member_type)
        if bit_size and target is not None and target.tag in ("DW_TAG_base_type",
                                                               "DW_TAG_enumeration_type"):
            unit_size = self._attr(target, "DW_AT_byte_size", 4) or 4
            unit = (bit_offset // (8 * unit_size)) * unit_size
            position = bit_offset - 8 * unit
            if position + bit_size > 8 * unit_size:  # packed across units
                unit, position = bit_offset // 8, bit_offset % 8
            return {"offset": unit, "type": {"kind": "bitfield", "bit_position": position,
                                             "bit_length": bit_size,
                                             "type": self.descriptor(target)}}
        return {"offset": bit_offset // 8, "type": self.descriptor(member_type)}

    # -- descriptors

    def descriptor(self, die: DIE | None, depth: int = 0) -> dict:
        """The ISF type descriptor of the type DIE (None: void)."""
        if die is None:
            return {"kind": "base", "name": "void"}
        found = self._descriptors.get(die.offset)
        if found is not None:
            return found
        if depth > MAX_TYPE_DEPTH:
            raise DwarfError(f"{self.name}: type at DIE {die.offset:#x} nests deeper than "
                             f"{MAX_TYPE_DEPTH}")
        tag = die.tag
        if tag in TRANSPARENT:
            result = self.descriptor(self._type_of(die), depth + 1)
        elif tag == "DW_TAG_base_type":
            self._add_base_type(die)
            result = {"kind": "base", "name": self._name(die) or "void"}
        elif tag in ("DW_TAG_pointer_type", "DW_TAG_reference_type",
                     "DW_TAG_rvalue_reference_type"):
            target = self._strip(self._type_of(die))
            if target is not None and target.tag == "DW_TAG_subroutine_type":
                result = {"kind": "pointer", "subtype": {"kind": "function"}}
            else:
                result = {"kind": "pointer",
                          "subtype": self.descriptor(self._type_of(die), depth + 1)}
        elif tag == "DW_TAG_array_type":
            counts = []
            for child in die.iter_children():
                if child.tag == "DW_TAG_subrange_type":
                    if "DW_AT_count" in child.attributes:
                        count = self._attr(child, "DW_AT_count")
                    elif "DW_AT_upper_bound" in child.attributes:
                        count = self._attr(child, "DW_AT_upper_bound") + 1 \
                            - self._attr(child, "DW_AT_lower_bound", 0)
                    else:
                        count = 0
                    counts.append(count if isinstance(count, int) and count > 0 else 0)
                    if len(counts) > MAX_ARRAY_DIMENSIONS:
                        raise DwarfError(f"{self.name}: array at DIE {die.offset:#x} has more "
                                         f"than {MAX_ARRAY_DIMENSIONS} dimensions")
            result = self.descriptor(self._type_of(die), depth + 1)
            for count in reversed(counts or [0]):
                result = {"kind": "array", "count": count, "subtype": result}
        elif tag in AGGREGATES:
            kind = AGGREGATES[tag]
            result = {"kind": kind, "name": self._aggregate_name(die, kind)}
        elif tag == "DW_TAG_enumeration_type":
            result = {"kind": "enum", "name": self._aggregate_name(die, "enum")}
        elif tag == "DW_TAG_subroutine_type":
            result = {"kind": "function"}
        else:
            result = {"kind": "base", "name": "void"}
        self._descriptors[die.offset] = result
        return result

    def variables(self) -> dict[str, dict]:
        """Global variable name -> the descriptor of its type."""
        out = {}
        for var, offset in {**self._declared, **self._variables}.items():
            out[var] = self.descriptor(self._type_of(self._die(offset)))
        self._define_pending()
        return out

    def descriptor_for(self, spec: str) -> dict:
        """Descriptor of a C type written as SPEC (as btf.descriptor_from_spec)."""
        result = descriptor_from_spec(spec, self._named)
        self._define_pending()
        return result

    def _named(self, text: str, spec: str) -> dict:
        kind, _, type_name = text.partition(" ")
        if kind in ("struct", "union", "enum") and type_name:
            if (kind, type_name) in self._first or type_name in self.user_types:
                return {"kind": kind, "name": type_name}
            raise DwarfError(f"{self.name}: no {kind} {type_name} in DWARF (for {spec!r})")
        if text == "void":
            return {"kind": "base", "name": "void"}
        text = C_ALIASES.get(text, text)
        if text in self._typedefs:
            return self.descriptor(self._die(self._typedefs[text]))
        if text in self.base_types:
            return {"kind": "base", "name": text}
        raise DwarfError(f"{self.name}: no type {text!r} in DWARF (for {spec!r})")


def no_dwarf_message(name: str) -> str:
    return (f"{name}: no DWARF debug information (.debug_info): give the kernel's debug "
            f"image, which Debian ships in linux-image-<release>-dbg as "
            f"/usr/lib/debug/boot/vmlinux-<release>")
