"""CREATEPROC / REMOVEPROC / LOADMODULE / REMOVEMODULE on the default guest,
with KASLR, with nokaslr, with two vCPUs and with KPTI: one boot each runs fork_exec
(3 children exec'ing static_loop), dl_cycle (dlopen/dlclose of
libdltest.so) and an insmod/rmmod of the guest's on-demand module (crc7);
the KASLR and two-vCPU boots also run fork_storm (3,000 children that exit
at once, reaped 100 at a time, so zombies' mm_structs are reused); with
tests/guest/scripts/process_events.py recording every event. Assertions are
against what the programs print about themselves and the ELF files."""

from __future__ import annotations

import json
import os
import shutil
import struct
from collections import Counter

import pytest

from conftest import command_outputs, insmod_command, key_values, on_demand_module, run_pyrebox, write

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "process_events.py")
LOADER = "/lib64/ld-linux-x86-64.so.2"
CHILDREN = 3
STORM_BATCHES, STORM_PER_BATCH = 30, 100
STORM_RUNS = ("kaslr", "smp2")


def commands(run: str) -> tuple[str, ...]:
    module = on_demand_module()
    storm = (f"fork_storm {STORM_BATCHES} {STORM_PER_BATCH}",) if run in STORM_RUNS else ()
    return (
        f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10",
        "dl_cycle",
        f"{insmod_command(module)} && grep '^{module['name']} ' /proc/modules && rmmod {module['name']}",
        *storm,
    )


def elf_entry(path: str) -> int:
    with open(path, "rb") as f:
        header = f.read(32)
    assert header[:4] == b"\x7fELF" and header[4] == 2, path
    return struct.unpack_from("<Q", header, 24)[0]


def lifetime(report: dict, process: dict) -> list[dict]:
    """The events from the CREATEPROC of dl_cycle's `process` (pid, pgd) to
    its REMOVEPROC (a pid and a pgd can both belong to an earlier process)."""
    events = report["events"]
    same = lambda e: e["pid"] == process["pid"] and e["pgd"] == process["pgd"]  # noqa: E731
    start = next(i for i, e in enumerate(events)
                 if e["ev"] == "create" and same(e) and e["name"] == "dl_cycle")
    end = next(i for i, e in enumerate(events) if i > start and e["ev"] == "remove" and same(e))
    return events[start:end + 1]


@pytest.fixture(scope="module", params=["kaslr", "nokaslr", "smp2", "kpti"])
def events_run(request, tmp_path_factory):
    work = tmp_path_factory.mktemp("process_events")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "process_events.py")
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.process_events: True\n")
    # kpti: an Intel CPU model the kernel isolates page tables on (a pgd
    # pair per process, reported as one).
    extra = {"kaslr": [], "nokaslr": ["--nokaslr"], "smp2": ["--smp", "2"],
             "kpti": []}[request.param]
    args = ["run", "--conf", conf, "--timeout", "300", *extra]
    for command in commands(request.param):
        args += ["--cmd", command]
    if request.param == "kpti":
        args += ["--", "-cpu", "Haswell-noTSX"]
    result = run_pyrebox(*args, cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.process_events] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    assert report["errors"] == [], report["errors"]
    outputs = command_outputs(result.stdout)
    assert sorted(outputs) == list(range(1, len(commands(request.param)) + 1)), outputs
    assert all(rc == 0 for _, rc in outputs.values()), outputs
    return report, outputs


def test_forks_and_execs_give_one_createproc_each_and_as_many_removeproc(events_run):
    report, outputs = events_run
    lines = outputs[1][0]
    parent = int(key_values(lines)["parent"])
    children = [int(l.split()[0].split("=")[1]) for l in lines if l.startswith("child=")]
    assert len(children) == CHILDREN
    pids = {parent, *children}
    ours = [e for e in report["events"] if e["ev"] in ("create", "remove") and e["pid"] in pids]
    # The parent's pid first belongs to the shell's fork that execs fork_exec.
    start = next(i for i, e in enumerate(ours) if e["pid"] == parent and e["name"] == "fork_exec")
    ours = [e for i, e in enumerate(ours) if e["pid"] != parent or i >= start]
    creates = [e for e in ours if e["ev"] == "create"]
    # K+1 processes called fork_exec: the program itself (its exec) and each
    # forked child, in creation order; then each child's exec renames it.
    assert [e["pid"] for e in creates if e["name"] == "fork_exec"] == [parent, *children]
    assert [e["pid"] for e in creates if e["name"] == "static_loop"] == children
    assert len(creates) == 2 * CHILDREN + 1
    # Every (pid, pgd, name) created is removed once, after its creation.
    key = lambda e: (e["pid"], e["pgd"], e["name"])  # noqa: E731
    removes = [e for e in ours if e["ev"] == "remove"]
    assert Counter(map(key, removes)) == Counter(map(key, creates))
    for index, event in enumerate(ours):
        if event["ev"] == "remove":
            assert any(key(c) == key(event) for c in ours[:index] if c["ev"] == "create")
    # An exec is REMOVEPROC of the forked image then CREATEPROC of the new one.
    for child in children:
        seq = [(e["ev"], e["name"]) for e in ours if e["pid"] == child]
        assert seq == [("create", "fork_exec"), ("remove", "fork_exec"),
                       ("create", "static_loop"), ("remove", "static_loop")]
        pgds = [e["pgd"] for e in ours if e["pid"] == child]
        assert pgds[0] == pgds[1] and pgds[2] == pgds[3] and pgds[0] != pgds[2]
        assert all(p != 0 for p in pgds)


def test_monitoring_from_createproc_sees_the_first_user_instruction(events_run):
    report, outputs = events_run
    printed = key_values(outputs[2][0])
    watched = report["watched"]
    assert watched is not None and watched["pid"] == int(printed["pid"])
    loader = [e for e in lifetime(report, watched) if e["ev"] == "load"
              and e["pgd"] == watched["pgd"] and e["name"] == "ld-linux-x86-64.so.2"]
    assert len(loader) == 1
    first = report["first_block"]
    # The first user-mode instruction of a dynamic program is the loader's entry.
    assert first["pc"] == loader[0]["base"] + elf_entry(os.path.realpath(LOADER))
    assert first["running_pgd"] == watched["pgd"]
    assert [(p["pid"], p["pgd"], p["name"]) for p in first["list_entry"]] == [
        (watched["pid"], watched["pgd"], "dl_cycle")]


def test_modules_of_the_dynamic_program_load_once_and_dlclose_removes(events_run):
    report, outputs = events_run
    printed = key_values(outputs[2][0])
    pgd = report["watched"]["pgd"]
    life = lifetime(report, report["watched"])
    loads = [e for e in life if e["ev"] == "load" and e["pgd"] == pgd]
    assert [e["name"] for e in loads] == ["dl_cycle", "ld-linux-x86-64.so.2", "libc.so.6",
                                          "libdltest.so"]
    assert {e["pid"] for e in loads} == {int(printed["pid"])}
    libc = loads[2]
    assert libc["base"] == int(printed["libc_base"], 16)
    assert libc["fullname"].endswith("/libc.so.6")
    lib = loads[3]
    assert (lib["base"], lib["size"]) == (int(printed["lib_base"], 16),
                                          int(printed["lib_size"], 16))
    assert lib["fullname"] == "/usr/local/lib/libdltest.so"
    unloads = [e for e in life if e["ev"] == "unload" and e["pgd"] == pgd]
    assert [(e["name"], e["base"]) for e in unloads] == [("libdltest.so", lib["base"])]
    assert printed["mapped_after_close"] == "0"
    # The module list while the library is being unloaded: libc's extent is
    # exactly its mappings' span as the program read it from /proc/self/maps.
    listed = {m["name"]: m for m in report["at_dlclose"]}
    assert (listed["libc.so.6"]["base"], listed["libc.so.6"]["size"]) == (
        int(printed["libc_base"], 16), int(printed["libc_size"], 16))


def test_kernel_module_insert_and_remove(events_run):
    report, outputs = events_run
    name = on_demand_module()["name"]
    proc_modules = [l for l in outputs[3][0] if l.startswith(f"{name} ")]
    assert len(proc_modules) == 1
    fields = proc_modules[0].split()
    size, base = int(fields[1]), int(fields[-1], 16)
    # (The NIC drivers the guest loads at boot fire LOADMODULE too.)
    loads = [e for e in report["events"] if e["ev"] == "load" and e["pgd"] == 0
             and e["name"] == name]
    unloads = [e for e in report["events"] if e["ev"] == "unload" and e["pgd"] == 0]
    assert [(e["name"], e["base"], e["pid"]) for e in loads] == [(name, base, 0)]
    assert [(e["name"], e["base"]) for e in unloads] == [(name, base)]
    assert loads[0]["size"] == size  # as /proc/modules gives it once the module is live
    listed = [m for m in report["at_insmod"] if m["name"] == name]
    assert [(m["base"], m["size"]) for m in listed] == [(base, loads[0]["size"])]


def test_a_fork_storm_gives_each_child_its_inherited_modules_once(events_run):
    """Children exit (their mm_struct freed) while later siblings are forked:
    a reused mm_struct is still a new address space, so every child gets one
    LOADMODULE per file its parent maps, with its own pid and pgd."""
    report, outputs = events_run
    if 4 not in outputs:
        pytest.skip(f"fork_storm runs in the {' and '.join(STORM_RUNS)} boots")
    lines = outputs[4][0]
    parent = int(key_values(lines)["pid"])
    children = [int(pid) for line in lines if line.startswith("batch=")
                for pid in line.split("pids=")[1].split(",")]
    assert len(children) == STORM_BATCHES * STORM_PER_BATCH == len(set(children))
    assert key_values(lines)["children"] == str(len(children))
    events = report["events"]
    start = next(i for i, e in enumerate(events)
                 if e["ev"] == "create" and e["pid"] == parent and e["name"] == "fork_storm")
    parent_pgd = events[start]["pgd"]
    parent_files = sorted((e["fullname"] for e in events[start:]
                           if e["ev"] == "load" and e["pgd"] == parent_pgd and e["pid"] == parent),
                          key=lambda path: path.rsplit("/", 1)[1])
    assert [f.rsplit("/", 1)[1] for f in parent_files] == [
        "fork_storm", "ld-linux-x86-64.so.2", "libc.so.6"]
    wanted = set(children)
    ours = [e for e in events[start:] if e["pid"] in wanted]
    creates = {e["pid"]: e for e in ours if e["ev"] == "create"}
    assert [e["pid"] for e in ours if e["ev"] == "create"] == children  # once each, in order
    assert all(e["name"] == "fork_storm" for e in creates.values())
    removes = Counter((e["pid"], e["pgd"]) for e in ours if e["ev"] == "remove")
    assert removes == Counter((pid, e["pgd"]) for pid, e in creates.items())
    loads: dict[int, list[str]] = {pid: [] for pid in children}
    for e in ours:
        if e["ev"] == "load":
            assert e["pgd"] == creates[e["pid"]]["pgd"], e
            loads[e["pid"]].append(e["fullname"])
    wrong = {pid: files for pid, files in loads.items() if sorted(files) != sorted(parent_files)}
    assert not wrong, f"{len(wrong)} of {len(children)} children: {list(wrong.items())[:3]}"
    assert not [e for e in ours if e["ev"] == "unload"]
