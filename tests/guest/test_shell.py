"""The PyREBox console and shell, driven through real pseudo-terminals.

One boot serves the module: `pyrebox run` (interactive, in a pty) runs
`static_loop 1000 wait` in the guest; `pyrebox attach` (another pty) opens
the console while the program waits, and the tests walk through the console
and shell commands in file order. At the end the program is released, a
script's callback opens the shell on the vCPU at pyrebox_step, and leaving it
lets the program finish with the checksum the shell's edit implies.
"""

from __future__ import annotations

import contextlib
import os
import re
import struct
import time

import pytest

from conftest import LAUNCHER, ROOT, Wire, stop_launcher, write
from pyrebox import paths

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.guest

LOOPS = 1000
SHELL = "pyrebox-shell> "
CONSOLE = "pyrebox> "
ENV = dict(os.environ, TERM="dumb", PROMPT_TOOLKIT_NO_CPR="1")
BINARY = os.path.join(paths.GUEST, "programs", "static_loop")

TOOL_V1 = '''
import _pyrebox
from api import CallbackManager

VERSION = "v1"
cm = None


def initialize_callbacks(module_hdl, printer):
    global cm
    cm = CallbackManager(module_hdl)
    # An address nothing executes: it only has to be registered.
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, lambda *args: None, name="probe",
                    addr=0x7000)


def clean():
    cm.clean()


def do_hello(line):
    """Greets with the script's version and the callbacks registered."""
    print(f"hello {VERSION} {line} callbacks={_pyrebox.callback_count()}")
'''

NEEDS_TOOL = '''
requirements = ["scripts.tool"]


def initialize_callbacks(module_hdl, printer):
    printer("needs_tool loaded")


def clean():
    pass
'''

BREAKER = '''
import ipython_shell
from api import CallbackManager

cm = None


def initialize_callbacks(module_hdl, printer):
    global cm
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, stop_here, name="stop", addr=FUNCTION)


def stop_here(cpu_index, cpu, tb):
    cm.rm_callback("stop")
    ipython_shell.start_shell(cpu_index)


def clean():
    cm.clean()
'''


def expected_checksum(iterations: int) -> int:
    buffer = [0] * 4096
    for i in range(iterations):
        buffer[i % 4096] = (i * 7 + 3) & 0xFF
    return sum(buffer)


def file_bytes(path: str, vaddr: int, size: int) -> bytes:
    """Bytes at virtual address `vaddr` of a static ELF64, from its PT_LOADs."""
    with open(path, "rb") as f:
        data = f.read()
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, p_vaddr, _, p_filesz = struct.unpack_from(
            "<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 1 and p_vaddr <= vaddr < p_vaddr + p_filesz:
            start = p_offset + vaddr - p_vaddr
            return data[start:start + size]
    raise AssertionError(f"{vaddr:#x} not in {path}")


class Client:
    """A console client in a pty: run() sends a line and returns its output."""

    def __init__(self, child):
        self.child = child

    def run(self, line: str, prompt: str = SHELL, timeout: float = 60) -> str:
        self.child.sendline(line)
        self.child.expect_exact(prompt, timeout=timeout)
        text = self.child.before.replace("\r\n", "\n").replace("\r", "")
        lines = text.split("\n")
        assert line in lines[0], text  # the echoed input
        # A line typed before the client's prompt took the terminal is
        # echoed twice (by the terminal, then by the prompt).
        while len(lines) > 1 and lines[1].strip() == line.strip():
            del lines[1]
        return "\n".join(lines[1:])


@contextlib.contextmanager
def booted(work, args: list[str]):
    """`pyrebox run ARGS` in a pty (cwd `work`, its output in run.log) up to
    the guest's shell prompt; yields (run, rundir); the launcher is stopped
    at the end."""
    run = pexpect.spawn(LAUNCHER, ["run", *args], cwd=str(work), env=ENV, encoding="utf-8",
                        timeout=120)
    run.logfile_read = open(work / "run.log", "w")
    try:
        run.expect(r"QMP socket: (\S+)/qmp\.sock")
        rundir = run.match.group(1)
        run.expect_exact("powers the guest off")
        run.expect_exact("# ")
        yield run, rundir
    finally:
        stop_launcher(run)


@contextlib.contextmanager
def attached(work, rundir: str):
    """`pyrebox attach RUNDIR` in a pty (its output in attach.log) at the
    console prompt; yields the pexpect child, ended at the end."""
    child = pexpect.spawn(LAUNCHER, ["attach", rundir], cwd=str(work), env=ENV,
                          encoding="utf-8", timeout=60)
    child.logfile_read = open(work / "attach.log", "w")
    child.expect_exact(CONSOLE)
    yield child
    if child.isalive():
        child.terminate(force=True)


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    work = tmp_path_factory.mktemp("shell")
    write(work / "scripts" / "__init__.py", "")
    write(work / "scripts" / "tool.py", TOOL_V1)
    write(work / "scripts" / "needs_tool.py", NEEDS_TOOL)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.tool: True\n")
    with booted(work, ["--conf", conf, "--timeout", "400"]) as (run, rundir):
        yield {"run": run, "rundir": rundir, "work": work}


def test_escape_key_switches_to_the_console_and_back(vm):
    run = vm["run"]
    run.send("\x1d")
    run.expect_exact(CONSOLE)
    console = Client(run)
    out = console.run("list_modules", CONSOLE)
    assert re.search(r"^\s+1\s+yes\s+scripts\.tool$", out, re.M), out
    run.sendline("q")
    run.expect_exact("back to the guest's console")
    run.send("echo back-$((40+2))\r")
    run.expect_exact("back-42")


@pytest.fixture(scope="module")
def program(vm):
    run = vm["run"]
    run.send(f"static_loop {LOOPS} wait\r")
    run.expect(r"pid=(\d+)\r\n")
    pid = int(run.match.group(1))
    run.expect(r"buffer=(0x[0-9a-f]+)\r\n")
    buffer = int(run.match.group(1), 16)
    run.expect(r"function=(0x[0-9a-f]+)\r\n")
    function = int(run.match.group(1), 16)
    run.expect_exact("waiting")
    return {"pid": pid, "buffer": buffer, "function": function}


@pytest.fixture(scope="module")
def console(vm, program):
    with attached(vm["work"], vm["rundir"]) as child:
        yield Client(child)


@pytest.fixture(scope="module")
def shell(console):
    console.run("sh", SHELL)
    return console


def test_monitor_commands_pass_through(console):
    assert "VM status: running" in console.run("info status", CONSOLE)
    out = console.run("hepl", CONSOLE)
    assert "unknown command" in out and "help" in out


def test_ps_lists_the_waiting_program(shell, program):
    out = shell.run("ps")
    assert re.search(rf"^\S?\s+{program['pid']}\s+\d+\s+0x[0-9a-f]+\s+static_loop$", out,
                     re.M), out


def test_proc_and_lm_list_the_program_modules(shell, program):
    out = shell.run(f"proc {program['pid']}")
    assert f"pid {program['pid']} (static_loop)" in out
    out = shell.run("%lm")
    assert re.search(r"^0x0000000020000000\s+0x[0-9a-f]+\s+static_loop\s+"
                     r"/usr/local/bin/static_loop$", out, re.M), out


def test_registers_and_disassembly_at_pc(shell):
    out = shell.run("r")
    rip = int(re.search(r"RIP=(0x[0-9a-f]+)", out).group(1), 16)
    out = shell.run("dis")
    first = out.strip().splitlines()[0]
    assert first.startswith(f"{rip:016x}"), out
    assert len(first.split()) >= 3  # address, bytes, mnemonic


def test_db_shows_the_program_code_and_u_disassembles_it(shell, program):
    function = program["function"]
    expected = file_bytes(BINARY, function, 16)
    out = shell.run(f"db {function:x}:10")
    assert out.strip().startswith(f"{function:016x}  " + " ".join(f"{b:02x}" for b in expected)), out
    out = shell.run(f"u {{{function}}}:8")  # {expr}: a Python expression
    assert out.strip().startswith(f"{function:016x}  {expected[:1].hex()}"), out


def test_eb_changes_the_buffer(shell, program):
    target = program["buffer"] + 0x7D0  # never written by a 1000-iteration run
    assert "00 00 00 00" in shell.run(f"db {target:x}:4")
    assert "wrote 1 byte(s)" in shell.run(f"eb {target:x} 55")
    assert shell.run(f"db {target:x}:4").strip().startswith(f"{target:016x}  55 00 00 00")


def test_vol_pslist_lists_the_waiting_program(shell, program):
    out = shell.run("vol linux.pslist.PsList", timeout=120)
    # PrettyTextRenderer's rows: * | OFFSET (V) | PID | TID | PPID | COMM | ...
    rows = [[c.strip() for c in line.split("|")] for line in out.splitlines()
            if line.startswith("* |")]
    mine = [r for r in rows if r[2] == str(program["pid"])]
    assert len(mine) == 1 and mine[0][5] == "static_loop", out
    assert any(r[2] == "1" and r[5] == "init" for r in rows), out
    assert re.search(r"^\(\d+ row\(s\), [\d.]+ s\)$", out, re.M), out
    assert "linux.pslist.PsList" in shell.run("list_vol_commands pslist")
    assert "vol: no Volatility plugin 'nosuch'" in shell.run("vol nosuch")
    assert "usage: vol PLUGIN" in shell.run("vol")


def test_savemem_and_dump_write_files_only_the_user_reads(vm, shell, program):
    work = vm["work"]
    image, dump = work / "shell.mem", work / "buffer.bin"
    write(dump, "an older file of mode 0644")
    os.chmod(dump, 0o644)
    assert f"saved 16 byte(s) to {dump}" in shell.run(f"dump {program['buffer']:x}:10 {dump}")
    assert os.stat(dump).st_mode & 0o777 == 0o600
    assert len(dump.read_bytes()) == 16
    shell.run(f"savemem {image}", timeout=120)
    assert os.stat(image).st_mode & 0o777 == 0o600
    assert os.path.getsize(image) >= 512 << 20
    image.unlink()


def test_bad_input_gets_a_message_and_the_shell_goes_on(shell):
    assert "unknown command 'lsm'; did you mean: lm" in shell.run("lsm")
    assert "not mapped" in shell.run("db 0:10")
    assert "symbols not available" in shell.run("x foo!bar") or \
        "no symbol" in shell.run("x foo!bar")
    assert "is not a hex number" in shell.run("db zzz")
    assert "no process 'nosuch'" in shell.run("proc nosuch")
    assert "3" in shell.run("1 + 2")
    assert "ZeroDivisionError" in shell.run("1/0")
    assert "db [p]ADDR[:N]" in shell.run("db?")


def test_custom_command_of_a_script(shell):
    out = shell.run("custom hello world")
    assert "hello v1 world callbacks=1" in out
    listing = shell.run("list_commands")
    assert re.search(r"hello\s+Greets with the script's version", listing)
    assert "no custom command 'helo'; did you mean: hello?" in shell.run("custom helo")


def test_leaving_the_shell_resumes_the_vm(shell):
    shell.run("q", CONSOLE)
    assert "VM status: running" in shell.run("info status", CONSOLE)


def test_a_required_script_is_not_unloaded(console):
    out = console.run("import_module scripts.needs_tool", CONSOLE)
    assert "loaded script scripts.needs_tool (handle 2)" in out
    out = console.run("unload_module 1", CONSOLE)
    assert "is required by scripts.needs_tool" in out and "nothing was unloaded" in out
    out = console.run("unload_module 2", CONSOLE)
    assert "unloaded script scripts.needs_tool (handle 2)" in out
    out = console.run("list_modules", CONSOLE)
    assert re.search(r"^\s+2\s+no\s+scripts\.needs_tool$", out, re.M), out


def test_reload_picks_up_edited_code_and_leaves_one_callback(vm, console):
    write(vm["work"] / "scripts" / "tool.py", TOOL_V1.replace('"v1"', '"v2-edited"'))
    out = console.run("reload_module 1", CONSOLE)
    assert "loaded script scripts.tool (handle 1)" in out
    console.run("sh", SHELL)
    assert "hello v2-edited again callbacks=1" in console.run("custom hello again")
    console.run("quit", CONSOLE)


def test_script_opens_the_shell_in_a_callback(vm, console, program):
    write(vm["work"] / "scripts" / "breaker.py",
          BREAKER.replace("FUNCTION", hex(program["function"])))
    assert "loaded script scripts.breaker" in console.run("import_module scripts.breaker",
                                                          CONSOLE)
    run = vm["run"]
    run.send("\r")  # releases static_loop: its first pyrebox_step opens the shell
    child = console.child
    child.expect_exact("opened by a script", timeout=60)
    child.sendline("")  # the dumb terminal's pending console prompt is replaced
    child.expect_exact(SHELL)
    out = console.run("r")
    assert int(re.search(r"RIP=(0x[0-9a-f]+)", out).group(1), 16) == program["function"]
    assert console.run("dis").strip().startswith(f"{program['function']:016x}")
    console.run("c", CONSOLE)
    run.expect(r"checksum=(\d+)\r\n", timeout=120)
    assert int(run.match.group(1)) == expected_checksum(LOOPS) + 0x55


def test_guest_clock_stands_still_while_a_callbacks_shell_is_open(vm, console, program):
    # The guest times a static_loop run whose first pyrebox_step opens the
    # shell; the shell stays open for HOLD seconds of host time. The guest
    # must not see them (its clock stops with the shell, as with `stop`).
    hold = 6
    write(vm["work"] / "scripts" / "clock_breaker.py",
          BREAKER.replace("FUNCTION", hex(program["function"])))
    assert "loaded script scripts.clock_breaker" in console.run(
        "import_module scripts.clock_breaker", CONSOLE)
    run = vm["run"]
    run.send("read x; cat /proc/uptime; static_loop 10; cat /proc/uptime\r")
    run.send("\r")  # the read; static_loop's first step then opens the shell
    run.expect(r"\r\n(\d+\.\d+) \d+\.\d+\r\n")
    before = float(run.match.group(1))
    child = console.child
    child.expect_exact("opened by a script", timeout=60)
    child.sendline("")
    child.expect_exact(SHELL)
    time.sleep(hold)
    console.run("c", CONSOLE)
    run.expect(r"checksum=\d+\r\n(\d+\.\d+) \d+\.\d+\r\n", timeout=120)
    elapsed = float(run.match.group(1)) - before
    assert elapsed < hold / 2, f"the guest saw {elapsed:.2f} s pass (shell held {hold} s)"


def test_completions_come_from_the_server(vm, console):
    console.child.sendline("q")
    console.child.expect(pexpect.EOF)
    wire = Wire(os.path.join(vm["rundir"], "console.sock"))
    prompt = wire.until("prompt")
    wire.send(op="complete", text="list_m")
    assert wire.until("completions")["items"] == ["list_modules"]
    # QEMU monitor commands, and info's subcommands, from QEMU's own help.
    wire.send(op="complete", text="system_r")
    assert wire.until("completions")["items"] == ["system_reset"]
    wire.send(op="complete", text="info regi")
    assert wire.until("completions")["items"] == ["registers"]
    wire.send(op="complete", text="import_module scripts.ne")
    assert wire.until("completions")["items"] == ["scripts.needs_tool"]
    wire.send(op="line", text="sh", seq=prompt["seq"])
    prompt = wire.until("prompt")
    assert prompt["mode"] == "shell"
    wire.send(op="complete", text="print_c")
    assert "print_cpu" in wire.until("completions")["items"]
    wire.send(op="complete", text="cpu.RI")
    msg = wire.until("completions")
    assert any(item.endswith("RIP") for item in msg["items"]), msg
    wire.send(op="eof", seq=prompt["seq"])  # Ctrl-D leaves the shell
    prompt = wire.until("prompt")
    assert prompt["mode"] == "console"
    wire.send(op="line", text="q", seq=prompt["seq"])
    wire.until("bye")


def test_leaving_the_console_and_powering_off(vm):
    run = vm["run"]
    run.send("exit\r")
    run.expect(pexpect.EOF, timeout=120)
    run.close()
    assert run.exitstatus == 0
