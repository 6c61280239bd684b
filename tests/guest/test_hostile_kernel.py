"""Introspection while the kernel's structures are corrupt, as a rootkit
would leave them: the test builds tests/guest/kmod/pyrebox_corrupt.c
against the guest kernel's headers (Debian's linux-headers-<release>,
installed by bootstrap), loads it, and runs hostile_probe, which has it
corrupt the task list (a fake process with an unmapped mm and a garbage
parent, another whose maple tree is a DAG), the module list (a loop), its
own kallsyms (2^20 symbols) and the dentry of a mapped file (a cycle)
exactly while pyrebox_probe(1) runs, and restores them for
pyrebox_probe(2). Every answer is checked against the restored state and
the guest's own /proc/modules; QEMU stays alive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import command_outputs, nm_symbol, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

HERE = os.path.dirname(__file__)
SCRIPT = os.path.join(HERE, "scripts", "hostile_probe.py")
MODULE_SOURCE = os.path.join(HERE, "kmod", "pyrebox_corrupt.c")
LOOP_FILE = "/tmp/pyrebox_loop.bin"
FAKES = {90001: "pyrebox_badmm", 90002: "pyrebox_dag"}


def build_module(work) -> str:
    guest = paths.guest()
    headers = f"/usr/src/linux-headers-{guest.release}"
    assert os.path.isfile(f"{headers}/Makefile"), (
        f"{headers} is missing: `make bootstrap` installs it (guest/kernel_headers.py)")
    kmod = work / "kmod"
    kmod.mkdir()
    shutil.copy(MODULE_SOURCE, kmod)
    write(kmod / "Kbuild", "obj-m := pyrebox_corrupt.o\n")
    build = subprocess.run(["make", "-C", headers, f"M={kmod}", "modules"],
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    return str(kmod / "pyrebox_corrupt.ko")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("hostile_kernel")
    ko = build_module(work)
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts")
    programs = os.path.join(paths.guest().dir, "programs")
    with open(work / "hostile_probe.json", "w") as f:
        json.dump({"probe": nm_symbol(os.path.join(programs, "hostile_probe"), "pyrebox_probe")}, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.hostile_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--file", f"{ko}:/root/pyrebox_corrupt.ko",
                         "--cmd", "insmod /root/pyrebox_corrupt.ko",
                         "--cmd", "hostile_probe",
                         "--cmd", "rmmod pyrebox_corrupt && echo removed",
                         cwd=str(work))
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.hostile_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-4000:] + result.stderr[-2000:]
    outputs = command_outputs(result.stdout)
    assert [outputs[n][1] for n in (1, 2, 3)] == [0, 0, 0], outputs
    printed = outputs[2][0]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    print("costs (s, MiB):", json.dumps({n: p.get("cost") for n, p in report["phases"].items()}))
    return {"report": report, "out": result.stdout + result.stderr,
            "pid": int(next(l for l in printed if l.startswith("pid=")).split("=")[1]),
            "loop_map": int(next(l for l in printed if l.startswith("loop_map=")).split("=")[1], 16),
            "proc_modules": [l.split("=", 1)[1] for l in printed if l.startswith("module=")],
            "done": "done" in printed, "removed": outputs[3][0] == ["removed"]}


def phase(run, n):
    return run["report"]["phases"][str(n)]


def test_the_guest_and_qemu_come_through(run):
    assert run["done"] and run["removed"]
    assert sorted(run["report"]["phases"]) == ["1", "2"]
    assert "internal error" not in run["out"]


def test_fake_processes_are_listed_and_the_real_ones_are_exact(run):
    corrupt, whole = phase(run, 1)["procs"], phase(run, 2)["procs"]
    assert corrupt[0] != "error" and whole[0] != "error", (corrupt, whole)
    fakes = {p[0]: p for p in corrupt if p[0] in FAKES}
    assert {pid: p[2] for pid, p in fakes.items()} == FAKES
    badmm, dag = fakes[90001], fakes[90002]
    # What did not read is 0, and the reasons say why: the parent, the mm.
    assert (badmm[1], badmm[3]) == (0, 0), badmm
    assert "parent" in badmm[4] and "0x4141414141414" in badmm[4], badmm
    assert "mm_struct.pgd: 0xffffdead000000" in badmm[4], badmm
    assert dag[4] is None and dag[1] == 0 and dag[3] != 0  # read whole: init_task's child
    assert not [p for p in whole if p[0] in FAKES]
    assert [p for p in corrupt if p[0] not in FAKES] == whole
    assert any(p[0] == run["pid"] and p[2] == "hostile_probe" for p in whole)


def test_a_maple_tree_dag_is_one_clear_error(run):
    got = phase(run, 1)["dag_modules"]
    assert got[0] == "error" and "reached a second time" in got[2], got


def test_the_module_list_loop_hides_no_module(run):
    corrupt, whole = phase(run, 1)["kernel_modules"], phase(run, 2)["kernel_modules"]
    assert corrupt[0] != "error" and whole[0] != "error", (corrupt, whole)
    assert whole[0][0] == "vmlinux"
    names = [m[0] for m in whole]
    assert sorted(names[1:]) == sorted(run["proc_modules"])
    assert "pyrebox_corrupt" in names
    # Corrupt: every module is still there, plus entries marked partial for the break.
    whole_entries = {(m[0], m[1], m[2]) for m in whole}
    assert whole_entries <= {(m[0], m[1], m[2]) for m in corrupt}, corrupt
    extra = [m for m in corrupt if (m[0], m[1], m[2]) not in whole_entries]
    assert all(m[3] for m in extra), extra


def test_kernel_symbols_survive_and_a_lying_kallsyms_resolves_nothing(run):
    corrupt, whole = phase(run, 1), phase(run, 2)
    assert isinstance(whole["init_task"], int) and corrupt["init_task"] == whole["init_task"]
    assert corrupt["init_task_sym"] == whole["init_task_sym"] == ["vmlinux", "init_task"]
    assert corrupt["control_write"] is None  # 2^20 symbols claimed: not read
    base, size = next((m[1], m[2]) for m in whole["kernel_modules"] if m[0] == "pyrebox_corrupt")
    assert base <= whole["control_write"] < base + size
    assert isinstance(corrupt["kernel_symbols"], int) and isinstance(whole["kernel_symbols"], int)
    assert 0 < whole["kernel_symbols"] - corrupt["kernel_symbols"] < 100  # the module's own
    assert isinstance(corrupt["all_symbols"], int) and isinstance(whole["all_symbols"], int)


def test_a_dentry_cycle_is_one_partial_module(run):
    corrupt, whole = phase(run, 1)["own_modules"], phase(run, 2)["own_modules"]
    assert corrupt[0] != "error" and whole[0] != "error", (corrupt, whole)
    [loop] = [m for m in whole if m[1] == LOOP_FILE]
    assert (loop[0], loop[2], loop[3], loop[4]) == ("pyrebox_loop.bin", run["loop_map"], 4096, None)
    [bad] = [m for m in corrupt if m[2] == run["loop_map"]]
    assert bad[0] == bad[1] and bad[1].startswith("[unreadable 0x"), bad
    assert "has a cycle" in bad[4], bad
    assert [m for m in corrupt if m[2] != run["loop_map"]] == [m for m in whole if m[1] != LOOP_FILE]
