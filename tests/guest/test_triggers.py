"""Native triggers end to end on the probe program: one boot serves every
assertion (tests/guest/scripts/trigger_probe.py drives it)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import command_outputs, run_pyrebox, write
from test_engine import PROBE, STEPS1, STEPS2, probe_symbols, wide_value

pytestmark = pytest.mark.guest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


# Triggers as PyREBox's own are written: its member names (haddr, data, cpu)
# and its template's OP_INSN_BEGIN_CB.
HADDR_DATA_TRIGGER = """
    #include <stdio.h>
    extern "C"{
        #include "qemu_glue.h"
    }
    #include "callbacks.h"
    #include "trigger_helpers.h"

    extern "C"{
        callback_type_t get_type(){
            return MEM_WRITE_CB;
        }
        // Writes to physical [begin, end) of an odd value pass; "pc" is the
        // storing instruction of the last one.
        int trigger(callback_handle_t handle, callback_params_t params){
            pyrebox_target_ulong* begin = (pyrebox_target_ulong*) get_var(handle,"begin");
            pyrebox_target_ulong* end = (pyrebox_target_ulong*) get_var(handle,"end");
            if (begin == 0 || end == 0){
                return 0;
            }
            if (params.mem_write_params.haddr < *begin || params.mem_write_params.haddr >= *end){
                return 0;
            }
            if ((params.mem_write_params.data & 1) == 0){
                return 0;
            }
            set_var_uint(handle, "pc", get_cpu_addr(params.mem_write_params.cpu));
            return 1;
        }
        void clean(callback_handle_t handle){
            erase_trigger_vars(handle);
        }
    }
    """

OP_INSN_TRIGGER = """
    extern "C"{
        #include "qemu_glue.h"
    }
    #include "callbacks.h"
    #include "trigger_helpers.h"

    extern "C"{
        callback_type_t get_type(){
            return OP_INSN_BEGIN_CB;
        }
        int trigger(callback_handle_t handle, callback_params_t params){
            return get_cpu_addr(params.insn_begin_params.cpu) != 0;
        }
        void clean(callback_handle_t handle){
            erase_trigger_vars(handle);
        }
    }
    """


def function_range(name: str) -> tuple[int, int]:
    """[start, end) of a function of the probe, from nm -S."""
    out = subprocess.run(["nm", "-S", PROBE], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] == name:
            return int(parts[0], 16), int(parts[0], 16) + int(parts[1], 16)
    raise AssertionError(f"{name} not in nm -S {PROBE}")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = tmp_path_factory.mktemp("triggers")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(HERE, "scripts", "trigger_probe.py"), work / "scripts")
    shutil.copytree(os.path.join(ROOT, "triggers"), work / "triggers",
                    ignore=shutil.ignore_patterns("*.so"))
    with open(work / "probe_symbols.json", "w") as f:
        json.dump(probe_symbols(), f)
    write(work / "broken_trigger.cpp", """
        #include "callbacks.h"
        extern "C" callback_type_t get_type() { return BLOCK_BEGIN_CB }
        """)
    write(work / "mistyped_trigger.cpp", """
        extern "C" {
        #include "qemu_glue.h"
        }
        #include "callbacks.h"
        extern "C" {
        callback_type_t get_type() { return MEM_WRITE_CB; }
        int trigger(callback_handle_t, callback_params_t) { return 1; }
        void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
        }
        """)
    write(work / "haddr_data_trigger.cpp", HADDR_DATA_TRIGGER)
    write(work / "op_insn_trigger.cpp", OP_INSN_TRIGGER)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.trigger_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300",
                         "--cmd", f"probe {STEPS1} {STEPS2} 100 3", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = next(l for l in result.stdout.splitlines()
                if l.startswith("[scripts.trigger_probe] RESULT "))
    output, rc = command_outputs(result.stdout)[1]
    assert rc == 0 and output[-1] == "done"
    return json.loads(line.split("RESULT ", 1)[1]), result.stdout, work


def test_range_write_trigger_lets_exactly_the_programs_writes_through(run):
    r = run[0]
    expected = [[i, 1, (i * 7 + 3) & 0xFF] for i in range(STEPS1)]
    expected += [[i, 1, (i * 7 + 3) & 0xFF] for i in range(STEPS2)]
    assert r["writes"] == expected
    assert r["outside_range"] == 0


def test_range_write_trigger_moved_from_python_sees_exactly_its_new_range(run):
    # Empty until pyrebox_wide_writes starts, then over wide_buffer: exactly the probe's 64
    # wide stores (sizes 1, 2, 4, 8 in turn), none of the step writes.
    sizes = [1, 2, 4, 8]
    assert run[0]["late_writes"] == [
        [8 * k, sizes[k % 4], wide_value(k) & ((1 << (8 * sizes[k % 4])) - 1)]
        for k in range(64)]


def test_user_only_trigger_yields_no_kernel_block(run):
    r = run[0]
    assert r["kernel_blocks"] == 0
    assert r["user_blocks"] > STEPS1  # the step loop alone runs STEPS1 blocks of the probe


def test_trigger_variable_set_from_python_changes_the_decision(run):
    # [step, step+1) until checkpoint 1, then an empty range.
    assert run[0]["bp_hits"] == STEPS1


def test_counter_kept_by_the_trigger_and_its_declared_function(run):
    r = run[0]
    assert r["counter"] == STEPS1 + STEPS2
    assert r["counter_after_reset"] == 0
    assert "never_called" not in r["errors"]  # the counter never calls Python


def test_trigger_that_does_not_compile_is_refused_with_the_compiler_message(run):
    r, stdout, work = run
    assert r["errors"]["broken"].startswith(
        f"TriggerError: trigger {work / 'broken_trigger.cpp'} does not compile")
    assert "error: expected ';' before '}' token" in r["errors"]["broken"].replace("‘", "'") \
        .replace("’", "'")
    assert f"[pyrebox] error: trigger {work / 'broken_trigger.cpp'} does not compile" in stdout
    assert r["unchanged_after_errors"] is True


def test_trigger_of_another_callback_type_is_refused(run):
    r, _, work = run
    assert r["errors"]["wrong_type"] == (
        f"ValueError: trigger {work / 'mistyped_trigger-x86_64-softmmu.so'} is for "
        f"MEM_WRITE_CB (its get_type()), not BLOCK_BEGIN_CB")
    assert r["errors"]["missing"].startswith("TriggerError: trigger ")
    assert f"no_such_trigger: no source {work / 'no_such_trigger.cpp'} or " in \
        r["errors"]["missing"]


def test_a_pyrebox_style_physical_write_trigger_sees_haddr_data_and_cpu(run):
    # Set over step_buffer's frame at checkpoint 1, removed at checkpoint 2:
    # the second loop's writes of an odd value, nothing else, at the same
    # offsets in the frame and in the page, all from pyrebox_step's store.
    r = run[0]
    assert r["phys_writes"] == [[i, i, 1, (i * 7 + 3) & 0xFF] for i in range(STEPS2)
                                if (i * 7 + 3) & 1]
    step_begin, step_end = function_range("pyrebox_step")
    assert len(r["phys_store_pcs"]) == 1
    assert step_begin <= r["phys_store_pcs"][0] < step_end


def test_an_op_insn_begin_template_trigger_fires_at_its_address(run):
    r, _, work = run
    assert r["op_insn_hits"] == STEPS1 + STEPS2
    assert r["errors"]["op_without_addr"] == (
        f"ValueError: trigger {work / 'op_insn_trigger-x86_64-softmmu.so'} is for "
        f"OP_INSN_BEGIN_CB (its get_type()), not BLOCK_BEGIN_CB; it attaches to "
        f"INSN_BEGIN_CB callbacks added at an address (add_callback(..., addr=ADDR))")


def test_tlb_exec_arrives_for_every_process_with_none_monitored(run):
    r = run[0]
    tlb = r["tlb_exec"]
    # The probe's pyrebox_step page: once when it first runs in its new
    # address space, again at most after each later switch into it (as the
    # engine test bounds it); no other address space runs code there.
    assert 1 <= tlb["probe_step_page"] <= 1 + r["probe_switched_in"], tlb
    assert tlb["other_step_page"] == 0
    # init, sh, probe, ... and no event for the monitored-only callback.
    assert tlb["address_spaces"] >= 3
    assert tlb["total"] > tlb["address_spaces"]
    assert r["tlb_exec_monitored_only"] == 0


@pytest.fixture(scope="module")
def write_execute(tmp_path_factory):
    work = tmp_path_factory.mktemp("write_execute")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(os.path.join(HERE, "scripts", "write_execute.py"), work / "scripts")
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.write_execute: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--cmd", "wx",
                         "--cmd", "probe 10 10 1 1", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    line = next(l for l in result.stdout.splitlines()
                if l.startswith("[scripts.write_execute] RESULT "))
    outputs = command_outputs(result.stdout)
    return json.loads(line.split("RESULT ", 1)[1]), outputs


def test_write_then_execute_fires_once_for_the_written_page_only(write_execute):
    r, outputs = write_execute
    wx_lines, rc = outputs[1]
    assert outputs[2][1] == 0 and outputs[2][0][-1] == "done"
    assert rc == 0 and wx_lines[-1] == "result=42"
    page = int(wx_lines[0].split("=")[1], 16)
    assert r["wx_pgd"] is not None
    # One block runs from the written page (the 6-byte function), in wx only:
    # nothing from probe or any other normal program.
    assert r["events"] == [[page, r["wx_pgd"]]]


CRASHER = """
    extern "C" {
    #include "qemu_glue.h"
    }
    #include "callbacks.h"

    static int calls = 0;

    extern "C" {
    // Exported, so the compiler cannot assume it stays NULL: the store
    // below is a real one (a store through a known NULL would be dropped).
    int* crash_target = nullptr;

    callback_type_t get_type() { return BLOCK_BEGIN_CB; }

    int trigger(callback_handle_t, callback_params_t) {
        if (++calls == 5) {
            *crash_target = 1;
        }
        return 0;
    }

    void clean(callback_handle_t handle) { erase_trigger_vars(handle); }
    }
    """

CRASH_SCRIPT = """
    from api import CallbackManager

    cm = None


    def initialize_callbacks(module_hdl, printer):
        global cm
        cm = CallbackManager(module_hdl)
        name = cm.add_callback(CallbackManager.BLOCK_BEGIN_CB, lambda *args: None,
                               name="blocks")
        cm.add_trigger(name, "crasher")
        printer("crasher attached")


    def clean():
        cm.clean()
    """


def test_a_crashing_trigger_ends_qemu_with_a_message_naming_it(tmp_path):
    write(tmp_path / "crasher.cpp", CRASHER)
    write(tmp_path / "scripts" / "__init__.py", "")
    write(tmp_path / "scripts" / "crash.py", CRASH_SCRIPT)
    conf = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.crash: True\n")
    result = run_pyrebox("run", "--conf", conf, "--timeout", "120", "--cmd", "true",
                         cwd=str(tmp_path))
    lines = result.stdout.splitlines()
    assert "[scripts.crash] crasher attached" in lines, result.stdout[-3000:]
    so = tmp_path / "crasher-x86_64-softmmu.so"
    assert so.is_file()
    # The 5th call crashes: on vCPU 0, in a BLOCK_BEGIN event, SIGSEGV.
    assert [l for l in lines if "fatal" in l] == [
        f"[pyrebox] fatal: trigger 'crasher' ({so}) crashed with SIGSEGV while handling "
        f"BLOCK_BEGIN_CB (vCPU 0); QEMU stops"], result.stdout[-3000:]
    assert result.returncode == 1
    assert lines[-1] == "pyrebox: QEMU was killed by SIGSEGV", result.stdout[-3000:]
    assert "exit status" not in result.stdout
