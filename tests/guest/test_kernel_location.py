"""Locating the kernel with KASLR, boot after boot: each of BOOTS boots of
the default guest (two at a time) must locate the kernel at the slides the
guest itself reports, and deliver the process events of the commands it
runs. The virtual slide is /proc/kallsyms's _text minus the ISF's _text,
the physical one /proc/iomem's "Kernel code" start minus _text's offset in
the kernel image (read as root in the guest).

A wrong location stays wrong for the whole run (the page tables the kernel
is found through change only during its start-up), so one bad boot fails
the test; tests/unit/kernel_locator_test.cpp reproduces the start-up state
that once gave one (the early init_top_pgt)."""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

BOOTS = 6
START_KERNEL_MAP = 0xffffffff80000000
SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "location_events.py")
COMMAND = "echo shell=$$; grep -w _text /proc/kallsyms; grep 'Kernel code' /proc/iomem"
LOCATED = re.compile(r"^\[pyrebox\] Linux kernel located: physical slide (0x[0-9a-f]+), "
                     r"virtual slide (0x[0-9a-f]+)$", re.M)


@pytest.fixture(scope="module")
def linked_text() -> int:
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        return json.load(f)["symbols"]["_text"]["address"]


def boot(work, options=()) -> dict:
    result = run_pyrebox("run", "--conf", os.path.join(work, "pyrebox.conf"), "--timeout", "240",
                         "--cmd", COMMAND, *options, cwd=str(work))
    where = result.stdout[-3000:] + result.stderr
    assert result.returncode == 0, where
    located = LOCATED.findall(result.stdout)
    assert len(located) == 1, where
    lines, rc = command_outputs(result.stdout)[1]
    assert rc == 0, lines
    text = next(int(l.split()[0], 16) for l in lines if l.endswith(" T _text"))
    code = next(int(l.split("-")[0].strip(), 16) for l in lines if l.endswith(" : Kernel code"))
    shell = int(key_values(lines)["shell"])
    results = [l for l in result.stdout.splitlines()
               if l.startswith("[python] RESULT ")]
    assert len(results) == 1, where
    return {"phys": int(located[0][0], 16), "virt": int(located[0][1], 16), "text": text,
            "code": code, "shell": shell,
            "created": json.loads(results[0].split("RESULT ", 1)[1])["created"],
            "warnings": [l for l in result.stdout.splitlines() if "could not read" in l],
            "where": where}


def work_dirs(tmp_path, count: int) -> list:
    works = []
    for i in range(count):
        work = tmp_path / f"boot{i}"
        write(work / "scripts" / "__init__.py", "")
        shutil.copy(SCRIPT, work / "scripts" / "location_events.py")
        write(work / "pyrebox.conf", "[MODULES]\nscripts.location_events: True\n")
        works.append(work)
    return works


def assert_located_at_the_guests_slides(boots, linked_text):
    for b in boots:
        # The kernel's own view: _text's run-time address and physical address.
        assert b["virt"] == b["text"] - linked_text, b
        assert b["phys"] == b["code"] - (linked_text - START_KERNEL_MAP), b
        assert b["warnings"] == [], b["warnings"]
        # Process events arrive: the shell that ran the command (created
        # long after the kernel was located) had its CREATEPROC.
        assert b["shell"] in [c["pid"] for c in b["created"]], (b["created"], b["where"])


def test_every_kaslr_boot_locates_the_kernel_at_the_guests_own_slides(tmp_path, linked_text):
    with ThreadPoolExecutor(max_workers=2) as pool:
        boots = list(pool.map(boot, work_dirs(tmp_path, BOOTS)))
    assert_located_at_the_guests_slides(boots, linked_text)
    # KASLR was on: the slides differ from boot to boot (BOOTS draws of
    # hundreds of 2 MiB slots each; all equal would mean no randomisation).
    assert len({b["virt"] for b in boots}) > 1, [b["virt"] for b in boots]
    assert all(b["virt"] != 0 or b["phys"] != 0 for b in boots)


def test_more_memory_is_scanned_whichever_way_it_is_given(tmp_path, linked_text):
    """With more RAM, KASLR places the kernel anywhere in it (with 3G above
    the default 512M in 5 of 6 boots seen; a plugin scanning only 512M then
    says "kernel banner not found ... below 0x20000000"): the plugin scans
    the RAM the guest has, given with --memory or with -m after --."""
    works = work_dirs(tmp_path, 2)
    with ThreadPoolExecutor(max_workers=2) as pool:
        boots = list(pool.map(boot, works, [("--memory", "2G"), ("--", "-m", "3G")]))
    assert_located_at_the_guests_slides(boots, linked_text)
