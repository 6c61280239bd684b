"""Boot once, analyse many, on the Debian 12 test VM: a run with
--keep-overlay FILE --savevm NAME copies the program in and saves the VM in
the overlay; two runs with --loadvm NAME start from that moment and give
the same output, the second without the first one's writes (the snapshot
holds the disk too). The image is never written."""

from __future__ import annotations

import os

import pytest

from conftest import command_outputs, key_values, run_pyrebox
from own_vm import vm

pytestmark = pytest.mark.built_vm

COMMANDS = ["cat /proc/sys/kernel/random/boot_id", "ls /root", "echo written > /root/mark",
            "/root/report 0 restored"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    m = vm.manifest()
    work = tmp_path_factory.mktemp("own_vm_snapshots")
    program = vm.report_program(work)
    overlay = str(work / "analysis.qcow2")
    base = ["run", "--image", vm.image_path(m), "--memory", "1G", "--keep-overlay", overlay]
    saved = run_pyrebox(*base, "--file", program, "--savevm", "booted",
                        "--cmd", "cat /proc/sys/kernel/random/boot_id", "--timeout", "400",
                        cwd=str(work), timeout=460)
    assert saved.returncode == 0, saved.stdout[-3000:] + saved.stderr
    loaded = []
    for _ in range(2):
        result = run_pyrebox(*base, "--loadvm", "booted", *sum((["--cmd", c] for c in COMMANDS),
                                                               []),
                             "--timeout", "200", cwd=str(work), timeout=260)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        loaded.append(result)
    return {"manifest": m, "saved": saved, "loaded": loaded, "overlay": overlay,
            "program": program}


def test_the_snapshot_is_saved_in_the_overlay_after_the_files(runs):
    stdout = runs["saved"].stdout
    copied = stdout.index(f"[pyrebox] copied {runs['program']} to /root/report")
    saved = stdout.index(f"[pyrebox] saved snapshot booted in {runs['overlay']}")
    assert copied < saved < stdout.index("PYREBOX-CMD-BEGIN 1")
    info = __import__("subprocess").run(["qemu-img", "snapshot", "-l", "-U", runs["overlay"]],
                                        capture_output=True, text=True, check=True).stdout
    assert " booted " in info


def without_pids(outputs: dict) -> dict:
    """The commands' outputs without the program's pid line: the kernel
    hands out pids to its own threads too (a kworker it starts on demand),
    at moments that differ from run to run."""
    return {n: ([l for l in lines if not l.startswith("pid=")], rc)
            for n, (lines, rc) in outputs.items()}


def test_two_analyses_from_the_snapshot_give_the_same_output(runs):
    first, second = (command_outputs(r.stdout) for r in runs["loaded"])
    assert without_pids(first) == without_pids(second)
    assert all(any(l.startswith("pid=") for l in outputs[4][0]) for outputs in (first, second))
    assert sorted(first) == [1, 2, 3, 4]
    boot_id = command_outputs(runs["saved"].stdout)[1][0]
    assert first[1] == (boot_id, 0)            # the same boot, restored
    assert first[2] == (["report"], 0)         # no /root/mark: the disk was restored too
    printed = key_values(first[4][0])
    assert (printed["argc"], printed["arg2"]) == ("3", "restored")


def test_the_image_is_not_written(runs):
    vm.assert_image_unchanged(runs["manifest"])
    assert os.path.getsize(runs["overlay"]) > 0
