"""Own-VM benchmark (bench/own_vm.py): the time per call of
get_process_list(). When a program named MARK execs (CREATEPROC), the guest
has started its batch of sleeping processes; there get_process_list() is
called CALLS times, each call timed on its own, and the median, mean and
fastest call, the CPU time per call (the calling thread's, over all calls)
and the number of processes listed (kernel threads included; `user`: those
with an address space) are printed."""

import statistics
import time

import api
from api import CallbackManager

MARK = "pl_bench_mark"  # the marker program's name (under 16 characters: the kernel's comm)
CALLS = 2000
WARMUP = 20

cm = None
printer = None
result = {}


def on_process(pid, pgd, name):
    if name != MARK or result:
        return
    for _ in range(WARMUP):
        api.get_process_list()
    times = []
    cpu_start = time.thread_time()
    for _ in range(CALLS):
        start = time.perf_counter()
        procs = api.get_process_list()
        times.append(time.perf_counter() - start)
    cpu = time.thread_time() - cpu_start
    result["processes"] = len(procs)
    result["user"] = sum(1 for p in procs if p["pgd"])
    result["median_us"] = statistics.median(times) * 1e6
    result["mean_us"] = statistics.fmean(times) * 1e6
    result["min_us"] = min(times) * 1e6
    # The thread's CPU time: without what waiting for a host CPU adds.
    result["cpu_us"] = cpu / CALLS * 1e6
    # The line bench/own_vm.py reads (printed now: QEMU is quit, not powered
    # off, once the batch has run).
    printer(f"BENCH process_list calls={CALLS} processes={result['processes']} "
            f"user={result['user']} median_us={result['median_us']:.1f} "
            f"mean_us={result['mean_us']:.1f} min_us={result['min_us']:.1f} "
            f"cpu_us={result['cpu_us']:.1f}")


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_process)


def clean():
    cm.clean()
