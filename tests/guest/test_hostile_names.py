"""Names introspection must take as bytes (hostile guests): odd_names,
unprivileged, renames itself to bytes that are not UTF-8, maps a file whose
name is not UTF-8 and one deeper than PATH_MAX, then forks. Every list and
event still comes, with the names as str that round-trip to the guest's
bytes (surrogateescape) and the deep path cut to its last components."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, nm_symbol, run_pyrebox, write
from pyrebox import paths

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "names_probe.py")
DEPTH = 2100  # directories "dd": a 6,318-byte path
FILES = 2048  # files f0 .. f2047 beside deep.bin
COMM = os.fsdecode(b"\xff\xfeodd")
BAD = os.fsdecode(b"bad-\xc3\x28.bin")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("names")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts")
    programs = os.path.join(paths.guest().dir, "programs")
    with open(work / "names_probe.json", "w") as f:
        json.dump({"ready": nm_symbol(os.path.join(programs, "odd_names"), "pyrebox_names_ready")},
                  f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.names_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"odd_names {DEPTH} {FILES}", cwd=str(work))
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.names_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-3000:] + result.stderr
    assert "internal error" not in result.stdout + result.stderr
    return {"report": json.loads(lines[0].split("RESULT ", 1)[1]),
            "printed": key_values(command_outputs(result.stdout)[1][0])}


def test_every_list_answers_for_everyone(run):
    report = run["report"]
    assert report["errors"] == [] and report["ready"] == 1
    assert report["process"] == [ascii(COMM)]
    assert report["symbols"] == 0            # static: no dynamic symbols
    assert report["symbols_all"] > 10_000    # the kernel's and every process's
    assert report["va_to_sym_bad"] == "None"   # a data file: no symbols
    assert report["sym_to_va_bad"] is None     # known module, unknown symbol


def test_the_odd_and_the_deep_file_are_modules_with_their_bytes(run):
    printed = run["printed"]
    modules = {eval(full): (eval(name), base, size) for name, full, base, size in  # noqa: S307
               run["report"]["modules"]}
    forged = modules.pop("/tmp/forged.so")
    assert forged == ("forged.so", int(printed["forged_map"], 16), 8192)
    bad = modules.pop("/tmp/" + BAD)
    assert bad == (BAD, int(printed["bad_map"], 16), 4096)
    assert os.fsencode(bad[0]) == b"bad-\xc3\x28.bin"
    [(deep, (name, base, size))] = modules.items()
    assert (name, base, size) == ("deep.bin", int(printed["deep_map"], 16), 4096)
    # The last components that fit in PATH_MAX (4096 bytes), after "/...".
    assert deep.startswith("/.../dd/dd/") and deep.endswith("/dd/dd/deep.bin")
    assert 4096 - 8 <= len(deep) <= 4096


def test_thousands_of_deep_files_are_listed_and_nothing_is_kept(run):
    report = run["report"]
    assert run["printed"]["files"] == str(FILES)
    assert report["extra_files"] == sorted(f"f{i}" for i in range(FILES))
    assert report["module_count"] == len(report["modules"]) + FILES + 1  # + odd_names itself
    assert report["extra_loaded"] == FILES
    # Repeating the list keeps no memory (the first call may grow the heap).
    first, *later = report["rss_mib"][1:]
    assert all(rss - first < 16 for rss in later), report["rss_mib"]


def test_load_and_create_events_are_all_delivered(run):
    printed = run["printed"]
    pid, child = int(printed["pid"]), int(printed["child"])
    loaded = {(p, eval(full)) for p, _, full in run["report"]["modules_loaded"]}  # noqa: S307
    assert (pid, "/tmp/" + BAD) in loaded
    assert any(p == pid and full.endswith("/dd/deep.bin") for p, full in loaded)
    created = [(p, eval(name)) for p, name in run["report"]["created"]]  # noqa: S307
    assert created == [(pid, "odd_names"), (child, COMM)]


def test_device_registers_and_huge_reads_are_refused(run):
    report = run["report"]
    for got, address in zip(report["device_reads"], ("0xfee00000", "0xfec00000", "0xfed00000")):
        assert got[0] == "InvalidAddress" and address in got[1], got
    assert report["ram_read"] == 16
    assert report["huge_read"] == [
        "ValueError", "a read of guest memory is at most 64 MiB (4294967296 bytes asked for): "
        "read it in pieces"]
