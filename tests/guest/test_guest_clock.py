"""api.guest_clock_stopped(): a callback that sleeps 2 s is 2 s of guest
time as it is, and none inside the block (clock_probe measures its own
CLOCK_MONOTONIC across the call)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, nm_symbol, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "clock_probe.py")


def test_the_guest_sees_no_time_pass_inside_guest_clock_stopped(tmp_path):
    write(tmp_path / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, tmp_path / "scripts")
    program = os.path.join(paths.guest().dir, "programs", "clock_probe")
    with open(tmp_path / "clock_probe.json", "w") as f:
        json.dump({"probe": nm_symbol(program, "pyrebox_clock_probe")}, f)
    conf = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.clock_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "120", "--cmd", "clock_probe",
                         cwd=str(tmp_path))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    printed = key_values(command_outputs(result.stdout)[1][0])
    assert int(printed["phase1_ms"]) >= 1900, printed   # the host's 2 s reach the guest
    assert int(printed["phase2_ms"]) < 500, printed     # stopped: (almost) none
