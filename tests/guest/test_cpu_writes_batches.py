"""Register writes through a callback's cpu object, and registration
batches with their exact plan-publication and flush counts, on the probe
program: one boot (tests/guest/scripts/cpu_writes_batches.py drives it)."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from test_engine import probe_symbols

pytestmark = pytest.mark.guest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
NAME = "cpu_writes_batches"


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("cpu_writes")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(HERE, "scripts", f"{NAME}.py"), work / "scripts")
    shutil.copytree(os.path.join(ROOT, "triggers"), work / "triggers",
                    ignore=shutil.ignore_patterns("*.so"))
    with open(work / "probe_symbols.json", "w") as f:
        json.dump(probe_symbols(), f)
    conf = write(work / "pyrebox.conf", f"[MODULES]\nscripts.{NAME}: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", "probe 20 10 2 1", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith(f"[scripts.{NAME}] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    output, rc = command_outputs(result.stdout)[1]
    return report, key_values(output), rc, result.stdout


def test_a_register_written_through_cpu_changes_what_the_program_prints(run):
    r, values, rc, _ = run
    assert rc == 0
    assert r["identity_calls"] == 1
    assert r["rdi_before"] == 41
    # pyrebox_identity(41) returned the value written into its argument.
    assert values["value"] == "99", r
    assert r["rdi_cached"] == r["rdi_read"] == 99
    assert r["edi_cached"] == 99
    assert r["rsi_after_esi"] == 0x5678


def test_unknown_and_lower_case_names_raise_attribute_error(run):
    errors = run[0]["errors"]
    assert errors["unknown"][0] == "AttributeError"
    assert "'FOO'" in errors["unknown"][1]
    assert errors["lower_case"][0] == "AttributeError"
    assert "upper case" in errors["lower_case"][1]
    assert errors["cpu_index"][0] == "CpuWriteError"
    assert errors["negative"][0] == "ValueError"


def test_writes_outside_the_receiving_callback_raise(run):
    r = run[0]
    errors = r["errors"]
    for key in ("kept_from_main", "r_cpu", "kept_outside"):
        kind, message, is_attribute_error = errors[key]
        assert kind == "CpuWriteError" and is_attribute_error, errors
        assert "read-only snapshot" in message
    assert "cannot write cpu register RAX" in errors["kept_from_main"][1]
    assert "cannot write cpu register RDI" in errors["kept_outside"][1]
    kind, message, _ = errors["fresh_outside"]
    assert kind == "CpuWriteError"
    assert "no callback of vCPU 0 is running" in message
    # The kept snapshot still shows the value written inside its callback.
    assert r["kept_rdi"] == 99


def test_a_batch_of_100_callbacks_is_one_publication_and_one_flush(run):
    r = run[0]
    counts = r["counts"]
    assert counts["batch_of_100"] == {"publications": 1, "plan_changes": 1, "flushes": 1}
    assert counts["remove_100_in_a_batch"] == {"publications": 1, "plan_changes": 1,
                                               "flushes": 1}
    # Inside the batch the callbacks exist (only the plan waits).
    assert r["registered_inside"] == 100
    assert r["depth_inside"] == 1
    assert "unused_fired" not in r


def test_without_a_batch_each_callback_publishes(run):
    assert run[0]["counts"]["without_a_batch_10"] == {"publications": 10, "plan_changes": 10,
                                                      "flushes": 10}


def test_add_trigger_and_rm_trigger_make_one_publication(run):
    counts = run[0]["counts"]
    # An address callback's plan is its address: replacing it changes nothing to flush.
    assert counts["add_trigger"] == {"publications": 1, "plan_changes": 0, "flushes": 0}
    assert counts["rm_trigger"] == {"publications": 1, "plan_changes": 0, "flushes": 0}


def test_clean_is_one_publication(run):
    r = run[0]
    assert r["counts"]["clean"] == {"publications": 1, "plan_changes": 1, "flushes": 1}
    assert r["left_after_clean"] == 0


def test_nested_batches_fold_into_the_outermost(run):
    r = run[0]
    assert r["after_inner"] == {"publications": 0, "plan_changes": 0, "flushes": 0}
    assert r["counts"]["nested"] == {"publications": 1, "plan_changes": 1, "flushes": 1}


def test_an_exception_in_a_batch_still_applies_its_registrations(run):
    r = run[0]
    assert r["raised"] == "inside the batch"
    assert r["after_raise_registered"] == 3
    assert r["depth_after_raise"] == 0
    assert r["counts"]["raising_batch"] == {"publications": 1, "plan_changes": 1, "flushes": 1}
