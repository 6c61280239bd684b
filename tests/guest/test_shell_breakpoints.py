"""Breakpoints and snapshots from the PyREBox shell, driven through real
pseudo-terminals.

One boot serves the module: `pyrebox run --disk FILE` (interactive, in a
pty) and `pyrebox attach` (another pty). In file order:
- dyn_wait waits; `bp libc.so.6!getpid` in its address space stops the
  getpid call made after the wait; the shell the breakpoint opens shows RIP
  at the getpid address the program printed, `ew` changes a global the
  program prints, a second breakpoint at getpid's `ret` sees the pid in RAX
  and `r RAX=2a` changes what getpid returns;
- static_loop waits; `bpw` on its buffer stops at the store in pyrebox_step
  with the byte (i*7+3)&0xff; bl / bd / be list, disable and enable it;
- static_loop waits; a byte of its buffer is set, `savevm`, the byte is set
  again and the program released; then twice `loadvm`: each time the
  program waits again, `ps` lists it, and released it prints the checksum
  of the buffer as saved.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from pyrebox import paths
from test_shell import BINARY as STATIC_LOOP
from test_shell import CONSOLE, SHELL, attached, booted, expected_checksum, file_bytes
from test_shell import Client as ShellClient

pexpect = pytest.importorskip("pexpect")
capstone = pytest.importorskip("capstone")

pytestmark = pytest.mark.guest

def store_address(function: int) -> int:
    """The address of the byte store in static_loop's pyrebox_step."""
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    for insn in md.disasm(file_bytes(STATIC_LOOP, function, 64), function):
        if insn.mnemonic == "mov" and insn.op_str.startswith("byte ptr ["):
            return insn.address
        if insn.mnemonic == "ret":
            break
    raise AssertionError("no byte store in pyrebox_step")


class Client(ShellClient):
    """The shell tests' console client, plus waiting for breakpoint hits."""

    syncs = 0

    def shell_opened_by_breakpoint(self, timeout: float = 120) -> str:
        """Waits until a breakpoint opens the shell; returns the reason its
        banner gives. The client may have been at the console prompt (the
        dumb terminal's pending prompt is replaced once a line is sent) or
        still in the previous shell's relay: a line that prints a unique
        value finds where the output is."""
        # The banner's first line: "breakpoint N (mod!sym) hit on vCPU C: what".
        self.child.expect(r"breakpoint (\d+) (\([^)\r\n]*\) )?hit on vCPU \d+: ([^\r\n]*)\r?\n",
                          timeout=timeout)
        number, symbol, what = (self.child.match.group(i) for i in (1, 2, 3))
        self.last_symbol = symbol.strip()[1:-1] if symbol else None
        reason = f"breakpoint {number}: {what}"
        self.child.expect_exact("PyREBox shell (", timeout=60)
        self.child.sendline("")
        Client.syncs += 1
        self.child.sendline(f'print("sync", {Client.syncs}+1000)')
        self.child.expect_exact(f"sync {Client.syncs + 1000}")
        self.child.expect_exact(SHELL)
        return reason

    def resume(self, word: str = "c") -> None:
        """Leaves a shell when another breakpoint hit is expected next: the
        hit's shell may open before the client shows the console prompt
        (the client then shows only the newest prompt), so the farewell is
        what is waited for."""
        self.run(word, "left the shell; the VM continues")


def registers(text: str) -> dict[str, int]:
    return {name: int(value, 16) for name, value in re.findall(r"(\w+)=(0x[0-9a-f]+)", text)}


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    work = tmp_path_factory.mktemp("shellbp")
    disk = work / "snapshots.qcow2"
    with booted(work, ["--disk", str(disk), "--timeout", "600"]) as (run, rundir):
        yield {"run": run, "rundir": rundir, "work": work, "disk": disk}


@pytest.fixture(scope="module")
def console(vm):
    with attached(vm["work"], vm["rundir"]) as child:
        yield Client(child)


def start(run, command: str, keys: list[str]) -> dict[str, str]:
    """Starts a program in the guest's shell; returns its key=value lines
    up to `waiting`."""
    run.send(command + "\r")
    found = {}
    for key in keys:
        run.expect(rf"{key}=(\S+)\r\n")
        found[key] = run.match.group(1)
    run.expect_exact("waiting")
    return found


# --- bp in libc --------------------------------------------------------------

@pytest.fixture(scope="module")
def dyn_wait(vm):
    found = start(vm["run"], "dyn_wait", ["pid", "getpid", "tag"])
    return {"pid": int(found["pid"]), "getpid": int(found["getpid"], 16),
            "tag": int(found["tag"], 16)}


def test_bp_on_a_libc_symbol_of_the_waiting_program(console, dyn_wait):
    console.run("sh")
    out = console.run(f"proc {dyn_wait['pid']}")
    assert f"pid {dyn_wait['pid']} (dyn_wait)" in out, out
    out = console.run("bp libc.so.6!getpid")
    match = re.search(r"breakpoint (\d+): EXECUTION at (0x[0-9a-f]+) \(pgd 0x[0-9a-f]+\)", out)
    assert match, out
    assert int(match.group(2), 16) == dyn_wait["getpid"]
    dyn_wait["bp"] = int(match.group(1))
    # Bad input: a message, nothing placed, the shell goes on.
    assert "unknown symbol libc.so.6!no_such_function" in console.run(
        "bp libc.so.6!no_such_function")
    # A module not mapped (yet): a pending breakpoint, cleared at once.
    out = console.run("bp nosuch.so!getpid")
    pending = re.search(r"breakpoint (\d+): EXECUTION at nosuch.so!getpid pending \(unknown "
                        r"module\): it arms itself in the first process that maps nosuch.so", out)
    assert pending, out
    assert "cleared" in console.run(f"bc {pending.group(1)}")
    assert "usage: bp ADDR[:N]" in console.run("bp")
    assert "is not a hex number" in console.run("bpw zzz")
    listing = console.run("bl")
    assert re.search(rf"^\s*{dyn_wait['bp']} enabled\s+EXECUTION\s+{dyn_wait['getpid']:#018x}",
                     listing, re.M), listing
    assert len(listing.strip().splitlines()) == 1, listing
    console.run("q", CONSOLE)


def test_getpid_breakpoint_stops_at_getpid_and_edits_change_the_output(vm, console, dyn_wait):
    run = vm["run"]
    run.send("\r")  # releases dyn_wait: its getpid call hits the breakpoint
    reason = console.shell_opened_by_breakpoint()
    assert reason == f"breakpoint {dyn_wait['bp']}: execution at {dyn_wait['getpid']:#x}"
    regs = registers(console.run("r"))
    assert regs["RIP"] == dyn_wait["getpid"]
    # The program's global, then getpid's return value.
    assert "wrote 2 byte(s)" in console.run(f"ew {dyn_wait['tag']:x} 4242")
    code = console.run("dis libc.so.6!getpid:4")
    lines = code.strip().splitlines()
    assert lines[0].startswith(f"{dyn_wait['getpid']:016x}"), code
    ret = next(int(line.split()[0], 16) for line in lines if line.split()[-1] == "ret")
    out = console.run(f"bp {ret:x}")
    ret_bp = int(re.search(r"breakpoint (\d+): EXECUTION", out).group(1))
    assert f"breakpoint {dyn_wait['bp']} disabled" in console.run(f"bd {dyn_wait['bp']}")
    console.resume()
    reason = console.shell_opened_by_breakpoint()
    assert reason == f"breakpoint {ret_bp}: execution at {ret:#x}"
    regs = registers(console.run("r"))
    assert regs["RIP"] == ret
    assert regs["RAX"] == dyn_wait["pid"]  # the system call's result
    assert "RAX = 0x2a" in console.run("r RAX=2a")
    assert registers(console.run("r"))["RAX"] == 0x2A
    console.run(f"bd {ret_bp}")
    console.run("c", CONSOLE)
    run.expect(r"result=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == 42
    run.expect(r"tag_value=(0x[0-9a-f]+)\r\n", timeout=60)
    assert int(run.match.group(1), 16) == 0x4242
    run.expect_exact("# ")


# --- bpw on static_loop's buffer ----------------------------------------------

@pytest.fixture(scope="module")
def loop(vm):
    found = start(vm["run"], "static_loop 1000 wait", ["pid", "buffer", "function"])
    return {"pid": int(found["pid"]), "buffer": int(found["buffer"], 16),
            "function": int(found["function"], 16)}


def test_bpw_bl_bd_be(console, loop):
    console.run("sh")
    console.run(f"proc {loop['pid']}")
    out = console.run(f"bpw {loop['buffer']:x}:10")
    match = re.search(rf"breakpoint (\d+): MEM_WRITE at {loop['buffer']:#x}:0x10 "
                      rf"\(pgd 0x[0-9a-f]+\)", out)
    assert match, out
    loop["bp"] = number = int(match.group(1))
    line = rf"^\s*{number} %s\s+MEM_WRITE\s+{loop['buffer']:#018x} size 0x10 pgd 0x[0-9a-f]+ hits \d+$"
    assert re.search(line % "enabled ", console.run("bl"), re.M)
    assert f"breakpoint {number} disabled" in console.run(f"bd {number}")
    assert re.search(line % "disabled", console.run("bl"), re.M)
    assert f"breakpoint {number} enabled" in console.run(f"be {number}")
    assert re.search(line % "enabled ", console.run("bl"), re.M)
    assert "no breakpoint 999" in console.run("bd 999")
    assert "give a breakpoint number" in console.run("be x")
    console.run("q", CONSOLE)


def test_bpw_stops_at_the_store_with_the_byte_written(vm, console, loop):
    run = vm["run"]
    store = store_address(loop["function"])
    run.send("\r")  # releases static_loop
    for i in (0, 1):
        reason = console.shell_opened_by_breakpoint()
        value = (i * 7 + 3) & 0xFF
        assert reason.startswith(f"breakpoint {loop['bp']}: write of 1 byte(s) at "
                                 f"{loop['buffer'] + i:#x} "), reason
        assert reason.endswith(f", value {value:#04x}"), reason
        regs = registers(console.run("r"))
        assert regs["RIP"] == store
        assert regs["RAX"] & 0xFF == value and regs["RDI"] == i
        first = console.run("dis").strip().splitlines()[0]
        assert first.startswith(f"{store:016x}") and "mov byte ptr [" in first, first
        if i == 0:
            console.resume()
        else:
            console.run(f"bd {loop['bp']}")
            console.run("c", CONSOLE)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == expected_checksum(1000)
    run.expect_exact("# ")


# --- savevm / loadvm ----------------------------------------------------------

def release(run) -> list[str]:
    """Releases the waiting static_loop; returns the lines it prints then."""
    run.send("\r")
    run.expect(r"(iterations=\d+)\r\n", timeout=120)
    lines = [run.match.group(1)]
    run.expect(r"(checksum=\d+)\r\n", timeout=60)
    lines.append(run.match.group(1))
    run.expect_exact("# ")
    return lines


def test_savevm_then_loadvm_twice_replays_the_same_output(vm, console):
    run = vm["run"]
    found = start(run, "static_loop 2000 wait", ["pid", "buffer"])
    pid, spare = int(found["pid"]), int(found["buffer"], 16) + 0x7D0  # never written
    console.run("sh")
    console.run(f"proc {pid}")
    console.run(f"eb {spare:x} 55")
    assert "saved snapshot waiting" in console.run("savevm waiting", timeout=180)
    console.run(f"eb {spare:x} 11")  # after the snapshot: undone by loadvm
    console.run("q", CONSOLE)
    assert release(run) == ["iterations=2000", f"checksum={expected_checksum(2000) + 0x11}"]
    for _ in range(2):
        console.run("sh")
        out = console.run("loadvm waiting", timeout=180)
        assert re.search(r"restored snapshot waiting: vCPU 0 at PC 0x[0-9a-f]+, process pgd", out)
        assert re.search(rf"^\S?\s+{pid}\s+\d+\s+0x[0-9a-f]+\s+static_loop$",
                         console.run("ps"), re.M)
        console.run(f"proc {pid}")
        assert console.run(f"db {spare:x}:1").strip().startswith(f"{spare:016x}  55")
        console.run("q", CONSOLE)
        assert release(run) == ["iterations=2000",
                                f"checksum={expected_checksum(2000) + 0x55}"]
    console.run("sh")
    assert "usage: loadvm NAME" in console.run("loadvm")
    out = console.run("loadvm nosuch", timeout=180)
    assert "loadvm: RuntimeError: loadvm nosuch:" in out, out
    assert "3" in console.run("1 + 2")
    console.run("q", CONSOLE)
    run.send("echo still-$((40+2))\r")
    run.expect_exact("still-42")


def test_snapshots_from_a_breakpoint_shell_happen_on_leaving(vm, console):
    run = vm["run"]
    found = start(run, "static_loop 1000 wait", ["pid", "function"])
    pid, function = int(found["pid"]), int(found["function"], 16)
    console.run("sh")
    console.run(f"proc {pid}")
    number = int(re.search(r"breakpoint (\d+)", console.run(f"bp {function:x}")).group(1))
    console.run("q", CONSOLE)
    run.send("\r")
    assert console.shell_opened_by_breakpoint() == \
        f"breakpoint {number}: execution at {function:#x}"
    assert registers(console.run("r"))["RDI"] == 0  # pyrebox_step(0)
    assert "savevm atstep: queued" in console.run("savevm atstep")
    console.run(f"bd {number}")
    console.run("c", CONSOLE)
    run.expect_exact("savevm atstep done", timeout=180)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == expected_checksum(1000)
    run.expect_exact("# ")
    # Back to the call of pyrebox_step(0): the next call stops again.
    console.run("sh")
    console.run(f"be {number}")
    out = console.run("loadvm atstep", timeout=180)
    pc, pgd = (int(v, 16) for v in re.search(
        r"restored snapshot atstep: vCPU 0 at PC (0x[0-9a-f]+), process pgd (0x[0-9a-f]+)",
        out).groups())
    assert pc == registers(console.run("r"))["RIP"]
    if pc < 0x800000000000:  # in static_loop's code: the context is static_loop
        assert f"pgd {pgd:#x}, pid {pid} (static_loop)" in console.run(f"proc {pid}")
    console.resume("q")
    console.shell_opened_by_breakpoint()
    assert registers(console.run("r"))["RDI"] == 1
    # From that shell, back again; the program then runs to its end.
    assert "loadvm atstep: queued" in console.run("loadvm atstep")
    console.run(f"bd {number}")
    console.run("c", CONSOLE)
    run.expect_exact("loadvm atstep done", timeout=180)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == expected_checksum(1000)
    run.expect_exact("# ")


def test_snapshot_disk_holds_the_snapshot(vm):
    import subprocess
    info = subprocess.run(["qemu-img", "snapshot", "-l", "-U", str(vm["disk"])],
                          capture_output=True, text=True)
    assert re.search(r"\bwaiting\b", info.stdout), info.stdout + info.stderr


def return_offset_of_first_call(program: str, callee: str) -> int:
    """The offset in `program`'s main of the instruction after its first
    call to `callee` (through the PLT): the return address a backtrace
    from inside that call shows."""
    listing = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "--disassemble=main",
                              os.path.join(paths.guest().dir, "programs", program)],
                             check=True, capture_output=True, text=True).stdout
    lines = [line for line in listing.splitlines() if re.match(r"\s+[0-9a-f]+:\t", line)]
    main = int(re.search(r"^([0-9a-f]+) <main>:", listing, re.M).group(1), 16)
    for line, following in zip(lines, lines[1:]):
        if re.search(rf"\bcall\s+[0-9a-f]+ <{callee}@plt>", line):
            return int(following.split(":")[0], 16) - main
    raise AssertionError(f"no call to {callee} in {program}'s main:\n{listing}")


def test_a_pending_bp_set_before_the_program_starts_stops_at_getpid(vm, console):
    """bp libc.so.6!getpid from the guest shell's context (busybox maps no
    libc): pending; dyn_wait, started next, maps libc and the breakpoint
    arms there; its first getpid call opens the shell at the address the
    program then prints."""
    console.run("sh")
    out = console.run("bp libc.so.6!getpid")
    match = re.search(r"breakpoint (\d+): EXECUTION at libc.so.6!getpid pending \(unknown "
                      r"module\)", out)
    assert match, out
    number = int(match.group(1))
    assert re.search(rf"^\s*{number} enabled\s+EXECUTION\s+pending \(unknown module\)",
                     console.run("bl"), re.M)
    console.run("q", CONSOLE)
    run = vm["run"]
    run.send("dyn_wait\r")  # its first getpid call (for pid=) hits the armed breakpoint
    reason = console.shell_opened_by_breakpoint()
    assert console.last_symbol == "libc.so.6!getpid"
    rip = registers(console.run("r"))["RIP"]
    assert reason == f"breakpoint {number}: execution at {rip:#x}"
    frames = console.run("k")
    assert "libc.so.6!getpid" in frames.splitlines()[1], frames
    # With the program's folder on the symbol path (and libc6-dbg's debug
    # file under /usr/lib/debug), main and libc's static caller are named.
    programs = os.path.join(paths.guest().dir, "programs")
    assert programs in console.run(f"sympath + {programs}")
    frames = [line.split()[-1] for line in console.run("k").splitlines()[1:4]]
    assert frames[0] == "libc.so.6!getpid", frames
    assert frames[1] == f"dyn_wait!main+{return_offset_of_first_call('dyn_wait', 'getpid'):#x}"
    assert re.fullmatch(r"libc\.so\.6!__libc_start_call_main\+0x[0-9a-f]+", frames[2]), frames
    assert f"breakpoint {number} cleared" in console.run(f"bc {number}")
    console.run("c", CONSOLE)
    found = {}
    for key in ("pid", "getpid"):
        run.expect(rf"{key}=(\S+)\r\n")
        found[key] = run.match.group(1)
    assert int(found["getpid"], 16) == rip  # the address the program's loader resolved
    run.expect_exact("waiting")
    run.send("\r")
    run.expect(r"result=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == int(found["pid"])
    run.expect_exact("# ")


def test_leaving_the_console_and_powering_off(vm, console):
    console.child.sendline("q")
    console.child.expect(pexpect.EOF)
    run = vm["run"]
    run.send("exit\r")
    run.expect(pexpect.EOF, timeout=120)
    run.close()
    assert run.exitstatus == 0
