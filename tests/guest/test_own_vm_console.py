"""The console's put, get and exec in a running --image VM, through
qemu-guest-agent: the Debian 12 test VM booted with its kernel given
directly (--kernel/--initrd/--append) and `-- -m 2G` (the memory QEMU and
the plugin both use). A 1 MiB file goes in and comes back byte for byte;
bad paths are named and the session goes on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import pytest

from conftest import LAUNCHER, Wire
from own_vm import vm

pytestmark = pytest.mark.built_vm
from pyrebox import paths


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    m = vm.manifest()
    work = tmp_path_factory.mktemp("own_vm_console")
    log_path = work / "run.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [LAUNCHER, "run", "--image", vm.image_path(m),
         "--kernel", os.path.join(paths.VM, m["kernel_path"]),
         "--initrd", os.path.join(paths.VM, m["initrd_path"]),
         "--append", m["cmdline"], "--timeout", "600", "--", "-m", "2G"],
        cwd=str(work), stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
    try:
        rundir = None
        deadline = time.monotonic() + 60
        while rundir is None and time.monotonic() < deadline:
            found = re.search(r"\[pyrebox\] QMP socket: (\S+)/qmp\.sock", log_path.read_text())
            rundir = found.group(1) if found else time.sleep(0.2)
        assert rundir, log_path.read_text()
        console = os.path.join(rundir, "console.sock")
        while not os.path.exists(console) and proc.poll() is None:
            time.sleep(0.2)  # the plugin makes it as it starts
        wire = Wire(console, timeout=120)
        state = {"wire": wire, "prompt": wire.until("prompt"), "work": work, "log": log_path,
                 "manifest": m}
        # The agent answers once the guest is up.
        deadline = time.monotonic() + 300
        while True:
            shown = line(state, "exec cat /proc/sys/kernel/random/boot_id")
            if shown.endswith("[exit status 0]\n") or time.monotonic() > deadline:
                break
        assert shown.endswith("[exit status 0]\n"), shown
        yield state
        line(state, "q", until="bye")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def line(state: dict, text: str, until: str = "prompt") -> str:
    """Types TEXT at the console; the output it showed."""
    wire = state["wire"]
    wire.send(op="line", text=text, seq=state["prompt"]["seq"])
    msg = wire.until(until)
    if until == "prompt":
        state["prompt"] = msg
    return wire.shown


def test_the_kernel_is_located_in_2g_given_after_the_double_dash(session):
    text = session["log"].read_text()
    assert (f"[pyrebox] Linux symbols: Linux version {session['manifest']['kernel_release']} "
            in text)
    assert "not found below" not in text
    shown = line(session, "exec grep MemTotal /proc/meminfo")
    total_kib = int(shown.split()[1])
    assert 1900 * 1024 < total_kib <= 2048 * 1024, shown


def test_help_lists_the_agent_commands(session):
    shown = line(session, "help")
    for word in ("put HOST GUEST", "get GUEST HOST", "exec CMD"):
        assert word in shown


def test_a_mebibyte_goes_in_and_comes_back_byte_for_byte(session):
    import hashlib
    blob = os.urandom(1 << 20)
    host = session["work"] / "blob.bin"
    host.write_bytes(blob)
    shown = line(session, f"put {host} /root/in/blob.bin")
    assert shown == f"copied {host} to the guest's /root/in/blob.bin ({1 << 20} bytes)\n"
    shown = line(session, "exec sha256sum /root/in/blob.bin")
    assert shown == (f"{hashlib.sha256(blob).hexdigest()}  /root/in/blob.bin\n"
                     "[exit status 0]\n")
    back = session["work"] / "back.bin"
    shown = line(session, f"get /root/in/blob.bin {back}")
    assert shown == f"copied the guest's /root/in/blob.bin to {back} ({1 << 20} bytes)\n"
    assert back.read_bytes() == blob


def test_exec_reports_output_and_exit_status(session):
    assert line(session, "exec echo out; echo err >&2; exit 3") == "out\nerr\n[exit status 3]\n"
    assert line(session, "exec kill -9 $$") == "[killed by signal 9]\n"


def test_bad_paths_are_named_and_the_session_goes_on(session):
    shown = line(session, f"get /nonexistent/file {session['work'] / 'x'}")
    assert shown.startswith("get: ") and "/nonexistent/file" in shown, shown
    assert "No such file or directory" in shown
    shown = line(session, f"put {session['work'] / 'absent'} /root/x")
    assert shown == f"put: host file {session['work'] / 'absent'} not found\n"
    host = session["work"] / "small"
    host.write_bytes(b"x")
    shown = line(session, f"put {host} /etc/hostname/x")
    assert shown.startswith("put: cannot make the guest folder /etc/hostname: "), shown
    assert line(session, "put onlyone") == f"usage: put HOST GUEST: copy a host file into the running guest (guest agent)\n"
    assert line(session, "exec true") == "[exit status 0]\n"


def test_a_full_guest_disk_is_named_and_the_session_goes_on(session):
    # Most of the free space at once (but ext4's reserve of up to 4096
    # clusters), the rest written until the disk is full.
    shown = line(session, "exec fallocate -l $(( ($(stat -f -c '%f' /) - 4096 - 64) * 4096 )) "
                          "/root/fill && dd if=/dev/zero of=/root/fill2 bs=4096 status=none; "
                          "sync")
    assert shown == "dd: error writing '/root/fill2': No space left on device\n" \
                    "[exit status 0]\n", shown
    blob = session["work"] / "big.bin"
    blob.write_bytes(os.urandom(1 << 20))
    shown = line(session, f"put {blob} /root/big.bin")
    assert shown == (f"put: copying {blob} to the guest's /root/big.bin failed: "
                     f"guest-file-write: failed to write to file: No space left on device\n")
    assert line(session, "exec rm -f /root/fill /root/fill2 /root/big.bin; echo gone") == \
        "gone\n[exit status 0]\n"


def test_the_image_is_not_written(session):
    vm.assert_image_unchanged(session["manifest"])
