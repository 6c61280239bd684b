"""`make bench-vm`: PyREBox on the user's own VM (`pyrebox run --image DISK`).

Two measurements on the Debian 12 test VM (guest/vm_image.py, `make
vm-image`), repeated and interleaved:

1. Boot: `pyrebox run --image DISK --memory 1G --cmd true`, with and
   without the plugin (`--no-plugin`: the same QEMU command line without
   it). The figure is the launcher's `the guest agent answers (N.N s after
   QEMU started)`: QEMU's start to the systemd guest's qemu-ga answering.
   Medians, and the ratio PyREBox / plain QEMU; also the CPU time of each
   whole run (launcher and QEMU), to which time spent waiting for a host
   CPU does not add.
2. Introspection: the guest starts --sleepers (72) background `sleep`
   processes, then a marker program; at the marker's exec (CREATEPROC) the
   script bench/scripts/process_list.py calls get_process_list() 2000 times and
   reports the median per call, the CPU time per call and the number of
   processes listed.

A boot that builds the kernel's symbol table from guest memory (the first
boot of a kernel with nothing cached; the guest is paused meanwhile) is not
counted and is run again.

Usage: bench/own_vm.py [--repeat R] [--image DISK] [--memory SIZE] [--sleepers N]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench.run import qemu_version  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "pyrebox")
DEFAULT_IMAGE = os.path.join("build", "vm", "debian12.qcow2")
SCRIPT = "bench.scripts.process_list"
MARK = "pl_bench_mark"  # as in bench/scripts/process_list.py
TIMEOUT = 900  # seconds per run

BOOT_TARGET = "<= 1.10"
CALL_TARGET_MS = 0.3

AGENT_LINE = re.compile(r"\[pyrebox\] the guest agent answers \(([0-9.]+) s after QEMU started\)")
BUILT_TABLE = "building one from guest memory"
BENCH_LINE = re.compile(r"BENCH process_list calls=(\d+) processes=(\d+) user=(\d+) "
                        r"median_us=([0-9.]+) mean_us=([0-9.]+) min_us=([0-9.]+) cpu_us=([0-9.]+)")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def launch(args: list[str]) -> tuple[str, float]:
    """The run's output and its CPU time (launcher and QEMU, user + system)."""
    cpu = children_cpu()
    result = subprocess.run([LAUNCHER, "run", "--timeout", str(TIMEOUT), *args],
                            capture_output=True, text=True, cwd=ROOT)
    if result.returncode != 0:
        raise SystemExit(f"bench: run failed ({' '.join(args)}):\n{result.stdout[-3000:]}"
                         f"{result.stderr[-2000:]}")
    return result.stdout, children_cpu() - cpu


def boot_once(image: str, memory: str, plugin: bool) -> tuple[float, float, bool]:
    """(seconds until the agent answered, CPU seconds of the whole run,
    whether the run built the symbol table)."""
    args = ["--image", image, "--memory", memory, "--cmd", "true"]
    if not plugin:
        args.append("--no-plugin")
    out, cpu = launch(args)
    match = AGENT_LINE.search(out)
    if match is None:
        raise SystemExit(f"bench: no 'guest agent answers' line ({' '.join(args)}):\n{out[-3000:]}")
    return float(match.group(1)), cpu, BUILT_TABLE in out


def process_list_once(image: str, memory: str, sleepers: int, workdir: str) -> dict:
    conf = os.path.join(workdir, f"{SCRIPT}.conf")
    with open(conf, "w") as f:
        f.write(f"[MODULES]\n{SCRIPT}: True\n")
    # The sleepers' output goes nowhere, so the agent's command ends without
    # waiting for them; they are still asleep when the marker execs.
    cmd = (f"for i in $(seq {sleepers}); do sleep 600 >/dev/null 2>&1 & done; "
           f"cp /bin/true {MARK} && ./{MARK}")
    out, _ = launch(["--conf", conf, "--image", image, "--memory", memory, "--cmd", cmd])
    match = BENCH_LINE.search(out)
    if match is None:
        raise SystemExit(f"bench: the script reported nothing (no exec of {MARK} seen?):\n"
                         f"{out[-3000:]}")
    calls, procs, user = (int(match.group(i)) for i in (1, 2, 3))
    median, mean, fastest, cpu = (float(match.group(i)) for i in (4, 5, 6, 7))
    return {"calls": calls, "processes": procs, "user": user, "median_us": median,
            "mean_us": mean, "min_us": fastest, "cpu_us": cpu}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help="the VM's disk image")
    parser.add_argument("--memory", default="1G", help="the VM's memory")
    parser.add_argument("--sleepers", type=int, default=72,
                        help="background sleep processes while get_process_list() is timed")
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(ROOT, args.image)):
        parser.error(f"{args.image}: no such image (make vm-image builds the Debian 12 VM)")

    boots: dict[bool, list[float]] = {False: [], True: []}
    boot_cpu: dict[bool, list[float]] = {False: [], True: []}
    calls: list[dict] = []
    loads = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(prefix="pyrebox-bench-vm-") as workdir:
        for rep in range(args.repeat):
            for plugin in (False, True):
                took, cpu, built = boot_once(args.image, args.memory, plugin)
                if built:
                    print(f"bench: run {rep + 1}/{args.repeat} built the kernel's symbol table "
                          f"({took:.1f} s); not counted, run again", file=sys.stderr)
                    took, cpu, built = boot_once(args.image, args.memory, plugin)
                boots[plugin].append(took)
                boot_cpu[plugin].append(cpu)
                print(f"bench: run {rep + 1}/{args.repeat} boot "
                      f"{'PyREBox' if plugin else 'plain QEMU'}: {took:.1f} s "
                      f"(run's CPU {cpu:.1f} s)", file=sys.stderr)
            calls.append(process_list_once(args.image, args.memory, args.sleepers, workdir))
            print(f"bench: run {rep + 1}/{args.repeat} get_process_list: "
                  f"{calls[-1]['median_us']:.1f} us/call (CPU {calls[-1]['cpu_us']:.1f} us), "
                  f"{calls[-1]['processes']} processes",
                  file=sys.stderr)
            loads.append(os.getloadavg()[0])

    plain = statistics.median(boots[False])
    pyrebox = statistics.median(boots[True])
    plain_cpu = statistics.median(boot_cpu[False])
    pyrebox_cpu = statistics.median(boot_cpu[True])
    median_ms = statistics.median(c["median_us"] for c in calls) / 1e3
    cpu_ms = statistics.median(c["cpu_us"] for c in calls) / 1e3
    procs = sorted({c["processes"] for c in calls})
    user = sorted({c["user"] for c in calls})
    qemu = qemu_version()
    print(f"Own VM: {args.image}, {args.memory}, 1 vCPU; {args.repeat} run(s) of each "
          f"measurement, interleaved. {qemu}; {os.cpu_count()} host CPUs; host load "
          f"average (1 min) {min(loads):.1f}-{max(loads):.1f} during the runs.")
    print()
    print("| measurement | plain QEMU | PyREBox | ratio | target |")
    print("|---|---:|---:|---:|---|")
    print(f"| boot to the guest agent answering (s, median) | {plain:.1f} | {pyrebox:.1f} | "
          f"{pyrebox / plain:.2f} | {BOOT_TARGET} |")
    print(f"| CPU time of the whole boot run (s, launcher and QEMU, median) | {plain_cpu:.1f} | "
          f"{pyrebox_cpu:.1f} | {pyrebox_cpu / plain_cpu:.2f} | |")
    print(f"| get_process_list() per call (ms, median of the runs' medians) | | "
          f"{median_ms:.3f} | | <= {CALL_TARGET_MS} |")
    print(f"| get_process_list() CPU time per call (ms, median of the runs) | | "
          f"{cpu_ms:.3f} | | |")
    print()
    print(f"Boots (s): plain QEMU {', '.join(f'{t:.1f}' for t in boots[False])}; "
          f"PyREBox {', '.join(f'{t:.1f}' for t in boots[True])}; ratio of each pair "
          + ", ".join(f"{p / q:.2f}" for q, p in zip(boots[False], boots[True])) + ".")
    print(f"get_process_list(): {calls[0]['calls']} calls per run with "
          f"{'/'.join(map(str, procs))} processes listed ({'/'.join(map(str, user))} with an "
          f"address space, {args.sleepers} of them background sleeps); per run median / mean / "
          f"fastest / CPU (us): " + "; ".join(
              f"{c['median_us']:.1f} / {c['mean_us']:.1f} / {c['min_us']:.1f} / "
              f"{c['cpu_us']:.1f}" for c in calls) + ".")
    return 0


if __name__ == "__main__":
    sys.exit(main())
