"""The shell's commands on a fake _pyrebox (no VM): Python lines whose
first word is a command's name, help's groups, bc and bl, ln's nearest
symbol, named branch targets in dis, x over the kernel's symbols, mon and
unmon's messages, a breakpoint's banner, and Tab completion.

The fake guest: process `prog` (PGD) maps prog and libc.so.6; the kernel
(pgd 0) is vmlinux and the module crc7. Symbol lists carry sizes where a
test says so (the plugin's get_symbol_list gives none today)."""

from __future__ import annotations

import importlib
import itertools
import os

import pytest

from fake_pyrebox import fake_native  # noqa: F401 - the fixture
from pyrebox import breakpoints, triggers
from pyrebox import callbacks as cb
from pyrebox.breakpoints import BP

PGD = 0x7A000
PROG = 0x555555554000
LIBC = 0x7F0000000000
KERNEL = 0xFFFFFFFF81000000
CRC7 = 0xFFFFFFFFC0000000

MODULES = {
    PGD: [{"name": "prog", "fullname": "/usr/bin/prog", "base": PROG, "size": 0x3000},
          {"name": "libc.so.6", "fullname": "/lib/libc.so.6", "base": LIBC, "size": 0x200000}],
    0: [{"name": "vmlinux", "fullname": "vmlinux", "base": KERNEL, "size": 0x1000000},
        {"name": "crc7", "fullname": "crc7", "base": CRC7, "size": 0x1000}],
}
# (module, name, address, size)
SYMBOLS = {
    PGD: [("prog", "helper", PROG + 0x1120, 0x18), ("prog", "main", PROG + 0x1140, 0x60),
          ("libc.so.6", "getpid", LIBC + 0xE0C10, 0x20),
          ("libc.so.6", "getppid", LIBC + 0xE0C30, 0x20)],
    0: [("vmlinux", "sys_getpid", KERNEL + 0x90000, None),
        ("vmlinux", "sys_getppid", KERNEL + 0x90040, None),
        ("vmlinux", "schedule", KERNEL + 0x100000, None),
        ("crc7", "crc7_be", CRC7 + 0x10, None)],
}
PROCESSES = [
    {"pid": 1, "ppid": 0, "pgd": 0x1000, "name": "init"},
    {"pid": 2, "ppid": 0, "pgd": 0, "name": "kthreadd"},
    {"pid": 42, "ppid": 1, "pgd": PGD, "name": "prog"},
    {"pid": 50, "ppid": 1, "pgd": 0x5000, "name": "sh"},
    {"pid": 51, "ppid": 50, "pgd": 0x6000, "name": "sh"},
]


def symbol_dicts(pgd: int, sizes: bool) -> list[dict]:
    fullnames = {m["name"]: m["fullname"] for m in MODULES[pgd]}
    out = []
    for mod, name, addr, size in SYMBOLS[pgd]:
        d = {"mod": mod, "mod_fullname": fullnames[mod], "name": name, "addr": addr}
        if sizes and size is not None:
            d["size"] = size
        out.append(d)
    return out


def va_to_sym(pgd: int, addr: int):
    """As the plugin: a user symbol covers [value, value+size); a kernel
    address gets the nearest preceding symbol of the module holding it."""
    space = 0 if addr >= 0xFFFF800000000000 else pgd
    if space:
        for mod, name, start, size in SYMBOLS[space]:
            if start <= addr < start + size:
                return [mod, name]
        return None
    for m in MODULES[0]:
        if m["base"] <= addr < m["base"] + m["size"]:
            before = [s for s in SYMBOLS[0] if s[0] == m["name"] and s[2] <= addr]
            return [m["name"], max(before, key=lambda s: s[2])[1]] if before else None
    return None


@pytest.fixture
def guest(fake_native, monkeypatch):  # noqa: F811
    fake = fake_native
    monkeypatch.setattr(BP, "_all", {})
    monkeypatch.setattr(BP, "_managers", {})
    monkeypatch.setattr(BP, "_ids", itertools.count(1))
    monkeypatch.setattr(cb, "errors", cb.ErrorReporter())
    monkeypatch.setattr(triggers, "build", lambda path, is_64bit: (os.path.basename(path), False))
    fake.sizes = True
    fake.processes = [dict(p) for p in PROCESSES]
    fake.running_pgd[0] = PGD
    # 64-bit mode: protection and long mode on (dis reads the mode).
    fake.registers[0].update(rip=PROG + 0x1140, cs=0x33, cr0=0x80000011, efer=0xD00)
    fake.linux_modules = lambda pgd: [dict(m) for m in MODULES.get(pgd, [])]
    fake.linux_symbols = lambda pgd: symbol_dicts(pgd, fake.sizes)
    fake.linux_va_to_sym = va_to_sym
    for space, symbols in SYMBOLS.items():
        for mod, name, addr, _ in symbols:
            fake.symbols[(space, mod, name)] = addr
            if space == 0:  # kernel symbols are found from any pgd
                fake.symbols[(PGD, mod, name)] = addr
    fake.monitored = set()
    fake.start_monitoring = fake.monitored.add
    fake.stop_monitoring = fake.monitored.discard
    fake.is_monitored = lambda pgd: pgd in fake.monitored
    return fake


@pytest.fixture
def shell(guest, monkeypatch):
    module = importlib.import_module("pyrebox.shell")
    monkeypatch.setattr(module, "_bp_labels", {})
    return module


@pytest.fixture
def sh(shell):
    """A shell; the names a test assigns leave the run's one IPython
    namespace with it (they would shadow commands in later tests)."""
    s = shell.Shell(0)
    before = set(s.ip.user_ns)
    yield s
    for name in set(s.ip.user_ns) - before:
        if not name.startswith("_"):  # IPython's own (_, _1, ...) stay
            del s.ip.user_ns[name]


def run(sh, line: str) -> list[str]:
    """The lines `line` prints (a command's, or Python's)."""
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert sh.run_line(line) is False
    return buf.getvalue().splitlines()


# --- 1. Python lines whose first word is a command ---------------------------

@pytest.mark.parametrize("line, name, value", [
    ("x = 3", "x", 3),
    ("r = 5", "r", 5),
    ('s = "abc"', "s", "abc"),
    ("u = 1", "u", 1),
    ("k = [1]", "k", [1]),
    ("db=7", "db", 7),
    ("bp: int = 9", "bp", 9),
])
def test_a_command_word_followed_by_an_assignment_is_python(sh, line, name, value):
    assert run(sh, line) == []
    assert sh.ip.user_ns[name] == value


def test_an_assigned_name_shadows_the_command_and_percent_runs_it(sh):
    run(sh, "x = 3")
    assert run(sh, "print(x)") == ["3"]
    assert run(sh, "x + 1")[-1].endswith(": 4")  # IPython's Out[N]: 4
    run(sh, "x += 2")
    assert sh.ip.user_ns["x"] == 5
    assert run(sh, "%x prog!ma*") == [f"{PROG + 0x1140:#018x}  prog!main", "1 symbol(s) match"]


@pytest.mark.parametrize("args, assigns", [
    ("= 3", True), ("=3", True), ("+= 1", True), ("//= 2", True), (">>= 1", True),
    ("**= 2", True), (": int = 1", True),
    ("== 3", False), ("RAX=1", False), ("libc.so.6!getpid", False), ("", False),
])
def test_what_counts_as_an_assignment(shell, args, assigns):
    assert shell._assigns(args) is assigns


def test_x_equals_equals_stays_the_command(sh):
    assert run(sh, "x == 3") == ["x: usage: x MOD!SYM (wildcards allowed, e.g. libc*!mem*, "
                                 "vmlinux!sys_*)"]


# --- help ----------------------------------------------------------------------

def test_every_command_is_in_exactly_one_help_group(shell):
    groups = shell.command_groups()
    assert [g for g, _ in groups] == ["inspection", "memory", "breakpoints",
                                      "processes and modules", "VM", "volatility", "other"]
    listed = [n for _, names in groups for n in names]
    assert sorted(listed) == sorted(shell.COMMANDS)


def test_help_alone_lists_the_groups_and_list_commands_still_works(shell, sh):
    out = run(sh, "help")
    assert out[0] == "inspection:"
    assert "breakpoints:" in out and "other:" in out
    bc = out.index("breakpoints:")
    assert out[bc + 1].split()[0] == "bp"
    assert any(line.split()[:1] == ["bc"] and "clear (delete) breakpoints" in line
               for line in out)
    assert out[-1].startswith("Leave the shell (the VM resumes): q, c, continue, quit")
    flat = run(sh, "list_commands")
    assert flat[0].split()[0] == shell.COMMANDS[0]
    assert flat[-1].strip().startswith("q c continue quit")
    assert run(sh, "help bc")[0] == "bc N [N...] | bc *: clear (delete) breakpoints N, or all " \
                                    "of them."


# --- 2. bc and bl --------------------------------------------------------------

def test_bl_shows_the_symbol_and_bc_clears_one_breakpoint(sh):
    assert run(sh, "bp libc.so.6!getpid") == [
        f"breakpoint 1: EXECUTION at {LIBC + 0xE0C10:#x} (pgd {PGD:#x})"]
    run(sh, f"bp {PROG + 0x1150:x}")
    assert run(sh, "bl") == [
        f"  1 enabled  EXECUTION      {LIBC + 0xE0C10:#018x} size 0x0 pgd {PGD:#x} hits 0  "
        f"libc.so.6!getpid",
        f"  2 enabled  EXECUTION      {PROG + 0x1150:#018x} size 0x0 pgd {PGD:#x} hits 0  "
        f"prog!main+0x10"]
    assert run(sh, "bc 1") == [f"breakpoint 1 cleared (EXECUTION at {LIBC + 0xE0C10:#x} "
                               f"libc.so.6!getpid)"]
    assert [line.split()[0] for line in run(sh, "bl")] == ["2"]
    assert run(sh, "bc 1") == ["bc: no breakpoint 1 (bl lists them)"]


def test_bc_star_clears_every_breakpoint(sh):
    run(sh, "bp libc.so.6!getpid")
    run(sh, "bp prog!main+4")
    assert run(sh, "bc *") == [
        f"breakpoint 1 cleared (EXECUTION at {LIBC + 0xE0C10:#x} libc.so.6!getpid)",
        f"breakpoint 2 cleared (EXECUTION at {PROG + 0x1144:#x} prog!main+4)"]
    assert run(sh, "bl") == ["no breakpoints"]
    assert run(sh, "bc *") == ["no breakpoints to clear"]
    assert run(sh, "bc") == ["bc: usage: bc N [N...] or bc * (bl lists them)"]
    assert run(sh, "bc x") == ["bc: give a breakpoint number (bl lists them)"]


def test_bl_leaves_out_the_symbol_of_an_address_no_symbol_names(sh):
    run(sh, f"bpw p1000")
    run(sh, f"bp {PROG + 0x10:x}")
    assert run(sh, "bl") == [
        "  1 enabled  MEM_WRITE_PHYS 0x0000000000001000 size 0x1 physical hits 0",
        f"  2 enabled  EXECUTION      {PROG + 0x10:#018x} size 0x0 pgd {PGD:#x} hits 0"]


def test_bl_of_breakpoints_a_script_made_from_a_symbol(sh):
    BP("libc.so.6!getpid", PGD).enable()
    pending = BP("libnotyet.so!start", PGD)  # its module is not mapped: pending
    pending.enable()
    assert run(sh, "bl") == [
        f"  1 enabled  EXECUTION      {LIBC + 0xE0C10:#018x} size 0x0 pgd {PGD:#x} hits 0  "
        f"libc.so.6!getpid",
        f"  2 enabled  EXECUTION      pending (unknown module) size 0x0 pgd {PGD:#x} hits 0  "
        f"libnotyet.so!start"]
    assert run(sh, "bc 2") == ["breakpoint 2 cleared (EXECUTION at pending (unknown module) "
                               "libnotyet.so!start)"]


# --- 3. ln -----------------------------------------------------------------------

@pytest.mark.parametrize("sizes, addr, text", [
    (True, PROG + 0x1140, "prog!main (size 0x60)"),
    (True, PROG + 0x115C, "prog!main+0x1c (size 0x60)"),
    # Past main's end, in a function no symbol names: main is the nearest.
    (True, PROG + 0x1210, "prog!main+0xd0 (size 0x60: past its end, in code no symbol names)"),
    (False, PROG + 0x1210, "prog!main+0xd0"),
    (False, PROG + 0x115C, "prog!main+0x1c"),
    (True, PROG + 0x100, "prog+0x100"),  # before the module's first symbol
    (True, LIBC + 0xE0C38, "libc.so.6!getppid+0x8 (size 0x20)"),
    (True, KERNEL + 0x90044, "vmlinux!sys_getppid+0x4"),
    (True, CRC7 + 0x20, "crc7!crc7_be+0x10"),
    (True, 0x1000, "no symbol (no module of this address space holds it)"),
])
def test_ln_names_the_nearest_preceding_symbol(sh, guest, sizes, addr, text):
    guest.sizes = sizes
    assert run(sh, f"ln {addr:x}") == [f"{addr:#x}: {text}"]


def test_ln_takes_symbols_and_refuses_physical_addresses(sh):
    assert run(sh, "ln prog!main+1c") == [f"{PROG + 0x115C:#x}: prog!main+0x1c (size 0x60)"]
    assert run(sh, "ln p1000") == ["ln: ln takes a virtual address (symbols are per address "
                                   "space)"]


def test_the_symbol_list_is_read_once_per_session(sh, guest):
    calls = []
    listing = guest.linux_symbols
    guest.linux_symbols = lambda pgd: calls.append(pgd) or listing(pgd)
    for off in (0x1150, 0x1160, 0x1210, 0x1220):
        run(sh, f"ln {PROG + off:x}")
    assert calls == [PGD]


# --- 4. dis names branch targets --------------------------------------------------

def test_dis_names_the_targets_of_direct_calls_and_jumps(sh, guest):
    main = PROG + 0x1140
    # call helper; jmp main+0x10 (short); call [rax] (indirect); a call out of
    # every module; je into helper.
    nowhere = PROG + 0x10000
    code = bytearray()
    code += b"\xe8" + (PROG + 0x1120 - (main + 5)).to_bytes(4, "little", signed=True)
    code += b"\xeb\x09"                       # main+5: jmp main+0x10
    code += b"\xff\x10"                       # main+7: call qword ptr [rax]
    code += b"\xe8" + (nowhere - (main + 14)).to_bytes(4, "little", signed=True)
    code += b"\x0f\x84" + (PROG + 0x1128 - (main + 20)).to_bytes(4, "little", signed=True)
    guest.poke(PGD, main, bytes(code))
    out = run(sh, f"dis {main:x}:5")
    assert [line.split("  ")[-1] for line in out] == [
        f"call {PROG + 0x1120:#x} <prog!helper>",
        f"jmp {main + 0x10:#x} <prog!main+0x10>",
        "call qword ptr [rax]",
        f"call {nowhere:#x}",
        f"je {PROG + 0x1128:#x} <prog!helper+0x8>"]
    assert run(sh, f"u {main:x}:5")[0].endswith(f"call {PROG + 0x1120:#x} <prog!helper>")


# --- 5. x over the kernel's symbols -------------------------------------------------

def test_x_finds_kernel_symbols_from_a_process_context(sh):
    assert run(sh, "x vmlinux!sys_getp*") == [
        f"{KERNEL + 0x90000:#018x}  vmlinux!sys_getpid",
        f"{KERNEL + 0x90040:#018x}  vmlinux!sys_getppid",
        "2 symbol(s) match"]
    assert run(sh, "x crc*!*") == [f"{CRC7 + 0x10:#018x}  crc7!crc7_be", "1 symbol(s) match"]
    assert run(sh, "x *!getpid") == [f"{LIBC + 0xE0C10:#018x}  libc.so.6!getpid",
                                     "1 symbol(s) match"]
    assert run(sh, "x *!*getpid") == [f"{KERNEL + 0x90000:#018x}  vmlinux!sys_getpid",
                                      f"{LIBC + 0xE0C10:#018x}  libc.so.6!getpid",
                                      "2 symbol(s) match"]
    assert run(sh, "x nosuch!foo") == ["no symbol matches nosuch!foo (lm lists the modules; "
                                       "lm kernel the kernel's)"]


def test_x_caps_what_it_prints_and_says_how_many_matched(sh, guest, shell):
    many = [{"mod": "vmlinux", "mod_fullname": "vmlinux", "name": f"f{i}", "addr": KERNEL + i}
            for i in range(shell.X_LIMIT + 5)]
    guest.linux_symbols = lambda pgd: many if pgd == 0 else []
    out = run(sh, "x vmlinux!f*")
    assert len(out) == shell.X_LIMIT + 1
    assert out[-1] == (f"{shell.X_LIMIT + 5} symbols match; the first {shell.X_LIMIT} are "
                       f"shown (narrow the pattern)")


def test_x_from_the_kernel_context_searches_the_kernel(sh):
    sh.pgd = 0
    assert run(sh, "x vmlinux!sched*") == [f"{KERNEL + 0x100000:#018x}  vmlinux!schedule",
                                           "1 symbol(s) match"]


# --- 6. mon and unmon ------------------------------------------------------------------

def test_mon_and_unmon_say_what_happened(sh, guest):
    assert run(sh, "mon 42") == [f"now monitoring pid 42 (prog, pgd {PGD:#x})"]
    assert guest.monitored == {PGD}
    assert run(sh, "mon prog") == [f"pid 42 (prog, pgd {PGD:#x}) was already monitored; "
                                   f"nothing changed"]
    assert run(sh, "unmon 42") == [f"stopped monitoring pid 42 (prog, pgd {PGD:#x})"]
    assert run(sh, "unmon 42") == [f"pid 42 (prog, pgd {PGD:#x}) was not monitored; nothing "
                                   f"changed (ps marks the monitored ones with *)"]
    assert guest.monitored == set()
    assert run(sh, "mon") == [f"now monitoring pid 42 (prog, pgd {PGD:#x})"]  # the context


def test_mon_of_a_kernel_thread_explains_what_to_use(sh, guest):
    out = run(sh, "mon 2")
    assert out == ["mon: pid 2 (kthreadd) is a kernel thread: kernel threads have no address "
                   "space of their own (they run in the kernel's, which every process maps), "
                   "so there is nothing to monitor. Use a breakpoint on a kernel address "
                   "(bp ADDR fires in any process) or mon the user process it works for"]
    assert guest.monitored == set()


def test_an_ambiguous_name_lists_the_candidates(sh):
    assert run(sh, "mon sh") == ["mon: 2 processes are named 'sh': pid 50 (sh, pgd 0x5000), "
                                 "pid 51 (sh, pgd 0x6000); give a pid"]


# --- 7. the banner of a breakpoint's shell -----------------------------------------------

def test_a_breakpoints_shell_says_which_breakpoint_hit(shell, sh, guest):
    run(sh, "bp libc.so.6!getpid")
    hit = shell.Shell(0, origin="script", reason=f"breakpoint 1: execution at {LIBC + 0xE0C10:#x}")
    lines = hit.banner().splitlines()
    assert lines[0] == f"breakpoint 1 (libc.so.6!getpid) hit on vCPU 0: execution at " \
                       f"{LIBC + 0xE0C10:#x}"
    assert lines[1].startswith("PyREBox shell (this vCPU is stopped at the breakpoint, the VM "
                               "with it): vCPU 0, PC ")
    assert "opened by a script" not in hit.banner()


def test_other_shells_keep_their_banner(shell, guest):
    script = shell.Shell(0, origin="script", reason="my probe fired")
    assert script.banner().splitlines()[0] == "my probe fired"
    assert "opened by a script" in script.banner()
    assert shell.Shell(0).banner().startswith("PyREBox shell (the VM is stopped): vCPU 0")
    gone = shell.Shell(0, origin="script", reason="breakpoint 9: execution at 0x10")
    assert gone.banner().splitlines()[0] == "breakpoint 9 hit on vCPU 0: execution at 0x10"


# --- 8. completion -----------------------------------------------------------------------

def test_command_names_complete(sh):
    items, start = sh.complete("list_c")
    assert "list_commands" in items and start == -len("list_c")
    items, start = sh.complete("%b")
    assert {"bc", "bd", "be", "bl", "bp", "bpr", "bpw"} <= set(items) and start == -1


def test_module_then_symbol_names_complete_after_address_commands(sh):
    assert sh.complete("bp li") == (["libc.so.6!"], -2)
    assert sh.complete("x ") == (["crc7!", "libc.so.6!", "prog!", "vmlinux!"], 0)
    assert sh.complete("ln libc.so.6!getp") == (["libc.so.6!getpid", "libc.so.6!getppid"],
                                                -len("libc.so.6!getp"))
    assert sh.complete("x vmlinux!sys_") == (["vmlinux!sys_getpid", "vmlinux!sys_getppid"],
                                             -len("vmlinux!sys_"))
    assert sh.complete("bp prog!m") == (["prog!main"], -len("prog!m"))


def test_symbol_completions_are_capped(sh, guest, shell):
    many = [{"mod": "vmlinux", "mod_fullname": "vmlinux", "name": f"f{i:04}", "addr": KERNEL + i}
            for i in range(shell.COMPLETION_LIMIT * 3)]
    guest.linux_symbols = lambda pgd: many if pgd == 0 else []
    items, _ = sh.complete("bp vmlinux!f")
    assert len(items) == shell.COMPLETION_LIMIT and items[0] == "vmlinux!f0000"


def test_plugin_names_complete_after_vol(sh, monkeypatch):
    from pyrebox import volatility
    monkeypatch.setattr(volatility, "list_commands", lambda: [
        ("linux.pslist.PsList", ""), ("linux.pstree.PsTree", ""), ("linux.lsmod.Lsmod", "")])
    assert sh.complete("vol linux.ps") == (["linux.pslist.PsList", "linux.pstree.PsTree"],
                                           -len("linux.ps"))
    assert sh.complete("vol linux.pslist.PsList --p")[1] != -len("linux.pslist.PsList --p")


def test_custom_command_names_complete(sh, monkeypatch):
    monkeypatch.setattr(type(sh), "_custom", lambda self: {"hello": ("scripts.tool", None),
                                                           "help_me": ("scripts.tool", None)})
    assert sh.complete("custom he") == (["hello", "help_me"], -2)
