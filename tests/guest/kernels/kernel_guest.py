"""Shared by the per-kernel tests of this folder: boots the guest of
`pyrebox run --guest-kernel SPEC` (built by guest/build.py --guest-kernel
SPEC into build/guests/<release>) with scripts/kernel_probe.py, and checks
exact facts of PyREBox's introspection against the guest's own view.

Two boots per kernel: "kaslr" (the default CPU, which the kernels do not
isolate page tables on) and "nokaslr-kpti" (nokaslr, and an Intel CPU
model the kernel isolates page tables on). In each the guest runs
fork_exec (2 children exec'ing static_loop), dyn_wait and its
/proc/<pid>/maps, the on-demand kernel module of the guest's manifest
(insmod, /proc/modules, rmmod), ps, and dl_cycle (dlopen and dlclose of a
library, which the munmap hook sees); the probe records every process and
module event and, at each watched program's exit, the lists, mm->pgd of
every process read with the ISF's offsets, and Volatility's pslist and
lsmod."""

from __future__ import annotations

import json
import lzma
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from strace_compare import STRACE_FILES, assert_same_calls
from pyrebox import paths

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "kernel_probe.py")
CHILDREN = 2
BOOTS = {"kaslr": [], "nokaslr-kpti": ["--nokaslr", "--", "-cpu", "Haswell-noTSX"]}
WATCH = ("static_loop", "dyn_wait", "cat", "ps", "dl_cycle")
TRACED = "syscall_seq 3 > /tmp/seq.out; cat /tmp/seq.out"


def built_guest(spec: str):
    """The built guest of SPEC, or a skip naming what to build."""
    try:
        return paths.guest(spec)
    except paths.SetupError as e:
        pytest.skip(f"{e} (or 'make test', which builds it)")


def member_offset(types: dict, struct: str, member: str) -> int | None:
    """The offset of `member` in `struct`, looking into anonymous members."""
    fields = types[struct]["fields"]
    if member in fields:
        return fields[member]["offset"]
    for name, field in fields.items():
        kind = field["type"].get("kind")
        if (field.get("anonymous") or name.startswith("unnamed_field")) and \
                kind in ("struct", "union"):
            inner = member_offset(types, field["type"]["name"], member)
            if inner is not None:
                return field["offset"] + inner
    return None


def isf_facts(isf_path: str) -> dict:
    """Link-time addresses and offsets from the guest's ISF."""
    with lzma.open(isf_path, "rt") as f:
        isf = json.load(f)
    symbols, types = isf["symbols"], isf["user_types"]
    address = {name: symbols[name]["address"]
               for name in ("_text", "_end", "do_group_exit", "page_offset_base")}
    return {
        "_text": address["_text"], "_end": address["_end"],
        "page_offset_base": address["page_offset_base"],
        "do_group_exit": address["do_group_exit"] - address["_text"],  # from the base
        "task_mm": member_offset(types, "task_struct", "mm"),
        "mm_pgd": member_offset(types, "mm_struct", "pgd"),
    }


def boot(spec: str, mode: str, tmp_path_factory) -> dict:
    built = built_guest(spec)
    facts = isf_facts(built.isf)
    module = built.on_demand_module
    work = tmp_path_factory.mktemp(f"kernel_{mode}")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "kernel_probe.py")
    with open(work / "probe.json", "w") as f:
        json.dump({"watch": WATCH, "vol": ["ps"], "offsets": facts}, f)
    trace = work / "trace.txt"
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.kernel_probe: True\n"
                 "pyrebox.trace_script: True\n"
                 f"[TRACE]\nprogram = syscall_seq\noutput = {trace}\n")
    commands = [
        f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10",
        # dyn_wait waits on stdin (a pipe that ends after 2 s) while cat
        # prints its maps.
        "(sleep 2) | dyn_wait > dyn_wait.out & sleep 1; cat /proc/$(pidof dyn_wait)/maps; wait; "
        "cat dyn_wait.out",
        f"insmod {module['path']} && cat /proc/modules && rmmod {module['name']}",
        "cat /sys/devices/system/cpu/vulnerabilities/meltdown",
        "ps -o pid,ppid,comm",
        "dl_cycle",
        # The trace follows the first syscall_seq; the second runs under strace.
        TRACED,
        f"strace -ff -o /tmp/st {TRACED}; {STRACE_FILES}",
    ]
    args = ["run", "--guest-kernel", spec, "--conf", conf, "--timeout", "300"]
    for command in commands:
        args += ["--cmd", command]
    mode_args = BOOTS[mode]
    result = run_pyrebox(*args, *mode_args, cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.kernel_probe] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    outputs = command_outputs(result.stdout)
    assert all(outputs[n][1] == 0 for n in range(1, len(commands) + 1)), outputs
    return {"built": built, "facts": facts, "report": report, "outputs": outputs,
            "stdout": result.stdout, "mode": mode, "module": module,
            "trace": trace.read_text()}


# --- what the guest printed ---

def exits(run: dict, name: str) -> list[dict]:
    return [snap for snap in run["report"]["exits"] if snap["name"] == name]


def proc_modules_line(run: dict) -> tuple[int, int]:
    """(size, address) of the on-demand module in the guest's /proc/modules."""
    name = run["module"]["name"]
    lines, _ = run["outputs"][3]
    fields = next(line.split() for line in lines if line.startswith(name + " "))
    return int(fields[1]), int(fields[5], 16)


def ps_rows(run: dict) -> list[tuple[int, int, str]]:
    lines, _ = run["outputs"][5]
    rows = []
    for line in lines[1:]:  # after the header
        pid, ppid, comm = line.split(None, 2)
        rows.append((int(pid), int(ppid), comm.strip()))
    return rows


def same_comm(ps_name: str, comm: str) -> bool:
    """ps shows /proc's name: a kworker's comm with its workqueue after a
    '-' (wq_worker_comm), cut to the column; another kernel thread's full
    name, of which comm holds the first 15 characters (procps 4 shows it;
    busybox's ps shows comm); any other task's comm as is. systemd names a
    child it has forked "(unit)" until the child execs: ps and the snapshot
    can see one process on either side of that exec."""
    if ps_name == comm or ps_name in (f"({comm})", comm.strip("()")):
        return True
    if len(comm) == 15 and ps_name.startswith(comm):
        return True
    return comm.startswith("kworker/") and (comm + "-").startswith(ps_name[:len(comm) + 1]) \
        and ps_name.startswith(comm + "-")


# --- the tests each kernel's file runs (on its `run` fixture) ---

def test_the_built_kernel_is_located_and_nothing_failed(run):
    report, facts, stdout = run["report"], run["facts"], run["stdout"]
    assert report["errors"] == [], report["errors"]
    assert f"[pyrebox] Linux symbols: Linux version {run['built'].release} " in stdout
    assert "[pyrebox] warning:" not in stdout
    kernel = report["kernel"]
    assert kernel["name"] == "vmlinux"
    assert kernel["size"] == facts["_end"] - facts["_text"]
    if run["mode"].startswith("nokaslr"):
        assert kernel["base"] == facts["_text"]
    assert set(WATCH) == {snap["name"] for snap in report["exits"]}


def test_kpti_is_what_the_kernel_says(run):
    lines, _ = run["outputs"][4]
    isolated = lines == ["Mitigation: PTI"]
    assert isolated or lines == ["Not affected"], lines
    assert isolated == (run["mode"] == "nokaslr-kpti")
    assert run["report"]["kpti"] is isolated
    # Asked at the first CR3 with bit 12 set: a kernel that allocates 8 KiB
    # pgds without isolating them never loads one, and is never asked.
    said_on = "[pyrebox] Linux page-table isolation (KPTI) is on" in run["stdout"]
    said_off = "[pyrebox] Linux page-table isolation (KPTI) is off" in run["stdout"]
    assert said_on == isolated and not (said_on and said_off)


def test_pgds_are_mm_pgd_and_the_running_cr3(run):
    for snap in run["report"]["exits"]:
        assert snap["me"]["pgd"] == snap["running_pgd"] != 0
        pgds = snap["mm_pgds"]
        for p in snap["procs"]:
            assert p["pgd"] == pgds.get(str(p["pid"]), 0), p
        users = [p["pgd"] for p in snap["procs"] if p["pgd"]]
        assert len(users) == len(set(users))  # no vfork children at these moments


def test_fork_exec_and_exit_events_carry_the_printed_pids(run):
    out = run["outputs"][1][0]
    values = [line.split("=", 1) for line in out if line.startswith(("parent=", "child="))]
    parent = int(values[0][1])
    children = [int(v.split()[0]) for k, v in values[1:]]
    assert len(children) == CHILDREN
    assert all(line.endswith("status=0") for line in out if line.startswith("child="))
    events = run["report"]["events"]
    loops = {snap["me"]["pid"]: snap["me"]["pgd"] for snap in exits(run, "static_loop")}
    for child in children:
        mine = [(e["ev"], e["name"], e["pgd"]) for e in events
                if e["pid"] == child and e["ev"] in ("create", "remove")]
        assert [(ev, name) for ev, name, _ in mine] == [
            ("create", "fork_exec"), ("remove", "fork_exec"),
            ("create", "static_loop"), ("remove", "static_loop")], mine
        assert mine[0][2] == mine[1][2] != 0          # the forked copy
        assert mine[2][2] == mine[3][2] == loops[child]  # exec's new address space
    assert any(e["ev"] == "create" and e["pid"] == parent and e["name"] == "fork_exec"
               for e in events)


def test_libc_extent_and_getpid_match_the_program(run):
    lines, _ = run["outputs"][2]
    printed = key_values(lines)
    maps = [line.split() for line in lines if line.rstrip().endswith("/libc.so.6")]
    spans = [tuple(int(x, 16) for x in fields[0].split("-")) for fields in maps]
    low, high = min(s for s, _ in spans), max(e for _, e in spans)
    [snap] = exits(run, "dyn_wait")
    assert snap["me"]["pid"] == int(printed["pid"])
    libc = next(m for m in snap["modules"] if m["name"] == "libc.so.6")
    assert libc["fullname"] == maps[0][-1]
    assert (libc["base"], libc["size"]) == (low, high - low)
    assert snap["getpid"] == int(printed["getpid"], 16)


def test_the_kernel_module_is_sized_as_proc_modules(run):
    size, address = proc_modules_line(run)
    name = run["module"]["name"]
    snaps = [snap for snap in exits(run, "cat")
             if any(m["name"] == name for m in snap["kernel_modules"])]
    assert snaps, "no exit of cat saw the module"
    for snap in snaps:
        module = next(m for m in snap["kernel_modules"] if m["name"] == name)
        assert (module["base"], module["size"]) == (address, size)
        regions = module["regions"]
        assert sum(r["size"] for r in regions) == size  # after init: no init regions
        assert regions[0]["base"] == address and regions[0]["name"] in ("core", "text")
    events = run["report"]["events"]
    loads = [e for e in events if e["ev"] == "load" and e["pgd"] == 0 and e["name"] == name]
    unloads = [e for e in events if e["ev"] == "unload" and e["pgd"] == 0 and e["name"] == name]
    assert [e["base"] for e in loads] == [address]
    assert [e["base"] for e in unloads] == [address]
    assert loads[0]["size"] == unloads[0]["size"] == size


def test_the_process_list_is_ps_row_for_row(run):
    [snap] = exits(run, "ps")
    ours = [(p["pid"], p["ppid"], p["name"]) for p in snap["procs"]]
    rows = ps_rows(run)
    assert [r[:2] for r in rows] == [o[:2] for o in ours]
    for (pid, _, ps_name), (_, _, comm) in zip(rows, ours):
        assert same_comm(ps_name, comm), (pid, ps_name, comm)


def test_volatility_agrees(run):
    [snap] = exits(run, "ps")
    ours = sorted((p["pid"], p["ppid"], p["name"]) for p in snap["procs"])
    theirs = sorted((row["PID"], row["PPID"], row["COMM"]) for row in snap["pslist"])
    assert theirs == ours
    kernel_modules = [(m["name"], m["size"]) for m in snap["kernel_modules"][1:]]
    lsmod = [(row["Module Name"], row["Code Size"]) for row in snap["lsmod"]]
    assert sorted(lsmod) == sorted(kernel_modules)
    assert kernel_modules, "the guest loads its boot modules"


def test_dlopen_and_dlclose_give_the_librarys_events(run):
    printed = key_values(run["outputs"][6][0])
    pid = int(printed["pid"])
    [snap] = exits(run, "dl_cycle")
    assert snap["me"]["pid"] == pid
    pgd = snap["me"]["pgd"]
    events = [e for e in run["report"]["events"] if e["pid"] == pid and e["pgd"] == pgd]
    loads = [(e["base"], e["size"]) for e in events
             if e["ev"] == "load" and e["name"] == "libdltest.so"]
    unloads = [e["base"] for e in events if e["ev"] == "unload"]
    lib = (int(printed["lib_base"], 16), int(printed["lib_size"], 16))
    assert loads == [lib]
    assert unloads == [lib[0]]  # the munmap hook saw dlclose remove it
    assert printed["mapped_after_close"] == "0"
    # libc as the program read it from its own /proc/self/maps.
    libc = next(m for m in snap["modules"] if m["name"] == "libc.so.6")
    assert (libc["base"], libc["size"]) == (int(printed["libc_base"], 16),
                                            int(printed["libc_size"], 16))
    assert not any(m["name"] == "libdltest.so" for m in snap["modules"])


def test_the_trace_agrees_with_the_guests_strace(run):
    """pyrebox trace's script and the guest's strace -ff on the same
    program: the same calls, arguments and results, thread by thread (this
    kernel's own call tables or switches, syscall metadata and per-CPU
    current task)."""
    strace_out = run["stdout"].split("PYREBOX-CMD-BEGIN 8", 1)[1]
    assert_same_calls(strace_out, run["trace"])
