"""Volatility 3 symbol tables (ISF) for a Linux kernel, from its own image.

No debug package is needed: types come from the kernel's `.BTF` section
(through libbpf), every symbol address from the kallsyms tables in its data,
the banner from `linux_banner`.

    from pyrebox.symbols import generate, write_isf
    result = generate("vmlinuz")            # IsfResult: .isf, counts, banner
    write_isf(result.isf, "kernel.isf.json.xz")

The kernel may also be one running in a guest: `generate` reads a memory
image file (raw physical memory or an ELF core), `generate_from_memory`
reads guest physical memory through a callable (the running plugin's), and
both give the table its vmlinuz gives (memory_image.py says how).

Command line: `pyrebox symbols KERNEL -o OUT.json[.xz]` (see cli.py).
"""

from .btf import Btf, BtfError, IsfTypes
from .isf import (GENERATOR_VERSION, IsfError, IsfResult, build_isf, build_isf_from_memory, generate,
                  generate_from_memory, write_isf)
from .kallsyms import Kallsyms, KallsymsError, Symbol, read_kallsyms
from .kernel_image import Elf, KernelImageError, extract_elf, load_kernel
from .memory_image import MemoryKernel, NoKernelError, PhysicalMemory, find_kernel

__all__ = [
    "Btf",
    "BtfError",
    "Elf",
    "GENERATOR_VERSION",
    "IsfError",
    "IsfResult",
    "IsfTypes",
    "Kallsyms",
    "KallsymsError",
    "KernelImageError",
    "Symbol",
    "MemoryKernel",
    "NoKernelError",
    "PhysicalMemory",
    "build_isf",
    "build_isf_from_memory",
    "extract_elf",
    "find_kernel",
    "generate",
    "generate_from_memory",
    "load_kernel",
    "read_kallsyms",
    "write_isf",
]
