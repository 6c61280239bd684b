"""Volatility uses the symbol table PyREBox loaded, whatever gave it: here
a run of your own VM (the default guest's kernel and initramfs given as
`-- -kernel ... -initrd ...`, so the launcher passes no isf= to the plugin)
whose table comes only from [SYMBOLS] isf in the --conf file. The shell's
`vol linux.pslist.PsList` lists the guest's processes."""

from __future__ import annotations

import os

import pytest

from conftest import LAUNCHER, stop_launcher, write
from pyrebox import paths

pexpect = pytest.importorskip("pexpect")

pytestmark = pytest.mark.guest

SHELL = "pyrebox-shell> "
CONSOLE = "pyrebox> "
ENV = dict(os.environ, TERM="dumb", PROMPT_TOOLKIT_NO_CPR="1")


def test_vol_uses_the_table_of_symbols_isf_in_an_own_vm_run(tmp_path):
    conf = write(tmp_path / "pyrebox.conf", f"[SYMBOLS]\nisf = {paths.GUEST_ISF}\n")
    args = ["run", "--conf", conf, "--timeout", "300", "--",
            "-kernel", os.path.join(paths.GUEST, "vmlinuz"),
            "-initrd", os.path.join(paths.GUEST, "initramfs.cpio.gz"),
            "-append", "console=ttyS0 quiet panic=-1"]
    run = pexpect.spawn(LAUNCHER, args, cwd=str(tmp_path), env=ENV, encoding="utf-8",
                        timeout=120)
    run.logfile_read = open(tmp_path / "run.log", "w")
    try:
        run.expect_exact("[pyrebox] Linux symbols: Linux version ")
        run.expect_exact("powers the guest off")
        run.expect_exact("# ")
        run.send("echo shell=$$\r")
        run.expect(r"shell=(\d+)\r\n")
        shell_pid = run.match.group(1)
        run.send("\x1d")
        run.expect_exact(CONSOLE)
        run.sendline("sh")
        run.expect_exact(SHELL)
        run.sendline("vol linux.pslist.PsList")
        run.expect_exact(SHELL, timeout=180)
        out = run.before.replace("\r\n", "\n").replace("\r", "")
        # PrettyTextRenderer's rows: * | OFFSET (V) | PID | TID | PPID | COMM | ...
        rows = [[c.strip() for c in line.split("|")] for line in out.splitlines()
                if line.startswith("* |")]
        assert any(r[2] == "1" and r[5] == "init" for r in rows), out
        assert any(r[2] == shell_pid and r[5] == "sh" for r in rows), out
        assert "vol:" not in out, out
    finally:
        stop_launcher(run)
