"""Bad symbol tables: a corrupt file, a kernel version introspection does not
support, a table for another kernel. Each gives one clear message, the
lists raise IntrospectionError saying the same, process callbacks warn at
registration, and the VM (or, without a guest, the plugin) runs on."""

from __future__ import annotations

import base64
import json
import lzma

import pytest

from conftest import built_release, command_outputs, run_plugin_only, run_pyrebox, write
from pyrebox import paths

SCRIPT = """
    import api
    from api import CallbackManager
    cm = None
    def report(tag):
        try:
            api.get_process_list()
            print(tag, "listed")
        except api.IntrospectionError as e:
            print(tag, "IntrospectionError:", e)
    def initialize_callbacks(module_hdl, printer):
        global cm
        cm = CallbackManager(module_hdl)
        cm.add_callback(CallbackManager.CREATEPROC_CB, lambda *a: print("CREATEPROC", *a))
        report("AT-LOAD")
    def clean():
        report("AT-END")
        cm.clean()
    """


def isf_with_banner(path, banner: str) -> str:
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        isf = json.load(f)
    data = (banner + "\n").encode() + b"\0"
    isf["symbols"]["linux_banner"]["constant_data"] = base64.b64encode(data).decode()
    with lzma.open(path, "wt", preset=0) as f:
        json.dump(isf, f)
    return str(path)


def setup_script(tmp_path) -> str:
    write(tmp_path / "scripts" / "__init__.py", "")
    write(tmp_path / "scripts" / "lister.py", SCRIPT)
    return write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.lister: True\n")


def test_corrupt_table_is_one_message_and_introspection_is_off(tmp_cwd):
    conf = setup_script(tmp_cwd)
    bad = tmp_cwd / "bad.isf.json.xz"
    bad.write_bytes(b"\xfd7zXZ\x00\x00" + b"garbage" * 10)
    result = run_plugin_only("x86_64", f"conf={conf}", f"isf={bad}")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert err.count("Linux symbols not loaded:") == 1, err
    assert f"{bad}: corrupt xz data" in err
    assert "CREATEPROC_CB 'createproc_1' is registered but will not fire: Linux " \
           "introspection is off:" in err
    assert "AT-LOAD IntrospectionError: Linux introspection is off:" in err
    assert "[pyrebox] loaded script scripts.lister" in err


def test_corrupt_table_from_symbols_isf_is_one_message(tmp_cwd):
    setup_script(tmp_cwd)
    bad = tmp_cwd / "bad.isf.json"
    bad.write_text('{"metadata": {"format": "6.2.0"}, "symbols": ')
    conf = write(tmp_cwd / "pyrebox.conf",
                 f"[MODULES]\nscripts.lister: True\n[SYMBOLS]\nisf = {bad}\n")
    result = run_plugin_only("x86_64", f"conf={conf}")
    assert result.returncode == 0, result.stderr
    err = result.stderr
    assert err.count("Linux symbols not loaded:") == 1, err
    assert f"Linux symbols not loaded: {bad}: not JSON" in err, err
    assert f"AT-LOAD IntrospectionError: Linux introspection is off: {bad}: not JSON" in err


def test_unsupported_kernel_version_says_which_are(tmp_cwd):
    conf = setup_script(tmp_cwd)
    old = isf_with_banner(tmp_cwd / "old.isf.json.xz",
                          "Linux version 4.19.0-27-amd64 (debian-kernel@lists.debian.org) #1 SMP")
    result = run_plugin_only("x86_64", f"conf={conf}", f"isf={old}")
    assert result.returncode == 0, result.stderr
    message = ("Linux 4.19 is not supported: introspection reads the kernel's structures (task "
               "list, mappings, modules) and hooks its functions with the layouts known for "
               "x86-64 Linux 5.4 through 7.3; older kernels were not checked (supported: x86-64 "
               "Linux 5.4 through 7.3)")
    assert result.stderr.count(message) >= 1, result.stderr
    assert f"AT-LOAD IntrospectionError: Linux introspection is off: {old}: {message}" in \
        result.stderr


@pytest.mark.guest
def test_table_of_another_kernel_keeps_the_vm_running(tmp_cwd):
    conf = setup_script(tmp_cwd)
    other = isf_with_banner(tmp_cwd / "other.isf.json.xz",
                            "Linux version 6.1.0-99-amd64 (debian-kernel@lists.debian.org) "
                            "(gcc-12) #1 SMP PREEMPT_DYNAMIC Debian 6.1.999-1")
    write(tmp_cwd / "pyrebox.conf", f"[MODULES]\nscripts.lister: True\n[SYMBOLS]\nisf: {other}\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--cmd", "static_loop 10",
                         cwd=str(tmp_cwd))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert command_outputs(out)[1][1] == 0
    assert "checksum=345" in out
    # One message on the console; the lists raise with the same reason.
    assert out.count("(the ISF is for another kernel)") == 2, out[-3000:]
    assert out.count("[pyrebox] error: cannot locate the Linux kernel in guest memory: "
                     f"kernel banner mismatch: found 'Linux version {built_release()}") == 1
    assert "AT-END IntrospectionError: cannot locate the Linux kernel in guest memory:" in out
    assert "Linux version 6.1.0-99-amd64" in out
    assert "CREATEPROC" not in out.replace("CREATEPROC_CB", "")


@pytest.mark.guest
def test_table_of_another_build_with_the_same_banner_is_one_message(tmp_cwd):
    # The banner matches, but the kernel's data are not where the table
    # says (init_mm moved, as in another build of the same version): the
    # location is never taken, one warning says why, and the VM runs on.
    conf = setup_script(tmp_cwd)
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        isf = json.load(f)
    isf["symbols"]["init_mm"]["address"] += 0x40
    moved = tmp_cwd / "moved.isf.json.xz"
    with lzma.open(moved, "wt", preset=0) as f:
        json.dump(isf, f)
    write(tmp_cwd / "pyrebox.conf", f"[MODULES]\nscripts.lister: True\n[SYMBOLS]\nisf: {moved}\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--cmd", "static_loop 10",
                         cwd=str(tmp_cwd))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert command_outputs(out)[1][1] == 0
    assert "checksum=345" in out
    waiting = [l for l in out.splitlines()
               if "process and module events are waiting for the kernel to be located" in l]
    assert len(waiting) == 1, out[-3000:]
    assert ("cannot locate the Linux kernel in guest memory: found the kernel banner "
            f"'Linux version {built_release()}") in waiting[0]
    assert "but the kernel's page tables and data do not agree yet" in waiting[0]
    assert ": init_mm.pgd holds " in waiting[0]
    assert "Linux kernel located" not in out
    assert "AT-END IntrospectionError: cannot locate the Linux kernel in guest memory: found " \
           "the kernel banner" in out
    assert "CREATEPROC" not in out.replace("CREATEPROC_CB", "")
