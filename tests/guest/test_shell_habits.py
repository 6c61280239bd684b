"""The shell as WinDbg, gdb and IPython users expect it, through real
pseudo-terminals on the default guest.

One boot serves the module: `pyrebox run --file habits` (interactive, in a
pty) runs a small program built here with -rdynamic (its functions are
dynamic symbols, which name user addresses), waiting before it exits;
`pyrebox attach` opens the shell while it waits. Python assignments to
command names, bc/bl, ln inside main, dis naming a call's target, x over
the kernel's symbols, mon/unmon's messages and the reasons address_lookup
and symbol_list_lookup give are checked in that shell.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from conftest import nm_symbol, write
from test_shell import CONSOLE, SHELL, Client, attached, booted

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.guest

SOURCE = r'''
#include <stdio.h>
#include <unistd.h>

__attribute__((noinline, noclone)) int habits_helper(int x)
{
    __asm__ volatile("" : "+r"(x));
    return x * 3 + 1;
}

int main(void)
{
    char line[16];
    printf("pid=%ld\n", (long)getpid());
    printf("main=%p\n", (void *)main);
    printf("waiting\n");
    fflush(stdout);
    (void)fgets(line, sizeof line, stdin);
    printf("result=%d\n", habits_helper((int)line[0]));
    return 0;
}
'''


@pytest.fixture(scope="module")
def vm(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    work = tmp_path_factory.mktemp("habits")
    source = write(work / "habits.c", SOURCE)
    program = str(work / "habits")
    subprocess.run(["gcc", "-O2", "-rdynamic", "-o", program, source], check=True)
    with booted(work, ["--timeout", "400", "--file", f"{program}:/root/habits"]) as (run, rundir):
        run.send("/root/habits\r")
        run.expect(r"pid=(\d+)\r\n")
        pid = int(run.match.group(1))
        run.expect(r"main=(0x[0-9a-f]+)\r\n")
        main = int(run.match.group(1), 16)
        run.expect_exact("waiting")
        yield {"run": run, "rundir": rundir, "work": work, "pid": pid, "main": main}


@pytest.fixture(scope="module")
def shell(vm):
    with attached(vm["work"], vm["rundir"]) as child:
        client = Client(child)
        client.run("sh", SHELL)
        assert f"pid {vm['pid']} (habits)" in client.run(f"proc {vm['pid']}")
        yield client


def test_assignments_to_command_names_are_python(shell):
    assert shell.run("x = 3").strip() == ""
    assert shell.run("print(x)").strip() == "3"
    assert shell.run("r = 5").strip() == ""
    assert shell.run("r + 1").strip().endswith("6")
    assert "RIP=" in shell.run("%r")  # the command, though r is a variable now
    shell.run("del x, r")


def test_help_lists_the_commands_by_group(shell):
    out = shell.run("help")
    assert re.search(r"^breakpoints:\n\s+bp\s", out, re.M), out
    assert re.search(r"^\s+bc\s+bc N \[N\.\.\.\] \| bc \*: clear", out, re.M), out


def test_bc_removes_a_breakpoint_and_bl_no_longer_lists_it(shell):
    out = shell.run("bp habits!habits_helper")
    number = int(re.search(r"breakpoint (\d+): EXECUTION at 0x[0-9a-f]+", out).group(1))
    assert re.search(rf"^\s*{number} enabled\s+EXECUTION\s+0x[0-9a-f]+ size 0x0 pgd "
                     rf"0x[0-9a-f]+ hits 0\s+habits!habits_helper$", shell.run("bl"), re.M)
    assert re.search(rf"^breakpoint {number} cleared \(EXECUTION at 0x[0-9a-f]+ "
                     rf"habits!habits_helper\)$", shell.run(f"bc {number}"), re.M)
    assert shell.run("bl").strip() == "no breakpoints"


def test_ln_inside_main_names_main(shell, vm):
    inside = vm["main"] + 4
    out = shell.run(f"ln {inside:x}")
    assert re.match(rf"{inside:#x}: habits!main\+0x4\b", out.strip()), out


def test_dis_names_the_called_function(shell):
    out = shell.run("dis habits!main:20")
    assert re.search(r"(call|jmp) 0x[0-9a-f]+ <habits!habits_helper>", out), out


def test_x_finds_a_kernel_symbol_from_the_process(shell):
    out = shell.run("x vmlinux!__x64_sys_getpid")
    assert re.search(r"^0x[0-9a-f]{16}  vmlinux!__x64_sys_getpid$", out, re.M), out
    assert out.strip().endswith("1 symbol(s) match"), out


def test_mon_and_unmon_say_what_happened(shell, vm):
    pid = vm["pid"]
    assert re.search(rf"^now monitoring pid {pid} \(habits, pgd 0x[0-9a-f]+\)$",
                     shell.run(f"mon {pid}"), re.M)
    assert re.search(rf"^stopped monitoring pid {pid} \(habits",
                     shell.run(f"unmon {pid}"), re.M)
    assert "was not monitored; nothing changed" in shell.run(f"unmon {pid}")
    assert "is a kernel thread: kernel threads have no address space" in shell.run("mon 2")


def section_address(program: str, name: str) -> int:
    listing = subprocess.run(["readelf", "-SW", program], check=True, capture_output=True,
                             text=True).stdout
    return int(re.search(rf"\s{re.escape(name)}\s+\S+\s+([0-9a-f]+)\s", listing).group(1), 16)


def test_address_and_symbol_list_lookups_say_why_nothing_was_found(shell, vm):
    program = str(vm["work"] / "habits")
    base = vm["main"] - nm_symbol(program, "main")
    shell.run(f"pgd = [p for p in api.get_process_list() if p['pid'] == {vm['pid']}][0]['pgd']")
    def lookup(addr, pgd="pgd"):
        return shell.run(f"print(api.address_lookup({pgd}, {addr:#x}))").strip()
    assert lookup(vm["main"] + 4) == "(('habits', 'main'), None)"
    # The PLT is in the program's mapping, and no symbol covers it.
    assert lookup(base + section_address(program, ".plt")) == "(None, 'unknown symbol')"
    assert lookup(0x1000) == "(None, 'unknown module')"
    assert lookup(0x1000, pgd="0x1000") == "(None, 'unknown process')"
    shell.run("symbols, not_readable = api.symbol_list_lookup(pgd)")
    assert shell.run("print(not_readable)").strip() == "[]"
    assert shell.run("print(sorted(s['name'] for s in symbols if s['mod'] == 'habits' "
                     "and s['name'] in ('main', 'habits_helper')))").strip() \
        == "['habits_helper', 'main']"
    shell.run("del pgd, symbols, not_readable")


def test_leaving_and_powering_off(vm, shell):
    shell.run("q", CONSOLE)
    shell.child.sendline("q")
    shell.child.expect(pexpect.EOF)
    run = vm["run"]
    run.send("\r")  # releases habits
    run.expect(r"result=\d+\r\n", timeout=120)
    run.expect_exact("# ")
    run.send("exit\r")
    run.expect(pexpect.EOF, timeout=120)
    run.close()
    assert run.exitstatus == 0
