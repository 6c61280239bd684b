"""Linux process and module lists (api.get_process_list, get_module_list,
get_os_bits) on the default guest, with KASLR and with nokaslr: snapshots
taken as static_loop and dyn_libc exit (tests/guest/scripts/linux_lists.py)
against what the programs print about themselves."""

from __future__ import annotations

import json
import lzma
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "linux_lists.py")
LIBC_PATHS = ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")


@pytest.fixture(scope="module")
def kernel_symbols():
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        symbols = json.load(f)["symbols"]
    return {name: symbols[name]["address"] for name in ("_text", "_end", "do_group_exit")}


@pytest.fixture(scope="module", params=[False, True], ids=["kaslr", "nokaslr"])
def lists_run(request, tmp_path_factory, kernel_symbols):
    work = tmp_path_factory.mktemp("linux_lists")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "linux_lists.py")
    with open(work / "kernel_offsets.json", "w") as f:
        json.dump({"do_group_exit": kernel_symbols["do_group_exit"] - kernel_symbols["_text"]},
                  f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.linux_lists: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         *(["--nokaslr"] if request.param else []),
                         "--cmd", "static_loop 100", "--cmd", "dyn_libc", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.linux_lists] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    outputs = command_outputs(result.stdout)
    mode = "nokaslr" if request.param else "kaslr"
    times = report["times_process_list"], report["times_module_list"]
    for what, values in zip(("get_process_list", "get_module_list"), times):
        if values:
            print(f"\n[{mode}] {what}: {len(values)} calls, "
                  f"mean {1000 * sum(values) / len(values):.2f} ms, "
                  f"max {1000 * max(values):.2f} ms")
    return report, key_values(outputs[1][0]), key_values(outputs[2][0]), result.stdout, mode


def test_symbols_are_loaded_and_nothing_failed(lists_run):
    report, _, _, stdout, _ = lists_run
    assert "[pyrebox] Linux symbols: Linux version " in stdout
    assert report["errors"] == []
    assert report["os_bits"] == 64
    assert set(report["snapshots"]) == {"static_loop", "dyn_libc"}


def test_kernel_comes_first_at_its_base(lists_run, kernel_symbols):
    report = lists_run[0]
    kernel = report["kernel"][0]
    assert kernel["name"] == "vmlinux"
    assert kernel["size"] == kernel_symbols["_end"] - kernel_symbols["_text"]
    assert kernel["base"] % (2 << 20) == 0
    if lists_run[4] == "nokaslr":
        assert kernel["base"] == kernel_symbols["_text"]
    # The do_group_exit hook placed from that base fired for both programs.
    assert report["hook"] == kernel["base"] + kernel_symbols["do_group_exit"] \
        - kernel_symbols["_text"]


def test_static_loop_in_the_process_list(lists_run):
    report, static_out = lists_run[:2]
    snap = report["snapshots"]["static_loop"]
    me = snap["me"]
    assert me["name"] == "static_loop"
    assert me["pid"] == int(static_out["pid"])
    assert me["pgd"] == snap["running_pgd"] != 0
    assert me["kaddr"] >= 0xffff800000000000
    by_pid = {p["pid"]: p for p in snap["processes"]}
    assert by_pid[me["ppid"]]["pgd"] != 0  # its parent is the guest's shell
    # Threads are not processes: pids are unique.
    assert len(by_pid) == len(snap["processes"])
    names = [m["name"] for m in snap["modules"]]
    assert names == ["static_loop"]
    assert snap["modules"][0]["fullname"] == "/usr/local/bin/static_loop"


def test_kernel_threads_have_no_pgd(lists_run):
    report = lists_run[0]
    kthreadd = report["kthreadd"]
    assert kthreadd["name"] == "kthreadd" and kthreadd["pgd"] == 0 and kthreadd["ppid"] == 0
    init = next(p for p in report["snapshots"]["static_loop"]["processes"] if p["pid"] == 1)
    assert init["pgd"] != 0


def test_dyn_libc_modules(lists_run):
    report, _, dyn_out = lists_run[:3]
    snap = report["snapshots"]["dyn_libc"]
    assert snap["me"]["pid"] == int(dyn_out["pid"])
    mods = {m["name"]: m for m in snap["modules"]}
    assert {"dyn_libc", "libc.so.6", "ld-linux-x86-64.so.2"} <= set(mods)
    libc = mods["libc.so.6"]
    assert libc["base"] == int(dyn_out["libc_base"], 16)
    assert libc["fullname"] in LIBC_PATHS
    assert libc["size"] > 0x100000 and libc["symbols_resolved"] is True
    assert base_in(int(dyn_out["getpid"], 16), libc)
    assert mods["dyn_libc"]["fullname"] == "/usr/local/bin/dyn_libc"
    assert mods["ld-linux-x86-64.so.2"]["fullname"].endswith("/ld-linux-x86-64.so.2")
    bases = [m["base"] for m in snap["modules"]]
    assert bases == sorted(bases)


def base_in(addr: int, module: dict) -> bool:
    return module["base"] <= addr < module["base"] + module["size"]
