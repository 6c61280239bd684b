"""Symbols of modules (api.get_symbol_list, sym_to_va, va_to_sym) on the
default guest, with KASLR and with nokaslr: what tests/guest/scripts/symbols.py
saw while dyn_libc, dl_cycle and grep ran, against what the programs print
about themselves and /proc/kallsyms."""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess

import pytest

from conftest import command_outputs, insmod_command, key_values, on_demand_module, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "symbols.py")


def kallsyms_command(module: dict) -> str:
    """Inserts the guest's on-demand module, then greps /proc/kallsyms for
    its exported function and two kernel symbols."""
    return (f"{insmod_command(module)} && "
            f"grep -w -e {module['symbol']} -e do_group_exit -e init_task /proc/kallsyms")


@pytest.fixture(scope="module")
def kernel_offsets():
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        symbols = json.load(f)["symbols"]
    text = symbols["_text"]["address"]
    return {name: symbols[name]["address"] - text for name in ("do_group_exit", "ksys_write")}


@pytest.fixture(scope="module", params=[False, True], ids=["kaslr", "nokaslr"])
def run(request, tmp_path_factory, kernel_offsets):
    work = tmp_path_factory.mktemp("symbols")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "symbols.py")
    with open(work / "kernel_offsets.json", "w") as f:
        json.dump(kernel_offsets, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.symbols: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         *(["--nokaslr"] if request.param else []),
                         "--cmd", "dyn_libc", "--cmd", "dl_cycle",
                         "--cmd", kallsyms_command(on_demand_module()),
                         cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("[scripts.symbols] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    outputs = command_outputs(result.stdout)
    mode = "nokaslr" if request.param else "kaslr"
    for kind, values in sorted(report["times"].items()):
        print(f"\n[{mode}] {kind}: {len(values)} calls, "
              f"mean {1000 * sum(values) / len(values):.2f} ms, max {1000 * max(values):.2f} ms")
    kallsyms = {}
    for line in outputs[3][0]:
        fields = line.split()
        if len(fields) >= 3:
            kallsyms[fields[2]] = int(fields[0], 16)
    return {"report": report, "dyn": key_values(outputs[1][0]),
            "dl": key_values(outputs[2][0]), "kallsyms": kallsyms, "kallsyms_rc": outputs[3][1],
            "mode": mode,
            # What the plugin said during the run, for a failure's message.
            "plugin": "\n".join(l for l in result.stdout.splitlines() if l.startswith("[pyrebox]"))}


def test_nothing_failed(run):
    report = run["report"]
    assert report["errors"] == [], run["plugin"]
    assert report["dyn_libc"] and report["dl_loaded"] and report["dl_exit"] and report["kernel"], \
        run["plugin"]


def test_libc_getpid(run):
    snap, dyn = run["report"]["dyn_libc"], run["dyn"]
    getpid = int(dyn["getpid"], 16)
    assert snap["getpid"] == getpid
    assert snap["getpid_by_path"] == getpid
    assert snap["va_to_sym"] == ["libc.so.6", "getpid"]
    assert snap["va_to_sym_inside"] == ["libc.so.6", "getpid"]
    libc = next(m for m in snap["modules"] if m["name"] == "libc.so.6")
    assert libc["base"] == int(dyn["libc_base"], 16)
    assert libc["symbols_resolved"] is True
    assert libc["inode"] != 0


def test_unknowns_are_none(run):
    snap = run["report"]["dyn_libc"]
    assert snap["unknown_symbol"] is None
    assert snap["unknown_module"] is None
    assert snap["no_module_address"] is None
    assert snap["unknown_pgd"] is None
    kernel = run["report"]["kernel"]
    assert kernel["unknown_symbol"] is None
    assert kernel["unknown_module"] is None


def test_symbol_lists_hold_getpid(run):
    snap, dyn = run["report"]["dyn_libc"], run["dyn"]
    getpid = int(dyn["getpid"], 16)
    entry = {"mod": "libc.so.6", "name": "getpid", "addr": getpid}
    assert [{k: s[k] for k in entry} for s in snap["list_getpid"]] == [entry]
    assert snap["list_getpid"][0]["mod_fullname"].endswith("/libc.so.6")
    assert {"libc.so.6", "ld-linux-x86-64.so.2", "dyn_libc"} <= set(snap["list_modules"])
    assert snap["list_count"] > 2000
    # pgd=None: the kernel first, then each file once (dyn_libc is the only
    # process mapping libc when it exits).
    assert snap["all_has_kernel"]
    assert [s["addr"] for s in snap["all_getpid"]] == [getpid]
    assert snap["all_count"] > snap["list_count"] + 50000


def test_main_program_and_kernel_from_a_process(run):
    snap = run["report"]["dyn_libc"]
    # dyn_libc exports no dynamic "main" (not linked with -rdynamic).
    assert snap["main_symbol"] is None
    assert snap["kernel_from_process"] == run["kallsyms"]["do_group_exit"]


def test_dlopened_library(run):
    loaded, dl = run["report"]["dl_loaded"], run["dl"]
    answer = int(dl["dltest_answer"], 16)
    assert loaded["dltest_answer"] == answer
    assert loaded["dltest_answer_by_path"] == answer
    assert loaded["va_to_sym"] == ["libdltest.so", "dltest_answer"]
    lib = next(m for m in loaded["modules"] if m["name"] == "libdltest.so")
    assert lib["base"] == int(dl["lib_base"], 16)
    assert lib["symbols_resolved"] is True
    libc = next(m for m in loaded["modules"] if m["name"] == "libc.so.6")
    assert libc["base"] == int(dl["libc_base"], 16)
    assert libc["base"] <= loaded["getpid"] < libc["base"] + libc["size"]
    # After dlclose: the library is gone, and so are its symbols.
    gone = run["report"]["dl_exit"]
    assert "libdltest.so" not in {m["name"] for m in gone["modules"]}
    assert gone["dltest_answer"] is None


def test_kernel_symbols_match_kallsyms(run):
    kernel, kallsyms = run["report"]["kernel"], run["kallsyms"]
    assert run["kallsyms_rc"] == 0
    assert kernel["do_group_exit"] == kallsyms["do_group_exit"]
    assert kernel["init_task"] == kallsyms["init_task"]
    assert kernel["dge_va_to_sym"] == ["vmlinux", "do_group_exit"]
    assert kernel["dge_va_to_sym_from_process"] == ["vmlinux", "do_group_exit"]
    assert [s["addr"] for s in kernel["list_do_group_exit"]] == [kallsyms["do_group_exit"]]
    assert kernel["list_count"] > 50000
    if run["mode"] == "nokaslr":
        assert kernel["do_group_exit"] == run["report"]["hooks"]["do_group_exit"]


def test_kernel_module_symbols_match_kallsyms(run):
    kernel, kallsyms = run["report"]["kernel"], run["kallsyms"]
    name, symbol = on_demand_module()["name"], on_demand_module()["symbol"]
    module = next(m for m in kernel["modules"] if m["name"] == name)
    assert module["symbols_resolved"] is True
    assert kernel["module_symbol"] == kallsyms[symbol]
    assert kernel["module_symbol_from_process"] == kallsyms[symbol]
    assert kernel["module_va_to_sym"] == [name, symbol]
    assert kernel["list_module_symbol"] == [{"mod": name, "mod_fullname": name, "name": symbol,
                                             "addr": kallsyms[symbol],
                                             "size": ko_symbol_size(on_demand_module()["path"],
                                                                    symbol)}]


def ko_symbol_size(guest_path: str, symbol: str) -> int:
    """st_size of `symbol` in the built guest's copy of the module file."""
    ko = os.path.join(paths.guest().dir, "kernel", guest_path.lstrip("/"))
    out = subprocess.run(["nm", "-S", ko], capture_output=True, text=True, check=True).stdout
    return next(int(f[1], 16) for f in map(str.split, out.splitlines())
                if len(f) == 4 and f[3] == symbol)
