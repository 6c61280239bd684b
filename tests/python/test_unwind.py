"""pyrebox.unwind on synthetic memory: a real stack and the real .eh_frame
of a static program compiled on the host (tests/python/programs/
unwind_chain.c), hand-built RBP chains, a loop, a kernel stack with the
user registers at its top, garbage stacks and corrupt unwind tables."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess

import pytest

from pyrebox.unwind import cfi
from pyrebox.unwind.frames import Backtrace, Frame, location
from pyrebox.unwind.memory import Memory, UnwindError
from pyrebox.unwind.walk import Modules, Walker
from unwind_memory import FakeMemory, function_at, hand_built_image, load_elf

SOURCE = os.path.join(os.path.dirname(__file__), "programs", "unwind_chain.c")
RSP, RBP, RA = cfi.RSP, cfi.RBP, cfi.RA

# --------------------------------------------------- a real stack, real CFI


def build_chain(folder, eh_frame_hdr: bool):
    """Compiles and runs unwind_chain; (binary, registers, stack bytes).
    Static links have no .eh_frame_hdr unless asked (--eh-frame-hdr)."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc (and the static glibc of libc6-dev)")
    binary = str(folder / "unwind_chain")
    hdr = ["-Wl,--eh-frame-hdr"] if eh_frame_hdr else []
    subprocess.run(["gcc", "-static", "-no-pie", "-O2", "-fomit-frame-pointer", *hdr, "-o",
                    binary, SOURCE], check=True)
    out = subprocess.run([binary], capture_output=True, text=True, check=False).stdout
    values = dict(line.split("=", 1) for line in out.splitlines())
    regs = {cfi.RBX: values["rbx"], cfi.RBP: values["rbp"], cfi.R12: values["r12"],
            cfi.R13: values["r13"], cfi.R14: values["r14"], cfi.R15: values["r15"],
            RSP: values["sp"], RA: values["pc"]}
    regs = {k: int(v, 16) for k, v in regs.items()}
    return binary, regs, bytes.fromhex(values["stack"])


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    return build_chain(tmp_path_factory.mktemp("unwind"), eh_frame_hdr=True)


def chain_memory(chain):
    binary, regs, stack = chain
    fake = FakeMemory()
    base, size, symbols = load_elf(fake, binary)
    fake.add(regs[RSP], stack)
    return fake, base, size, symbols, dict(regs)


def test_a_real_stack_unwinds_by_its_eh_frame_to_start(chain):
    fake, base, size, symbols, regs = chain_memory(chain)
    memory = Memory(fake.read)
    frames = Walker(memory, Modules(memory, [(base, size)])).walk(regs, in_kernel=False)
    names = [function_at(symbols, f.pc if f.how == "regs" else f.pc - 1) for f in frames]
    assert names[:4] == ["chain_leaf", "chain_middle", "chain_outer", "main"]
    assert names[-1] == "_start"
    assert "__libc_start_call_main" in names
    assert [f.how for f in frames] == ["regs"] + ["cfi"] * (len(frames) - 1)
    assert frames.stop == "the outermost frame: its CFI marks the return address undefined"
    sps = [f.sp for f in frames]
    assert sps == sorted(sps) and len(set(sps)) == len(sps)


def test_a_corrupt_fde_falls_back_to_a_marked_scan(chain):
    fake, base, size, symbols, regs = chain_memory(chain)
    memory = Memory(fake.read)
    modules = Modules(memory, [(base, size)])
    image = modules.image(regs[RA])
    from pyrebox.unwind.elf import find_fde
    fde = find_fde(memory, image.eh_frame_hdr, regs[RA])
    fake.poke(fde, struct.pack("<I", 0x7FFFFFF0))  # an FDE "2 GiB long"
    memory = Memory(fake.read)
    frames = Walker(memory, Modules(memory, [(base, size)])).walk(regs, in_kernel=False)
    assert frames[1].how == "scan"
    assert function_at(symbols, frames[1].pc - 1) == "chain_middle"
    assert function_at(symbols, frames[2].pc - 1) == "chain_outer"
    assert frames[2].how == "cfi"


def test_without_eh_frame_hdr_the_frames_are_scanned_and_marked(tmp_path):
    # A static link's default: .eh_frame without PT_GNU_EH_FRAME, which is
    # how the unwinder finds it in memory.
    fake, base, size, symbols, regs = chain_memory(build_chain(tmp_path, eh_frame_hdr=False))
    memory = Memory(fake.read)
    frames = Walker(memory, Modules(memory, [(base, size)])).walk(regs, in_kernel=False)
    names = [function_at(symbols, f.pc if f.how == "regs" else f.pc - 1) for f in frames]
    assert names[:4] == ["chain_leaf", "chain_middle", "chain_outer", "main"]
    assert {f.how for f in frames[1:]} <= {"scan", "fp"}


def test_the_walk_stops_at_the_frame_limit(chain):
    fake, base, size, _, regs = chain_memory(chain)
    memory = Memory(fake.read)
    frames = Walker(memory, Modules(memory, [(base, size)]), max_frames=3).walk(
        regs, in_kernel=False)
    assert len(frames) == 3
    assert frames.stop == "the limit of 3 frames"


# ------------------------------------------- code without CFI: fp and scan

CODE = 0x400000
STACK = 0x7FFF0000


def code_module(fake: FakeMemory) -> list[int]:
    """A module of raw code (no ELF header, hence no CFI): four 5-byte
    calls at CODE+0x100, +0x200, +0x300, +0x400; returns the address after
    each (what a call pushes)."""
    code = bytearray(b"\xcc" * 0x1000)
    returns = []
    for at in (0x100, 0x200, 0x300, 0x400):
        code[at:at + 5] = b"\xe8\x00\x00\x00\x00"
        returns.append(CODE + at + 5)
    fake.add(CODE, bytes(code))
    return returns


def walker(fake: FakeMemory, **kw) -> Walker:
    memory = Memory(fake.read)
    return Walker(memory, Modules(memory, [(CODE, 0x1000)]), **kw)


def test_frame_pointers_are_followed_where_there_is_no_cfi():
    fake = FakeMemory()
    r = code_module(fake)
    # Three frames linked by saved RBPs; the last saved RBP is 0.
    fake.words(STACK, 0, 0, 0, 0,              # locals of the innermost frame
               STACK + 0x40, r[0], 0, 0,        # rbp0 -> saved rbp, return
               STACK + 0x60, r[1], 0, 0,        # rbp1
               0, r[2], 0, 0, 0, 0, 0, 0)       # rbp2: the end of the chain
    regs = {RA: CODE + 0x50, RSP: STACK, RBP: STACK + 0x20}
    frames = walker(fake).walk(regs, in_kernel=False)
    assert [(f.pc, f.how) for f in frames] == [(CODE + 0x50, "regs"), (r[0], "fp"),
                                               (r[1], "fp"), (r[2], "fp")]
    assert [f.sp for f in frames] == [STACK, STACK + 0x30, STACK + 0x50, STACK + 0x70]
    assert frames.stop.startswith(f"no caller of {r[2] - 1:#x}: CFI: no ELF header")


def test_a_stack_scan_finds_return_addresses_among_other_words_and_marks_them():
    fake = FakeMemory()
    r = code_module(fake)
    # Junk, a pointer into the code that follows no call, then a return address.
    fake.words(STACK, 0x1234, CODE + 0x10, 0xFFFFFFFFFFFFFFFF, r[3], 0, 0)
    frames = walker(fake).walk({RA: CODE + 0x50, RSP: STACK, RBP: 7}, in_kernel=False)
    assert [(f.pc, f.sp, f.how) for f in frames] == [(CODE + 0x50, STACK, "regs"),
                                                     (r[3], STACK + 0x20, "scan")]


# ------------------------------------------------ a hand-built .eh_frame

IMAGE = 0x500000


def hand_built(fake: FakeMemory):
    image, at = hand_built_image(IMAGE)
    fake.add(IMAGE, image)
    memory = Memory(fake.read)
    return Walker(memory, Modules(memory, [(IMAGE, len(image))])), at


def test_a_hand_built_eh_frame_is_followed_to_its_outermost_frame():
    fake = FakeMemory()
    w, at = hand_built(fake)
    fake.words(STACK, 0, 0, STACK + 0x30, at["call_body"], 0, 0,
               STACK + 0x50, at["call_outer"], 0, 0)
    frames = w.walk({RA: at["body"], RSP: STACK, RBP: STACK + 0x10}, in_kernel=False)
    assert [(f.pc, f.sp, f.how) for f in frames] == [
        (at["body"], STACK, "regs"), (at["call_body"], STACK + 0x20, "cfi"),
        (at["call_outer"], STACK + 0x40, "cfi")]
    assert frames.stop == "the outermost frame: its CFI marks the return address undefined"


def test_a_loop_of_saved_frame_pointers_stops_the_walk():
    fake = FakeMemory()
    w, at = hand_built(fake)
    # The saved RBP points at itself: by the CFI the caller has the same frame.
    fake.words(STACK, 0, 0, STACK + 0x10, at["call_body"], 0, 0)
    frames = w.walk({RA: at["body"], RSP: STACK, RBP: STACK + 0x10}, in_kernel=False)
    assert len(frames) == 2
    assert frames.stop == (f"the stack pointer does not grow from frame 1 ({STACK + 0x20:#x}) "
                           f"to the next ({STACK + 0x20:#x}): a loop or a corrupt frame")


def test_a_cfi_return_address_that_follows_no_call_stops_the_walk():
    fake = FakeMemory()
    w, at = hand_built(fake)
    fake.words(STACK, 0, 0, STACK + 0x30, IMAGE + 0x140, 0, 0)
    with pytest.raises(UnwindError) as e:
        w.walk({RA: at["body"], RSP: STACK, RBP: STACK + 0x10}, in_kernel=False)
    assert e.value.address == IMAGE + 0x140
    assert "which follows no call instruction" in e.value.reason


def test_an_unreadable_stack_raises_naming_the_address():
    fake = FakeMemory()
    code_module(fake)
    with pytest.raises(UnwindError) as e:
        walker(fake).walk({RA: CODE + 0x50, RSP: 0x7FFE0000, RBP: 0}, in_kernel=False)
    assert e.value.address == 0x7FFE0000
    assert "no caller of 0x400050" in e.value.reason


def test_a_garbage_stack_raises_rather_than_guessing():
    fake = FakeMemory()
    code_module(fake)
    fake.add(STACK, bytes(range(256)) * 16)  # readable, but nothing like a frame
    with pytest.raises(UnwindError) as e:
        walker(fake).walk({RA: CODE + 0x50, RSP: STACK, RBP: STACK + 8}, in_kernel=False)
    assert f"no return address on the 4096 stack words from {STACK:#x}" in str(e.value)
    assert e.value.address == STACK


def test_a_pc_outside_user_space_is_reported():
    fake = FakeMemory()
    r = code_module(fake)
    fake.words(STACK, r[0], 0)
    with pytest.raises(UnwindError) as e:
        walker(fake).walk({RA: 0, RSP: STACK}, in_kernel=False)
    assert e.value.reason == "frame 0: the pc 0x0 is not a user address"


def test_reads_are_bounded_by_the_page_budget():
    fake = FakeMemory()
    code_module(fake)
    fake.add(STACK, b"\x01" * (64 * 4096))
    memory = Memory(fake.read, max_pages=8)
    w = Walker(memory, Modules(memory, [(CODE, 0x1000)]))
    with pytest.raises(UnwindError) as e:
        w.walk({RA: CODE + 0x50, RSP: STACK, RBP: 0}, in_kernel=False)
    assert e.value.reason == "the read limit of 8 pages was reached by this walk"
    assert e.value.address == STACK + 7 * 4096  # the code's page, then 7 of the stack
    assert fake.reads == 8


# ---------------------------------------------------------------- kernel

KTEXT = 0xFFFFFFFF81000000
KSTACK = 0xFFFFC90000010000  # a THREAD_SIZE (16 KiB) aligned task stack


def kernel_memory(user_cs=0x33):
    fake = FakeMemory()
    r = code_module(fake)
    ktext = bytearray(b"\xcc" * 0x1000)
    ktext[0x100:0x105] = b"\xe8\x00\x00\x00\x00"
    ktext[0x200:0x205] = b"\xe8\x00\x00\x00\x00"
    fake.add(KTEXT, bytes(ktext))
    top = KSTACK + 0x4000
    regs_at = top - 168
    sp = regs_at - 0x40
    # The kernel stack: a return address, a non-return word, a return address.
    fake.words(sp, KTEXT + 0x105, KTEXT + 0x10, 0, KTEXT + 0x205, 0, 0, 0, 0)
    user_sp = STACK
    pt_regs = [0] * 21
    pt_regs[4] = 0x1111            # bp
    pt_regs[16] = CODE + 0x60       # ip
    pt_regs[17] = user_cs
    pt_regs[18] = 0x246             # flags
    pt_regs[19] = user_sp
    pt_regs[20] = 0x2B
    fake.words(regs_at, *pt_regs)
    fake.words(STACK, 0, r[2], 0, 0)
    memory = Memory(fake.read)
    w = Walker(memory, Modules(memory, [(CODE, 0x1000)]),
               kernel_text=lambda a: KTEXT <= a < KTEXT + 0x1000)
    return w, {RA: KTEXT + 0x50, RSP: sp, RBP: 0}, r


def test_kernel_frames_then_the_user_frames_from_the_saved_registers():
    w, regs, r = kernel_memory()
    frames = w.walk(regs, in_kernel=True)
    assert [(f.pc, f.how, f.kernel) for f in frames] == [
        (KTEXT + 0x50, "regs", True), (KTEXT + 0x105, "scan", True),
        (KTEXT + 0x205, "scan", True), (CODE + 0x60, "regs", False), (r[2], "scan", False)]
    assert frames[3].sp == STACK


def test_kernel_frames_say_where_they_end_without_user_registers():
    w, regs, _ = kernel_memory(user_cs=0x10)  # a kernel CS: no user registers there
    frames = w.walk(regs, in_kernel=True)
    assert [f.kernel for f in frames] == [True, True, True]
    assert frames.stop.startswith("the kernel frames end here: no user registers")


# ---------------------------------------------------------------- results

def test_frames_print_as_windbg_does():
    assert location("libc.so.6", "write", 0x14, 1) == "libc.so.6!write+0x14"
    assert location("libc.so.6", "write", 0, 1) == "libc.so.6!write"
    assert location("libc.so.6", None, 0x271CA, 1) == "libc.so.6+0x271ca"
    assert location(None, None, None, 0x1234) == "0x1234"
    frame = Frame(pc=0x10, sp=0x20, how="cfi", module="prog", symbol="leaf", offset=4)
    assert frame.text == "prog!leaf+0x4"
    assert frame["pc"] == 0x10 and frame["text"] == "prog!leaf+0x4"
    assert frame.as_dict() == {"pc": 0x10, "sp": 0x20, "how": "cfi", "kernel": False,
                               "module": "prog", "symbol": "leaf", "offset": 4,
                               "text": "prog!leaf+0x4"}
    trace = Backtrace([frame], stop="why")
    assert list(trace) == [frame] and trace.stop == "why"
