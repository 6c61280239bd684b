"""Volatility 3 symbol tables (ISF) for a Linux kernel, from its own image.

No debug package is needed: types come from the kernel's `.BTF` section
(through libbpf), every symbol address from the kallsyms tables in its data,
the banner from `linux_banner`.

    from pyrebox.symbols import generate, write_isf
    result = generate("vmlinuz")            # IsfResult: .isf, counts, banner
    write_isf(result.isf, "kernel.isf.json.xz")

Command line: `pyrebox symbols KERNEL -o OUT.json[.xz]` (see cli.py).
"""

from .btf import Btf, BtfError, IsfTypes
from .isf import GENERATOR_VERSION, IsfError, IsfResult, build_isf, generate, write_isf
from .kallsyms import Kallsyms, KallsymsError, Symbol, read_kallsyms
from .kernel_image import Elf, KernelImageError, extract_elf, load_kernel

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
    "build_isf",
    "extract_elf",
    "generate",
    "load_kernel",
    "read_kallsyms",
    "write_isf",
]
