"""`make bench`: PyREBox's overhead against plain QEMU, side by side.

Every configuration boots the default guest, runs the workload program
(guest/programs/workload.c) and powers off. Each run of a configuration is
paired with a plain QEMU run (no plugin) of the same workload, the pairs
interleaved and repeated; the table gives median wall times, the ratio to
the median of the paired plain runs, and events per second where a
configuration counts events (events divided by the time it added to plain
QEMU: the marginal cost of delivering them). The Python-per-block
configuration delivers ~100 events per workload round, so it runs a
twentieth of the rounds (its row says so).

Usage: bench/run.py [--rounds N] [--repeat R] [--quick]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCHER = os.path.join(ROOT, "pyrebox")

# (key, description, script module, target, divisor of the workload rounds);
# script "n/a": not available yet.
CONFIGS = [
    ("plugin", "1. plugin loaded, no scripts", None, "<= 1.05", 1),
    ("tracking", "2. process and module tracking on (no work in the callbacks)",
     "bench.scripts.process_tracking", "<= 1.10", 1),
    ("monitor", "2b. context-switch tracking, workload monitored", "bench.scripts.monitor_only",
     "<= 1.10", 1),
    ("blocks", "3. Python BLOCK_BEGIN (trivial body), workload monitored",
     "bench.scripts.python_blocks", ">= 300,000 events/s", 20),
    ("insn_addr", "4. address-specific INSN_BEGIN (one hit per round)",
     "bench.scripts.address_insn", "", 1),
    ("mem_python", "5a. MEM_WRITE, range filtered in Python", "bench.scripts.python_mem_write", "",
     1),
    ("mem_trigger", "5b. MEM_WRITE, range filtered by a trigger", "bench.scripts.trigger_mem_write",
     "<= 1.5", 1),
    ("trigger_blocks", "6. C trigger counting BLOCK_BEGIN, all processes",
     "bench.scripts.trigger_block_counter", "<= 1.15", 1),
    ("syscalls", "7. Python SYSCALL_CB + SYSCALL_RET_CB (trivial body), workload monitored",
     "bench.scripts.python_syscalls", "<= 1.6", 1),
    ("trace", "7b. pyrebox trace of the workload (every call decoded and formatted)",
     "bench.scripts.syscall_trace", "report", 1),
    # Not PyREBox: a bare QEMU plugin with an empty C callback per block
    # (bench/floor), what QEMU itself charges for any per-block callback.
    ("floor", "6f. QEMU floor: bare plugin, empty per-block callback, no register access",
     "floor:regs=none", "", 1),
    ("floor_regs", "6g. QEMU floor: the same with register access (as PyREBox registers it)",
     "floor:regs=rw", "", 1),
    ("floor_mem", "5f. QEMU floor: bare plugin, empty callback after every store",
     "floor:regs=none,mem=w", "", 1),
]
FLOOR_PLUGIN = os.path.join(ROOT, "build", "cmake", "libpyrebox_bench_floor.so")
NOT_AVAILABLE: dict[str, str] = {}


CALL_TIMES: dict[str, list[float]] = {}  # "BENCH call NAME=ms" lines, over all runs


def run_once(rounds: int, script: str | None, plugin: bool, workdir: str) -> tuple[float, int | None]:
    args = [LAUNCHER, "run", "--timeout", "1800", "--cmd", f"workload {rounds}"]
    if not plugin or (script and script.startswith("floor:")):
        args.append("--no-plugin")
    if script and script.startswith("floor:"):
        args += ["--", "-plugin", f"{FLOOR_PLUGIN},{script.split(':', 1)[1]}"]
    elif script:
        conf = os.path.join(workdir, f"{script}.conf")
        with open(conf, "w") as f:
            f.write(f"[MODULES]\n{script}: True\n")
        args[2:2] = ["--conf", conf]
    start = time.monotonic()
    result = subprocess.run(args, capture_output=True, text=True, cwd=ROOT)
    elapsed = time.monotonic() - start
    if result.returncode != 0 or f"rounds={rounds}" not in result.stdout:
        raise SystemExit(f"bench: run failed ({' '.join(args)}):\n{result.stdout[-2000:]}"
                         f"{result.stderr[-2000:]}")
    for name, ms in re.findall(r"BENCH call (\S+)=([0-9.]+)", result.stdout):
        CALL_TIMES.setdefault(name, []).append(float(ms))
    match = re.search(r"BENCH events=(\d+)", result.stdout)
    return elapsed, int(match.group(1)) if match else None


def qemu_version() -> str:
    """QEMU's first --version line, for the table's heading."""
    return subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.splitlines()[0]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4000000, help="workload rounds")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each configuration")
    parser.add_argument("--only", metavar="KEYS",
                        help="comma-separated configuration keys to run (default: all): "
                             + ", ".join(c[0] for c in CONFIGS))
    parser.add_argument("--quick", action="store_true",
                        help="tiny workload, one run each, plain QEMU runs shared by the "
                             "configurations of one workload size (checks the harness, not "
                             "speed)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.repeat = 1000, 1

    available = [c for c in CONFIGS if c[2] != "n/a"]
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c[0] for c in CONFIGS}
        if unknown:
            parser.error(f"unknown configuration {', '.join(sorted(unknown))}")
        available = [c for c in available if c[0] in wanted | {"plugin"}]
    times: dict[str, list[float]] = {}
    plain_times: dict[str, list[float]] = {}
    events: dict[str, list[int]] = {}
    with tempfile.TemporaryDirectory(prefix="pyrebox-bench-") as workdir:
        for rep in range(args.repeat):
            shared_plain: dict[int, float] = {}  # --quick: one plain run per workload size
            for key, _, script, _, divisor in available:
                rounds = max(1, args.rounds // divisor)
                # Each run paired with a plain QEMU run of the same workload.
                if args.quick and rounds in shared_plain:
                    elapsed = shared_plain[rounds]
                else:
                    elapsed, _ = run_once(rounds, None, False, workdir)
                    shared_plain[rounds] = elapsed
                plain_times.setdefault(key, []).append(elapsed)
                elapsed, count = run_once(rounds, script, True, workdir)
                times.setdefault(key, []).append(elapsed)
                if count is not None:
                    events.setdefault(key, []).append(count)
                print(f"bench: run {rep + 1}/{args.repeat} {key}: {elapsed:.2f} s "
                      f"(plain {plain_times[key][-1]:.2f} s)", file=sys.stderr)

    plain = statistics.median(plain_times["plugin"])
    qemu = qemu_version()
    print(f"Workload: default guest boot, `workload {args.rounds}`, power-off; "
          f"{args.repeat} run(s) of each configuration, each paired with a plain QEMU run. "
          f"{qemu}; {os.cpu_count()} host CPUs.")
    print()
    print("| configuration | median wall (s) | ratio to plain QEMU | events | events/s | target |")
    print("|---|---:|---:|---:|---:|---|")
    print(f"| plain QEMU (no plugin) | {plain:.2f} | 1.00 | | | |")
    for key, label, script, target, divisor in CONFIGS:
        if key not in times and script != "n/a":
            continue  # not run (--only)
        if script == "n/a":
            print(f"| {label} | not available yet: {NOT_AVAILABLE[key]} | | | | {target} |")
            continue
        if divisor != 1:
            label += f" (workload {max(1, args.rounds // divisor)})"
        median = statistics.median(times[key])
        plain = statistics.median(plain_times[key])
        count = statistics.median(events[key]) if events.get(key) else None
        rate = ""
        if count and median > plain:
            rate = f"{count / (median - plain):,.0f}"
        count_text = f"{count:,.0f}" if count else ""
        print(f"| {label} | {median:.2f} | {median / plain:.2f} | {count_text} | {rate} | {target} |")
    if CALL_TIMES:
        print()
        print("Introspection on demand (configuration 2, medians of the runs, "
              "each the mean of 50 calls): " +
              ", ".join(f"{name} {statistics.median(ms):.3f} ms/call"
                        for name, ms in CALL_TIMES.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
