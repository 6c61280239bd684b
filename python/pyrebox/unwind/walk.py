"""The walk: frames of one thread, innermost first, kernel then user.

User frames: each caller is found, in order of trust, by
  1. the DWARF CFI of the module holding the pc (cfi),
  2. the RBP chain, when RBP points a little above the stack pointer at a
     saved RBP and a return address that follows a call (fp),
  3. a stack scan: the first word at or above the stack pointer that points
     just after a call instruction inside an executable segment of a module
     (scan: a guess, marked as such).
Kernel frames (the vCPU at CPL 0, 64-bit Linux): the kernel is built
without frame pointers and its ORC tables are not read, so its frames are
all found by scanning the kernel stack, from RSP up to the struct pt_regs
that the entry code saved at the top of the task's stack (THREAD_SIZE
aligned). When that pt_regs holds valid 64-bit user registers, the walk
continues with them in user space (a `regs` frame); otherwise it stops
after the kernel frames and says so.

Every walk is bounded: at most `max_frames` frames, `SCAN_WORDS` words per
user scan, the pages Memory allows; the stack pointer must grow from frame
to frame (a loop stops the walk). When no caller at all can be found from
the registers because the stack cannot be read or holds nothing that looks
like a frame, the walk raises UnwindError naming the address and the
reason; a later failure ends the walk there, and Backtrace.stop says why.
"""

from __future__ import annotations

import struct
from typing import Callable, Iterable

from . import cfi
from .calls import after_call
from .elf import Image, parse_image
from .frames import CFI, FP, REGS, SCAN, Backtrace, Frame
from .memory import Memory, ReadLimit, UnwindError

RSP, RBP, RA = cfi.RSP, cfi.RBP, cfi.RA
USER_TOP = 0x0000800000000000
KERNEL_BOTTOM = 0xFFFF800000000000
THREAD_SIZE = 16 * 1024
PT_REGS_SIZE = 21 * 8
USER_CS, USER32_CS, USER_DS = 0x33, 0x23, 0x2B
SCAN_WORDS = 4096
FP_SPAN = 1 << 20
MAX_FRAMES = 64

# struct pt_regs (x86-64), word index -> DWARF register number.
_PT_REGS = {0: 15, 1: 14, 2: 13, 3: 12, 4: 6, 5: 3, 6: 11, 7: 10, 8: 9, 9: 8, 10: 0,
            11: 2, 12: 1, 13: 4, 14: 5, 16: RA, 19: RSP}


class _Stop(Exception):
    """The walk ends at `address`; `garbage` when the stack could not be
    followed (rather than reaching its end or a limit)."""

    def __init__(self, address: int, reason: str, garbage: bool):
        super().__init__(reason)
        self.address = address
        self.reason = reason
        self.garbage = garbage


class Modules:
    """The modules of one address space, [base, base+size) each; their ELF
    layout is read from memory on first use. A module whose headers cannot
    be read counts as executable over its whole range (the call check
    still applies) and has no CFI."""

    def __init__(self, memory: Memory, ranges: Iterable[tuple[int, int]]):
        self.memory = memory
        self.ranges = sorted(ranges)
        self._images: dict[int, Image | UnwindError] = {}

    def _range(self, addr: int) -> tuple[int, int] | None:
        for base, size in self.ranges:
            if base <= addr < base + size:
                return base, size
        return None

    def image(self, addr: int) -> Image | None:
        """The Image of the module holding addr; None outside every module;
        UnwindError when its ELF headers cannot be read."""
        found = self._range(addr)
        if found is None:
            return None
        base = found[0]
        if base not in self._images:
            try:
                self._images[base] = parse_image(self.memory, base)
            except UnwindError as e:
                self._images[base] = e
        image = self._images[base]
        if isinstance(image, UnwindError):
            raise image
        return image

    def executable(self, addr: int) -> bool:
        try:
            image = self.image(addr)
        except UnwindError:
            return True
        return image is not None and image.executable(addr)


def _user(addr) -> bool:
    return addr is not None and 0 < addr < USER_TOP


class Walker:
    def __init__(self, memory: Memory, modules: Modules,
                 kernel_text: Callable[[int], bool] = lambda addr: False,
                 max_frames: int = MAX_FRAMES):
        self.memory = memory
        self.modules = modules
        self.kernel_text = kernel_text
        self.max_frames = max_frames

    # --- the whole walk ---

    def walk(self, regs: dict, in_kernel: bool) -> Backtrace:
        """regs: DWARF register number -> value (RA is the pc)."""
        frames: list[Frame] = []
        try:
            if in_kernel:
                regs = self._kernel(regs, frames)
            else:
                frames.append(Frame(regs[RA], regs[RSP], REGS))
            self._user(regs, frames)
        except _Stop as stop:
            if stop.garbage and len(frames) <= 1:
                raise UnwindError(stop.address, stop.reason) from None
            return Backtrace(frames, stop.reason)
        raise AssertionError("a walk ends with _Stop")  # pragma: no cover

    def _append(self, frames: list[Frame], frame: Frame) -> None:
        if frames and frame.sp <= frames[-1].sp and frame.kernel == frames[-1].kernel:
            raise _Stop(frame.sp, f"the stack pointer does not grow from frame "
                                  f"{len(frames) - 1} ({frames[-1].sp:#x}) to the next "
                                  f"({frame.sp:#x}): a loop or a corrupt frame", True)
        frames.append(frame)
        if len(frames) >= self.max_frames:
            raise _Stop(frame.sp, f"the limit of {self.max_frames} frames", False)

    # --- kernel ---

    def _kernel(self, regs: dict, frames: list[Frame]) -> dict:
        pc, sp = regs[RA], regs[RSP]
        frames.append(Frame(pc, sp, REGS, kernel=True))
        if sp < KERNEL_BOTTOM:
            raise _Stop(sp, "the vCPU runs kernel code on a user stack pointer (the "
                            "system-call entry, before the kernel's stack is loaded)", True)
        top = (sp | (THREAD_SIZE - 1)) + 1
        saved = top - PT_REGS_SIZE
        user = self._pt_regs(saved) if sp <= saved else None
        end = saved if user is not None else top
        for addr in range(sp, end, 8):
            try:
                word = self.memory.u64(addr)
            except UnwindError as e:
                raise _Stop(e.address, f"the kernel stack cannot be read: {e.reason}", True)
            if self.kernel_text(word) and after_call(self.memory, word):
                self._append(frames, Frame(word, addr + 8, SCAN, kernel=True))
        if user is None:
            raise _Stop(saved, "the kernel frames end here: no user registers were found at "
                               "the top of the kernel stack (a kernel thread, an interrupt "
                               "stack, or not entered from user mode)", False)
        if user.pop("cs") != USER_CS:
            frames.append(Frame(user[RA], user[RSP], REGS))
            raise _Stop(user[RA], "the user code is 32-bit (not unwound)", False)
        return user

    def _pt_regs(self, addr: int) -> dict | None:
        """The user registers of the pt_regs at addr, or None when it does
        not hold user registers."""
        try:
            words = struct.unpack("<21Q", self.memory.read(addr, PT_REGS_SIZE))
        except UnwindError:
            return None
        cs, ss = words[17], words[20]
        if cs not in (USER_CS, USER32_CS) or ss != USER_DS or not _user(words[16]) \
                or not _user(words[19]) or not words[18] & 2:
            return None
        regs = {reg: words[i] for i, reg in _PT_REGS.items()}
        regs["cs"] = cs
        return regs

    # --- user ---

    def _user(self, regs: dict, frames: list[Frame]) -> None:
        if frames[-1].kernel:
            self._append(frames, Frame(regs[RA], regs[RSP], REGS))
        is_return = False
        while True:
            pc = regs[RA]
            if not _user(pc):
                raise _Stop(pc, f"frame {len(frames) - 1}: the pc {pc:#x} is not a user "
                                f"address", True)
            regs, how = self._caller(regs, pc - 1 if is_return else pc)
            self._append(frames, Frame(regs[RA], regs[RSP], how))
            is_return = True

    def _caller(self, regs: dict, lookup: int) -> tuple[dict, str]:
        """The caller's registers and how they were found."""
        why = []
        try:
            image = self.modules.image(lookup)
            if image is None:
                why.append(f"{lookup:#x} is in no module")
            else:
                rules = cfi.rules_at(self.memory, image, lookup)
                if rules is None:
                    why.append(f"no FDE covers {lookup:#x}")
                else:
                    caller = cfi.caller_registers(rules, regs, self.memory)
                    if caller is None:
                        raise _Stop(lookup, "the outermost frame: its CFI marks the return "
                                            "address undefined", False)
                    ra = caller[RA]
                    if not _user(ra) or not after_call(self.memory, ra):
                        raise _Stop(ra, f"the CFI of {lookup:#x} gives the return address "
                                        f"{ra:#x}, which follows no call instruction", True)
                    return caller, CFI
        except UnwindError as e:
            why.append(f"CFI: {e}")
        caller = self._frame_pointer(regs)
        if caller is not None:
            return caller, FP
        caller = self._scan(regs[RSP])
        if caller is not None:
            return caller, SCAN
        raise _Stop(regs[RSP], f"no caller of {lookup:#x}: {'; '.join(why)}; no plausible "
                               f"frame pointer; no return address on the {SCAN_WORDS} stack "
                               f"words from {regs[RSP]:#x}", True)

    def _return_address(self, addr: int) -> bool:
        return _user(addr) and self.modules.executable(addr) and after_call(self.memory, addr)

    def _frame_pointer(self, regs: dict) -> dict | None:
        rbp, sp = regs.get(RBP), regs[RSP]
        if rbp is None or rbp % 8 or not sp <= rbp < sp + FP_SPAN:
            return None
        try:
            saved, ra = struct.unpack("<QQ", self.memory.read(rbp, 16))
        except UnwindError:
            return None
        if not self._return_address(ra):
            return None
        return {RBP: saved, RSP: rbp + 16, RA: ra}

    def _scan(self, sp: int) -> dict | None:
        for addr in range(sp, sp + 8 * SCAN_WORDS, 8):
            try:
                word = self.memory.u64(addr)
            except ReadLimit as e:
                raise _Stop(e.address, e.reason, True) from None
            except UnwindError:
                return None  # the end of the stack's mapping
            if self._return_address(word):
                return {RSP: addr + 8, RA: word}
        return None
