"""`pyrebox symbols KERNEL -o OUT.json[.xz]`: write a kernel's ISF.

KERNEL is a kernel image (vmlinuz, vmlinux) or a memory image of a running
x86-64 Linux guest (raw physical memory, or QEMU's ELF core dump): the
ISF of the kernel in it is the same as from its vmlinuz. For a kernel built
without BTF (Debian's i386 kernels), KERNEL is its debug vmlinux (Debian's
linux-image-<release>-dbg: /usr/lib/debug/boot/vmlinux-<release>): the types
come from its DWARF.

Exit status 0 on success (one line with the counts), 2 on any error (one
line naming the file and the problem).
"""

from __future__ import annotations

import argparse
import struct
import sys
import time

from .isf import generate, write_isf
from .kernel_image import KernelImageError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("kernel", metavar="KERNEL",
                        help="the kernel image: a bzImage (vmlinuz), a compressed or plain vmlinux ELF, a "
                             "debug vmlinux (DWARF); or a memory image of a running x86-64 Linux (raw "
                             "physical memory, ELF core)")
    parser.add_argument("--dwarf", action="store_true",
                        help="types from the DWARF of a debug vmlinux even when it has BTF too")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.json[.xz]",
                        help="the ISF file to write (xz-compressed when the name ends in .xz)")


def run(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        result = generate(args.kernel, "dwarf" if args.dwarf else "auto")
    except KernelImageError as error:
        print(f"pyrebox symbols: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"pyrebox symbols: {args.kernel}: {error.strerror or error}", file=sys.stderr)
        return 2
    except MemoryError:
        print(f"pyrebox symbols: {args.kernel}: not enough memory to read it", file=sys.stderr)
        return 2
    except (struct.error, ValueError, IndexError, KeyError, OverflowError) as error:
        # The readers check what they use and raise KernelImageError; this
        # keeps a check they lack from ending in a traceback: the input is
        # malformed in a way they did not foresee.
        print(f"pyrebox symbols: {args.kernel}: malformed input ({type(error).__name__}: {error}): "
              "not a kernel or memory image this can read", file=sys.stderr)
        return 2
    try:
        write_isf(result.isf, args.output)
    except OSError as error:
        print(f"pyrebox symbols: cannot write {args.output}: {error.strerror or error}", file=sys.stderr)
        return 2
    release = result.banner.split()[2] if len(result.banner.split()) > 2 else result.banner
    if result.types_from == "DWARF":
        counts = (f"(DWARF of {result.btf_types} compile units), {result.symbols} symbols "
                  f"({result.kallsyms} symbol table entries)")
    else:
        counts = (f"({result.btf_types} BTF types), {result.symbols} symbols "
                  f"({result.kallsyms} kallsyms entries)")
    print(f"pyrebox symbols: wrote {args.output} for Linux {release}: {result.user_types} types "
          f"{counts} in {time.monotonic() - started:.1f}s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="pyrebox symbols",
        description="Write a Volatility 3 ISF for a Linux kernel from its own image, or from a "
                    "memory image of it running (types from .BTF, addresses from kallsyms).")
    add_arguments(parser)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return 0 if exit_.code == 0 else 2
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
