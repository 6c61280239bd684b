"""The console's put, get and exec in a running --image VM, through
qemu-guest-agent: the Debian 12 test VM booted with its kernel given
directly (--kernel/--initrd/--append) and `-- -m 2G` (the memory QEMU and
the plugin both use). A 1 MiB file goes in and comes back byte for byte;
bad paths are named and the session goes on."""

from __future__ import annotations

import os

import pytest

from own_vm import vm
from pyrebox import paths

pytestmark = pytest.mark.built_vm


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    m = vm.manifest()
    console = vm.Console(tmp_path_factory.mktemp("own_vm_console"),
                         "--image", vm.image_path(m),
                         "--kernel", os.path.join(paths.VM, m["kernel_path"]),
                         "--initrd", os.path.join(paths.VM, m["initrd_path"]),
                         "--append", m["cmdline"], "--", "-m", "2G", timeout=600)
    console.manifest = m
    try:
        # The agent answers once the guest is up.
        shown = console.until_agent("exec cat /proc/sys/kernel/random/boot_id", wait=300)
        assert shown.endswith("[exit status 0]\n"), shown
        yield console
        console.line("q", until="bye")
    finally:
        console.close()


def test_the_kernel_is_located_in_2g_given_after_the_double_dash(session):
    text = session.log_path.read_text()
    assert (f"[pyrebox] Linux symbols: Linux version {session.manifest['kernel_release']} "
            in text)
    assert "not found below" not in text
    shown = session.line("exec grep MemTotal /proc/meminfo")
    total_kib = int(shown.split()[1])
    assert 1900 * 1024 < total_kib <= 2048 * 1024, shown


def test_help_lists_the_agent_commands(session):
    shown = session.line("help")
    for word in ("put HOST GUEST", "get GUEST HOST", "exec CMD"):
        assert word in shown


def test_a_mebibyte_goes_in_and_comes_back_byte_for_byte(session):
    import hashlib
    blob = os.urandom(1 << 20)
    host = session.work / "blob.bin"
    host.write_bytes(blob)
    shown = session.line(f"put {host} /root/in/blob.bin")
    assert shown == f"copied {host} to the guest's /root/in/blob.bin ({1 << 20} bytes)\n"
    shown = session.line("exec sha256sum /root/in/blob.bin")
    assert shown == (f"{hashlib.sha256(blob).hexdigest()}  /root/in/blob.bin\n"
                     "[exit status 0]\n")
    back = session.work / "back.bin"
    shown = session.line(f"get /root/in/blob.bin {back}")
    assert shown == f"copied the guest's /root/in/blob.bin to {back} ({1 << 20} bytes)\n"
    assert back.read_bytes() == blob


def test_exec_reports_output_and_exit_status(session):
    assert session.line("exec echo out; echo err >&2; exit 3") == "out\nerr\n[exit status 3]\n"
    assert session.line("exec kill -9 $$") == "[killed by signal 9]\n"


def test_bad_paths_are_named_and_the_session_goes_on(session):
    shown = session.line(f"get /nonexistent/file {session.work / 'x'}")
    assert shown.startswith("get: ") and "/nonexistent/file" in shown, shown
    assert "No such file or directory" in shown
    shown = session.line(f"put {session.work / 'absent'} /root/x")
    assert shown == f"put: host file {session.work / 'absent'} not found\n"
    host = session.work / "small"
    host.write_bytes(b"x")
    shown = session.line(f"put {host} /etc/hostname/x")
    assert shown.startswith("put: cannot make the guest folder /etc/hostname: "), shown
    assert session.line("put onlyone") == f"usage: put HOST GUEST: copy a host file into the running guest (guest agent)\n"
    assert session.line("exec true") == "[exit status 0]\n"


def test_a_full_guest_disk_is_named_and_the_session_goes_on(session):
    # Most of the free space at once (but ext4's reserve of up to 4096
    # clusters), the rest written until the disk is full.
    shown = session.line("exec fallocate -l $(( ($(stat -f -c '%f' /) - 4096 - 64) * 4096 )) "
                          "/root/fill && dd if=/dev/zero of=/root/fill2 bs=4096 status=none; "
                          "sync")
    assert shown == "dd: error writing '/root/fill2': No space left on device\n" \
                    "[exit status 0]\n", shown
    blob = session.work / "big.bin"
    blob.write_bytes(os.urandom(1 << 20))
    shown = session.line(f"put {blob} /root/big.bin")
    assert shown == (f"put: copying {blob} to the guest's /root/big.bin failed: "
                     f"guest-file-write: failed to write to file: No space left on device\n")
    assert session.line("exec rm -f /root/fill /root/fill2 /root/big.bin; echo gone") == \
        "gone\n[exit status 0]\n"


def test_the_image_is_not_written(session):
    vm.assert_image_unchanged(session.manifest)
