"""The benchmark harness runs on a tiny workload and prints a well-formed
table (speed itself is measured by `make bench`, never asserted here)."""

import os
import re
import subprocess

import pytest

from conftest import ROOT

pytestmark = pytest.mark.guest


def test_bench_quick_prints_a_table():
    result = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python3"),
                             os.path.join(ROOT, "bench", "run.py"), "--quick"],
                            capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert rows[0] == ("| configuration | median wall (s) | ratio to plain QEMU | events "
                       "| events/s | target |")
    assert rows[1] == "|---|---:|---:|---:|---:|---|"
    assert rows[2].startswith("| plain QEMU (no plugin) | ")
    body = rows[3:]
    assert len(body) == 13
    measured = [r for r in body if "not available yet" not in r]
    assert len(measured) == 13
    for row in measured:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[1]) > 0 and re.fullmatch(r"\d+\.\d\d", cells[2])
    counts = {cells[0]: cells[3] for cells in
              ([c.strip() for c in r.strip("|").split("|")] for r in measured)}
    # The address-specific callback fires once per workload round (1000).
    assert counts["4. address-specific INSN_BEGIN (one hit per round)"] == "1,000"
    assert counts["5a. MEM_WRITE, range filtered in Python"] == "1,000"
    assert counts["5b. MEM_WRITE, range filtered by a trigger"] == "1,000"
    # At least the workload's own: the shell's fork (CREATEPROC, LOADMODULE of
    # busybox), its exec (REMOVEPROC, CREATEPROC, LOADMODULE of workload) and
    # its end (REMOVEPROC); the boot adds its own processes.
    tracked = counts["2. process and module tracking on (no work in the callbacks)"]
    assert int(tracked.replace(",", "")) >= 6
    calls = [l for l in result.stdout.splitlines() if l.startswith("Introspection on demand")]
    assert len(calls) == 1
    assert re.findall(r"(get_\S+) [0-9.]+ ms/call", calls[0]) == [
        "get_process_list", "get_module_list(init)", "get_module_list(0)"]
    floor = counts["6f. QEMU floor: bare plugin, empty per-block callback, no register access"]
    assert int(floor.replace(",", "")) > 1_000_000
    stores = counts["5f. QEMU floor: bare plugin, empty callback after every store"]
    assert int(stores.replace(",", "")) > 1_000_000
    # Every getppid of the 1000 rounds enters and returns, and has a trace line.
    syscalls = counts["7. Python SYSCALL_CB + SYSCALL_RET_CB (trivial body), workload monitored"]
    assert int(syscalls.replace(",", "")) >= 2 * 1000
    lines = counts["7b. pyrebox trace of the workload (every call decoded and formatted)"]
    assert int(lines.replace(",", "")) >= 1000
    blocks = counts["6. C trigger counting BLOCK_BEGIN, all processes"]
    assert int(blocks.replace(",", "")) > 1_000_000  # a whole boot's blocks
