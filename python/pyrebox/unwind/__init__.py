"""Stack unwinding over a guest's memory, independent of QEMU: every read
goes through a `read(addr, size) -> bytes` function, so the same code runs
on a live guest (pyrebox.backtrace) and on synthetic memory (the tests).

memory: bounded, cached reads and UnwindError; elf: a module's ELF headers
and .eh_frame_hdr as loaded in memory; cfi: DWARF call-frame rules of one
FDE (pyelftools); calls: is an address just after a call instruction;
frames: the Frame and Backtrace results; walk: the walk itself.
"""
