"""Assemble a Volatility 3 ISF (Intermediate Symbol Format) for a kernel.

Types come from the image's `.BTF` section (btf.py), addresses from its
kallsyms tables (kallsyms.py), the banner from `linux_banner` itself.  The
kernel is a kernel image file (vmlinuz, vmlinux) or the kernel found in a
memory image of a running guest (memory_image.py): both give the same ISF.  The
result follows what dwarf2json writes (ISF format 6.2.0, which Volatility 3
reads with anonymous-member flattening):

  - every kallsyms name is a symbol at its link-time address; a name the
    kernel uses more than once (static symbols of different files) keeps the
    global one, else the lowest address;
  - symbols have a type: from a BTF VAR when there is one (per-CPU
    variables), from SYMBOL_TYPES for the variables Volatility's Linux
    support reads through `object_from_symbol`, else "void" as dwarf2json
    gives symbol-table-only symbols (so `object_from_symbol(...).vol.offset`
    works for any of them);
  - `linux_banner` is typed `char[len + 1]` and carries `constant_data` (its
    bytes): Volatility's symbol cache identifies a memory image's kernel by
    that banner.

KASLR is not applied here: consumers add the run-time slide.
"""

from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .btf import Btf, BtfError, IsfTypes
from .kallsyms import Kallsyms, read_kallsyms
from .kernel_image import ELF_MAGIC, Elf, KernelImageError, extract_elf
from .memory_image import (BANNER, MemoryKernel, NoKernelError, PhysicalMemory, banner_release, find_first,
                           find_kernel, is_core_file, no_btf_message, open_image)

FORMAT_VERSION = "6.2.0"
PRODUCER = "pyrebox"
# Version of this generator's output; bump it when the ISF it writes changes.
GENERATOR_VERSION = "1.1.0"

# xz level: the JSON is highly repetitive, so a fast preset already compresses
# it ~10x; higher ones cost seconds for little.
XZ_PRESET = 1

REQUIRED_SYMBOLS = ("_text", "_stext", "init_task", "linux_banner")

# Types of kernel variables BTF has no VAR for (BTF describes only per-CPU
# variables), each with why it is here.  Written as C types over BTF names;
# an entry is used only when the kernel has the symbol and BTF the type.
SYMBOL_TYPES = {
    # Volatility's pslist/psscan start from it; its automagic finds the KASLR
    # shift by matching init_task's comm/pid/active_mm in memory.
    "init_task": "struct task_struct",
    # Compared with init_task.active_mm by the automagic; the kernel's mm.
    "init_mm": "struct mm_struct",
    # The automagic derives the virtual slide from init_task.files - &init_files.
    "init_files": "struct files_struct",
    # PID namespace root (pidhashtable, PID translation).
    "init_pid_ns": "struct pid_namespace",
    # The kernel page-table root the automagic uses as DTB on x86-64
    # (PTRS_PER_PGD entries); swapper_pg_dir is the same object (a macro for
    # init_top_pgt on x86-64, the real name on 32-bit x86).
    "init_top_pgt": "pgd_t[512]",
    "swapper_pg_dir": "pgd_t[512]",
    # Module list head (lsmod walks it as struct module.list).
    "modules": "struct list_head",
    # Module address bounds, kernels >= 5.19 (modules utilities).
    "mod_tree": "struct mod_tree_root",
    # Modules from sysfs (hidden-module checks).
    "module_kset": "struct kset *",
    # Bases of the randomised memory layout (CONFIG_DYNAMIC_MEMORY_LAYOUT).
    "page_offset_base": "unsigned long",
    "vmemmap_base": "unsigned long",
    "vmalloc_base": "unsigned long",
    # SPARSEMEM_EXTREME section table (page -> pfn translation).
    "mem_section": "struct mem_section **",
    # Boot time for task start times (an unnamed struct in timekeeping.c).
    "tk_core": "struct {seq timekeeper}",
    # Network namespaces (ip, sockstat, netfilter plugins).
    "net_namespace_list": "struct list_head",
    # TTY drivers (tty_check).
    "tty_drivers": "struct list_head",
    # The IDT, IDT_ENTRIES gates (check_idt).
    "idt_table": "gate_desc[256]",
    # Keyboard notifier chain (keyboard_notifiers).
    "keyboard_notifier_list": "struct atomic_notifier_head",
    # Loaded BPF programs (ebpf).
    "prog_idr": "struct idr",
    # Socket file operations, compared by address (sockstat, sockscan).
    "socket_file_ops": "struct file_operations",
    "sockfs_dentry_operations": "struct dentry_operations",
    # The printk ring buffer (kmsg, kernels >= 5.10) and the older buffer.
    "prb": "struct printk_ringbuffer *",
    "log_buf": "char *",
    "log_buf_len": "u32",
    # Highest capability number (capabilities).
    "cap_last_cap": "int",
    # ftrace hooks (ftrace plugin) and module symbol maps (kallsyms utilities).
    "ftrace_ops_list": "struct ftrace_ops *",
    "ftrace_list_end": "struct ftrace_ops",
    "ftrace_mod_maps": "struct list_head",
    "bpf_kallsyms": "struct list_head",
    # Framebuffers (fbdev): FB_MAX slots.
    "registered_fb": "struct fb_info *[32]",
    "num_registered_fb": "int",
}


class IsfError(KernelImageError):
    """The kernel's facts are inconsistent (message names the file)."""


@dataclass
class IsfResult:
    isf: dict
    btf_types: int  # libbpf's btf__type_cnt: ids 0..n-1, void included (DWARF: compile units)
    user_types: int
    kallsyms: int  # entries in the kernel's kallsyms tables (DWARF: in its .symtab)
    symbols: int  # distinct names in the ISF
    banner: str
    seconds: float
    types_from: str = "BTF"  # or "DWARF" (a debug vmlinux)


def _kallsyms_symbols(kallsyms: Kallsyms) -> dict[str, int]:
    """name -> address; a repeated name keeps the global symbol, else the first."""
    chosen: dict[str, tuple[bool, int]] = {}
    for sym in kallsyms.symbols:
        is_global = sym.type.isupper()
        previous = chosen.get(sym.name)
        if previous is None or (is_global and not previous[0]):
            chosen[sym.name] = (is_global, sym.address)
    return {name: address for name, (_, address) in chosen.items()}


def _anonymous_struct(types: IsfTypes, members: list[str]) -> dict | None:
    """The unnamed user type whose fields are exactly MEMBERS, if one."""
    for name, body in types.user_types.items():
        if name.startswith("unnamed_struct_") and list(body["fields"]) == members:
            return {"kind": "struct", "name": name}
    return None


def _descriptor(types: IsfTypes, spec: str) -> dict | None:
    if spec.startswith("struct {") and spec.endswith("}"):
        return _anonymous_struct(types, spec[len("struct {") : -1].split())
    try:
        return types.descriptor_for(spec)
    except BtfError:  # DwarfError is one too
        return None


def _banner(elf: Elf | MemoryKernel, address: int) -> bytes:
    try:
        text = elf.read_cstring(address)
    except KernelImageError:
        text = b""
    if not text.startswith(b"Linux version "):
        raise IsfError(
            f"{elf.name}: linux_banner ({address:#x}) does not hold the kernel banner: "
            "the kallsyms addresses do not match this image"
        )
    return text + b"\0"


def _taint_flags_count(elf: Elf | MemoryKernel, address: int) -> int:
    """Entries of the kernel's `const struct taint_flag taint_flags[]`
    (TAINT_FLAGS_COUNT, a macro BTF does not have), counted in the image:
    each entry is {c_true: an uppercase letter, c_false: ' ', '-' or an
    uppercase letter ('G' for 'P'), module: 0 or 1}."""
    count = 0
    while count < 64:
        try:
            c_true, c_false, module = elf.read(address + 3 * count, 3)
        except KernelImageError:
            break
        letter = ord("A") <= c_true <= ord("Z")
        other = c_false in b" -" or ord("A") <= c_false <= ord("Z")
        if not (letter and other and module in (0, 1)):
            break
        count += 1
    return count


def build_isf(elf: Elf, source_name: str = "", source_sha256: str = "") -> IsfResult:
    """The ISF of the kernel ELF ELF: types from its .BTF section, else from
    its DWARF (a debug vmlinux)."""
    started = time.monotonic()
    section = elf.section(".BTF")
    blob = elf.section_data(".BTF")
    if not blob and elf.section(".debug_info") is not None:
        return build_isf_from_dwarf(elf, source_name, source_sha256)
    if not blob:
        raise BtfError(no_btf_message(elf.name, banner_release(elf.data), "no .BTF section"))
    btf = Btf(blob, elf.name, elf.pointer_size, f"the .BTF section (at {section.offset:#x} in the kernel ELF)")
    return _assemble(elf, btf, read_kallsyms(elf), source_name, source_sha256, started)


def _symtab_symbols(elf: Elf, symtab) -> tuple[dict[str, int], int]:
    """name -> address from an ELF .symtab (a repeated name keeps the global
    symbol, else the first); and how many entries it has."""
    chosen: dict[str, tuple[bool, int]] = {}
    count = 0
    for sym in symtab.iter_symbols():
        count += 1
        kind = sym["st_info"]["type"]
        if not sym.name or kind in ("STT_SECTION", "STT_FILE") or sym["st_shndx"] == "SHN_UNDEF":
            continue
        is_global = sym["st_info"]["bind"] != "STB_LOCAL"
        previous = chosen.get(sym.name)
        if previous is None or (is_global and not previous[0]):
            chosen[sym.name] = (is_global, sym["st_value"])
    return {name: address for name, (_, address) in chosen.items()}, count


def build_isf_from_dwarf(elf: Elf, source_name: str = "", source_sha256: str = "") -> IsfResult:
    """The ISF of a debug vmlinux: types from its DWARF (dwarf.py),
    addresses from its symbol table."""
    import io

    from elftools.elf.elffile import ELFFile

    from .dwarf import DwarfTypes

    started = time.monotonic()
    stream = io.BytesIO(elf.data)
    types = DwarfTypes(stream, elf.name, elf.pointer_size)
    symtab = ELFFile(stream).get_section_by_name(".symtab")
    if symtab is None:
        raise IsfError(f"{elf.name}: a debug vmlinux with no symbol table (.symtab)")
    addresses, count = _symtab_symbols(elf, symtab)
    result = _assemble_types(elf, types, addresses, types.variables(), {}, types.compile_units,
                             count, source_name, source_sha256, started)
    result.types_from = "DWARF"
    return result


def build_isf_from_memory(kernel: MemoryKernel, source_name: str = "") -> IsfResult:
    """The ISF of the kernel found in a memory image (memory_image.find_kernel)."""
    started = time.monotonic()
    btf = Btf(kernel.btf_bytes(), kernel.name, kernel.pointer_size,
              f"the BTF blob at offset {kernel.base + kernel.btf_blob.offset:#x}")
    return _assemble(kernel, btf, kernel.kallsyms, source_name, "", started)


def _assemble(elf: Elf | MemoryKernel, btf: Btf, kallsyms: Kallsyms, source_name: str, source_sha256: str,
              started: float) -> IsfResult:
    types = IsfTypes(btf)
    addresses = _kallsyms_symbols(kallsyms)
    for label, address in kallsyms.tables.items():
        addresses.setdefault(label, address)
    variables = {name: types.descriptor(type_id) for name, type_id in btf.variables().items()}
    return _assemble_types(elf, types, addresses, variables, kallsyms.table_types, btf.type_count,
                           len(kallsyms.symbols), source_name, source_sha256, started)


def _assemble_types(elf: Elf | MemoryKernel, types, addresses: dict[str, int],
                    variables: dict[str, dict], table_types: dict[str, str], type_count: int,
                    symbol_count: int, source_name: str, source_sha256: str,
                    started: float) -> IsfResult:
    """The ISF from a type source (btf.IsfTypes or dwarf.DwarfTypes: base_types, user_types,
    enums, descriptor_for), symbol addresses and the types of variables the source knows."""
    # On x86-64 swapper_pg_dir is a macro for init_top_pgt: same object.
    if "swapper_pg_dir" not in addresses and "init_top_pgt" in addresses:
        addresses["swapper_pg_dir"] = addresses["init_top_pgt"]
    missing = [name for name in REQUIRED_SYMBOLS if name not in addresses]
    if missing:
        raise IsfError(f"{elf.name}: kallsyms has no {', '.join(missing)}")

    void = {"kind": "base", "name": "void"}
    symbols = {name: {"address": address, "type": void} for name, address in addresses.items()}
    for name, descriptor in variables.items():
        if name in symbols:
            symbols[name]["type"] = descriptor
    specs = dict(SYMBOL_TYPES)
    specs.update(table_types)
    for name, spec in specs.items():
        # The type source's own type of a variable (DWARF has all) comes
        # first, unless it is void or an array of unknown size (extern x[]).
        known = symbols[name]["type"] if name in symbols else void
        unsized = known.get("kind") == "array" and not known.get("count")
        if name in symbols and (known is void or unsized or name in table_types):
            descriptor = _descriptor(types, spec)
            if descriptor is not None:
                symbols[name]["type"] = descriptor
    # Per-module taint letters (lsmod, hidden-module checks): an array whose
    # length is a macro, so it is counted in the image.
    if "taint_flags" in symbols:
        count = _taint_flags_count(elf, addresses["taint_flags"])
        descriptor = _descriptor(types, f"struct taint_flag[{count}]") if count else None
        if descriptor is not None:
            symbols["taint_flags"]["type"] = descriptor
    if symbols["init_task"]["type"] is void:
        raise IsfError(f"{elf.name}: its types have no struct task_struct")

    banner = _banner(elf, addresses["linux_banner"])
    symbols["linux_banner"]["type"] = {
        "kind": "array",
        "count": len(banner),
        "subtype": {"kind": "base", "name": "char"},
    }
    symbols["linux_banner"]["constant_data"] = base64.b64encode(banner).decode()

    linux_meta: dict = {}
    if source_name:
        source = {"kind": "symtab" if isinstance(elf, Elf) else "memory", "name": source_name}
        if source_sha256:
            source.update(hash_type="sha256", hash_value=source_sha256)
        linux_meta["symbols"] = [source]
    isf = {
        "metadata": {
            "format": FORMAT_VERSION,
            "producer": {"name": PRODUCER, "version": GENERATOR_VERSION},
            "linux": linux_meta,
        },
        "base_types": types.base_types,
        "user_types": types.user_types,
        "enums": types.enums,
        "symbols": symbols,
    }
    return IsfResult(
        isf=isf,
        btf_types=type_count,
        user_types=len(types.user_types),
        kallsyms=symbol_count,
        symbols=len(symbols),
        banner=banner.rstrip(b"\0").decode("utf-8", "replace").strip(),
        seconds=time.monotonic() - started,
    )


# A kernel image file is at most this big (the Debian 7.x vmlinux is ~70 MB):
# a larger file without a kernel banner is not searched for compressed data.
MAX_KERNEL_FILE = 256 << 20


def _is_kernel_file(data) -> bool:
    """An ELF file other than a core, or an x86 boot image (bzImage)."""
    head = bytes(data[:0x210])
    return (head.startswith(ELF_MAGIC) and not is_core_file(data)) or head[0x202:0x206] == b"HdrS"


def generate(kernel_path: str | Path, types_from: str = "auto") -> IsfResult:
    """The ISF of the kernel in the file KERNEL_PATH: a kernel image
    (vmlinuz, vmlinux, a compressed vmlinux, a debug vmlinux) or a memory
    image of a running x86-64 Linux guest (raw physical memory, or an ELF
    core file). TYPES_FROM "dwarf": the types from a debug vmlinux's DWARF
    even when it also has BTF ("auto": BTF when there is, else DWARF)."""
    path = Path(kernel_path)
    try:
        data = open_image(path)
    except OSError as error:
        raise KernelImageError(f"{path}: cannot read: {error.strerror or error}") from None
    name = str(path)
    # Which kind of file: a kernel image has a header (ELF, bzImage) or is
    # compressed (no banner in plain text); a memory image has the banner.
    if not _is_kernel_file(data) and (is_core_file(data) or len(data) > MAX_KERNEL_FILE
                                      or find_first(data, BANNER) >= 0):
        try:
            kernel = find_kernel(data, name)
        except NoKernelError:
            if len(data) > MAX_KERNEL_FILE:
                raise
            raise NoKernelError(f"{name}: not a Linux kernel image and no Linux kernel in it as a memory "
                                "image (no \"Linux version\" banner)") from None
        return build_isf_from_memory(kernel, path.name)
    raw = bytes(data)
    try:
        elf = Elf(extract_elf(raw, name), name)
    except KernelImageError as error:
        if _is_kernel_file(data):
            raise  # an ELF file or bzImage: what is wrong with it is all there is to say
        raise KernelImageError(f"{error}; nor a memory image of a running Linux (no \"Linux version\" "
                               "banner)") from None
    if types_from == "dwarf":
        if elf.section(".debug_info") is None:
            from .dwarf import no_dwarf_message
            raise IsfError(no_dwarf_message(name))
        return build_isf_from_dwarf(elf, path.name, hashlib.sha256(raw).hexdigest())
    return build_isf(elf, path.name, hashlib.sha256(raw).hexdigest())


def generate_from_memory(read_phys, ram_size: int, *, ranges=None, name: str = "guest memory") -> IsfResult:
    """The ISF of the x86-64 Linux kernel running in a guest, read through
    READ_PHYS instead of a file: what lets a running PyREBox make the table
    of a kernel it has none for.  Same result as `generate` on a memory
    image of that guest (and as on the kernel's vmlinuz).

    Contract:
      READ_PHYS(address, size) -> bytes returns exactly SIZE bytes of guest
        physical memory at ADDRESS (e.g. the plugin's read_physical).  It is
        called from the calling thread only, inside RANGES only (no MMIO
        read, no device side effect), in pieces of at most 64 MiB, once
        for each byte: each range is copied into host memory in turn (the
        largest range is the peak of the memory this uses) and searched as
        a memory image file is, largest first, until one holds the kernel.
      RAM_SIZE: one past the highest guest-physical byte to look at.
      RANGES: the RAM as sorted [start, end) pairs (e.g. the guest's memory
        ranges around the VGA hole and the PCI hole); default [0, RAM_SIZE).
        The holes read as zeros.
      The guest may run meanwhile: what is read (the kernel's text, rodata,
        .BTF, kallsyms tables, boot_params) does not change after boot.
      Errors: the KernelImageError family, as for a file (NoKernelError:
        no kernel; BtfError: no or a corrupt BTF blob; KallsymsError),
        messages naming NAME; an exception READ_PHYS raises goes through as
        it is.
      Time: ~5 s of CPU for a 512 MiB guest (most of it building the
        types), plus the reads.
    """
    memory = PhysicalMemory(read_phys, ram_size, ranges)
    # The kernel is physically contiguous, and only positions inside it
    # matter: each RAM range is searched on its own, as one copy searched
    # like a file (slicing the reader again for each search costs more than
    # the search), largest first; device memory mapped as RAM (a VGA
    # framebuffer high under 4 GiB) never makes the copy span the holes.
    missing = None
    for start, end in sorted(memory.ranges, key=lambda r: r[0] - r[1]):
        image = memory.copy(start, end)
        try:
            kernel = find_kernel(image, name)
        except NoKernelError as error:
            missing = missing or error
            continue
        return build_isf_from_memory(kernel, name)
    raise missing or NoKernelError(f"{name}: no RAM to look for a Linux kernel in")


def write_isf(isf: dict, target: str | Path) -> None:
    """Write ISF as JSON to TARGET, xz-compressed when its name ends in .xz;
    atomically (a partial file is renamed into place)."""
    target = Path(target)
    data = json.dumps(isf, separators=(",", ":")).encode()
    if target.name.endswith(".xz"):
        data = lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=XZ_PRESET)
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    except OSError:
        partial.unlink(missing_ok=True)
        raise

