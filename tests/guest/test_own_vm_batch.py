"""`pyrebox run --image DISK` with --file and --cmd on a real Debian 12
systemd VM (guest/vm_image.py), booted through its own bootloader (GRUB)
with --memory 2G: the files and commands go through qemu-guest-agent, and
PyREBox's introspection equals the guest's own view.

One boot, with the kernel probe of tests/guest/kernels (it records the
process list, the exiting process's modules and the kernel modules at each
watched program's do_group_exit). The guest runs the host-compiled
program, starts 40 sleepers and runs ps, and cats its own maps and
/proc/modules."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import built_release, command_outputs, key_values, run_pyrebox, write
from kernels.kernel_guest import isf_facts, same_comm
from own_vm import vm

pytestmark = pytest.mark.built_vm
from pyrebox import paths
from pyrebox.guest_agent import NO_AGENT

PROBE = os.path.join(os.path.dirname(__file__), "kernels", "scripts", "kernel_probe.py")
SLEEPERS = 40
COMMANDS = [
    "/root/report 7 two",
    f"for i in $(seq {SLEEPERS}); do sleep 600 >/dev/null 2>&1 & done; ps -e -o pid,ppid,comm",
    "cat /proc/self/maps",
    "cat /proc/modules",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    m = vm.manifest()
    if m["kernel_release"] != built_release():
        pytest.skip(f"the VM's kernel {m['kernel_release']} is not the default guest's "
                    f"{built_release()}: run 'make vm-image'")
    work = tmp_path_factory.mktemp("own_vm_batch")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(PROBE, work / "scripts" / "kernel_probe.py")
    facts = isf_facts(paths.GUEST_ISF)
    with open(work / "probe.json", "w") as f:
        json.dump({"watch": ["report", "ps", "cat"], "vol": ["ps"], "offsets": facts}, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.kernel_probe: True\n")
    program = vm.report_program(work)
    args = ["run", "--image", vm.image_path(m), "--memory", "2G", "--conf", conf,
            "--file", program, "--timeout", "400"]
    for command in COMMANDS:
        args += ["--cmd", command]
    result = run_pyrebox(*args, cwd=str(work), timeout=460)
    lines = [l for l in result.stdout.splitlines()
             if l.startswith("[scripts.kernel_probe] RESULT ")]
    assert result.returncode == 0 and len(lines) == 1, result.stdout[-4000:] + result.stderr
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    return {"manifest": m, "stdout": result.stdout, "report": report, "program": program,
            "outputs": command_outputs(result.stdout)}


def exits(run: dict, name: str) -> list[dict]:
    return [snap for snap in run["report"]["exits"] if snap["name"] == name]


def test_every_command_ran_and_nothing_failed(run):
    assert run["report"]["errors"] == []
    assert sorted(run["outputs"]) == [1, 2, 3, 4]
    assert [run["outputs"][n][1] for n in (2, 3, 4)] == [0, 0, 0]
    stdout = run["stdout"]
    assert f"[pyrebox] Linux symbols: Linux version {run['manifest']['kernel_release']} " in stdout
    assert "PYREBOX-GUEST-END" in stdout.splitlines()
    size = os.path.getsize(run["program"])
    assert f"[pyrebox] copied {run['program']} to /root/report ({size} bytes)" in stdout


def test_the_host_program_output_and_exit_status_come_back(run):
    lines, rc = run["outputs"][1]
    assert rc == 7
    printed = key_values(lines)
    assert (printed["argc"], printed["arg1"], printed["arg2"]) == ("3", "7", "two")
    assert lines[-1] == "stderr=report"  # stderr follows stdout
    [snap] = exits(run, "report")
    assert snap["me"]["pid"] == int(printed["pid"])


def ps_rows(run: dict) -> list[tuple[int, int, str]]:
    lines, _ = run["outputs"][2]
    assert lines[0].split() == ["PID", "PPID", "COMMAND"]
    return [(int(pid), int(ppid), comm.strip())
            for pid, ppid, comm in (line.split(None, 2) for line in lines[1:])]


def test_the_process_list_is_ps_row_for_row(run):
    [snap] = exits(run, "ps")
    ours = [(p["pid"], p["ppid"], p["name"]) for p in snap["procs"]]
    rows = ps_rows(run)
    assert len(rows) > 100
    # The VM's own services start and end processes while ps runs. Ours is
    # read at ps's exit, so a process the guest created after ps was forked
    # may be ours only, and one it removed after ps was forked may be ps's
    # only: both are known from the recorded CREATEPROC/REMOVEPROC events.
    events = run["report"]["events"]
    ps_pid = snap["me"]["pid"]
    forked = max(i for i, e in enumerate(events) if e["ev"] == "create" and e["pid"] == ps_pid)
    born = {e["pid"] for e in events[forked + 1:] if e["ev"] == "create"}
    gone = {e["pid"] for e in events[forked + 1:] if e["ev"] == "remove"}
    ours_pids = {pid for pid, _, _ in ours}
    only_ps = [r for r in rows if r[0] not in ours_pids]
    assert {pid for pid, _, _ in only_ps} <= gone, (only_ps, gone)
    rows = [r for r in rows if r[0] in ours_pids]
    ps_pids = {pid for pid, _, _ in rows}
    only_ours = [o for o in ours if o[0] not in ps_pids]
    assert {pid for pid, _, _ in only_ours} <= born, (only_ours, born)
    assert len(only_ps) + len(only_ours) < 5, (only_ps, only_ours)
    ours = [o for o in ours if o[0] in ps_pids]
    assert [r[:2] for r in rows] == [o[:2] for o in ours]
    for (pid, _, ps_name), (_, _, comm) in zip(rows, ours):
        assert same_comm(ps_name, comm), (pid, ps_name, comm)
    assert sum(1 for _, _, comm in rows if comm == "sleep") == SLEEPERS
    assert {"systemd", "systemd-journal", "systemd-udevd", "dbus-daemon", "cron",
            "qemu-ga"} <= {comm for _, _, comm in rows}


def test_volatility_lists_the_same_processes_with_the_table_built_from_memory(run):
    [snap] = exits(run, "ps")
    ours = sorted((p["pid"], p["ppid"], p["name"]) for p in snap["procs"])
    theirs = sorted((row["PID"], row["PPID"], row["COMM"]) for row in snap["pslist"])
    assert theirs == ours


def test_a_processs_modules_are_its_file_mappings(run):
    lines, _ = run["outputs"][3]
    spans: dict[str, list[int]] = {}
    for line in lines:
        fields = line.split()
        if len(fields) == 6 and fields[5].startswith("/"):
            start, end = (int(x, 16) for x in fields[0].split("-"))
            low, high = spans.setdefault(fields[5], [start, end])
            spans[fields[5]] = [min(low, start), max(high, end)]
    snap = exits(run, "cat")[0]
    ours = {m["fullname"]: (m["base"], m["size"]) for m in snap["modules"]}
    assert ours == {path: (low, high - low) for path, (low, high) in spans.items()}
    assert "/usr/bin/cat" in ours and any(p.endswith("/libc.so.6") for p in ours)


def test_kernel_modules_are_proc_modules(run):
    lines, _ = run["outputs"][4]
    proc_modules = sorted((f[0], int(f[1]), int(f[5], 16)) for f in map(str.split, lines))
    snap = exits(run, "cat")[1]
    ours = sorted((m["name"], m["size"], m["base"]) for m in snap["kernel_modules"][1:])
    assert ours == proc_modules
    assert len(ours) > 5  # udev loads the VM's drivers


def test_the_image_is_not_written(run):
    vm.assert_image_unchanged(run["manifest"])


def test_a_vm_without_the_agent_is_named_with_what_to_install(tmp_path):
    """The default guest's kernel and initramfs on an empty disk: no agent
    answers; the timeout says what was awaited and what the console said."""
    disk = tmp_path / "empty.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    before = vm.sha256(str(disk))
    result = run_pyrebox("run", "--image", str(disk), "--kernel", paths.GUEST_KERNEL,
                         "--initrd", paths.GUEST_INITRAMFS, "--append",
                         "console=ttyS0 panic=-1", "--cmd", "true", "--timeout", "40",
                         cwd=str(tmp_path), timeout=120)
    assert result.returncode == 124, result.stdout[-3000:]
    assert "the guest agent had not answered" in result.stdout
    assert NO_AGENT in result.stdout
    assert "the VM's serial console ended with:" in result.stdout
    assert "PYREBOX-CMD-BEGIN" not in result.stdout
    assert vm.sha256(str(disk)) == before


def test_an_image_that_does_not_boot_is_named_at_the_timeout(tmp_path):
    """An empty raw disk: the firmware finds nothing to boot, the serial
    console stays silent; the message says so, and the disk stays empty."""
    disk = tmp_path / "blank.raw"
    disk.write_bytes(b"\0" * (1 << 20))
    result = run_pyrebox("run", "--image", str(disk), "--cmd", "true", "--timeout", "20",
                         cwd=str(tmp_path), timeout=90)
    assert result.returncode == 124, result.stdout[-3000:]
    assert "pyrebox: timeout: the guest agent had not answered after 20 s" in result.stdout
    assert ("the VM printed nothing on its serial console (is its console ttyS0?)"
            in result.stdout)
    assert disk.read_bytes() == b"\0" * (1 << 20)
