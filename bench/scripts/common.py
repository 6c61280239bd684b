"""Shared by the benchmark scripts: the workload's symbols and the report."""

import os
import subprocess

from pyrebox import paths

WORKLOAD = os.path.join(paths.GUEST, "programs", "workload")


def symbols():
    out = subprocess.run(["nm", WORKLOAD], capture_output=True, text=True, check=True).stdout
    return {p[2]: int(p[0], 16) for p in map(str.split, out.splitlines()) if len(p) == 3}


def report(printer, events):
    """The line bench/run.py reads."""
    printer(f"BENCH events={events}")
