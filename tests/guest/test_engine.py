"""The execution engine end to end: the probe program (guest/programs/probe.c)
under scripts/engine_probe.py, with exact counts, addresses, sizes and values.
One boot with one vCPU and one with two share all assertions of a class."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import key_values, command_outputs, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

PROBE = os.path.join(paths.GUEST, "programs", "probe")
SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "engine_probe.py")
STEPS1, STEPS2, CPUIDS, SLEEPS = 1000, 500, 100, 3
SYMBOLS = ["main", "pyrebox_step", "pyrebox_checkpoint", "pyrebox_cpuid_site",
           "pyrebox_cpuid_next", "pyrebox_wide_writes", "pyrebox_reads", "pyrebox_identity",
           "pyrebox_skipped", "pyrebox_flags_site", "step_buffer", "wide_buffer",
           "read_buffer"]


def probe_symbols() -> dict[str, int]:
    out = subprocess.run(["nm", PROBE], capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            table[parts[2]] = int(parts[0], 16)
    return {name: table[name] for name in SYMBOLS}


def wide_value(k: int) -> int:
    return 0x1122334455667788 ^ (k * 0x0101010101010101)


def boot_probe(work, smp: int, qemu_args: tuple[str, ...] = ()):
    """Returns (report, key=value lines of the probe, its output lines, its
    exit status, the whole run's stdout)."""
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "engine_probe.py")
    with open(work / "probe_symbols.json", "w") as f:
        json.dump(probe_symbols(), f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.engine_probe: True\n")
    result = run_pyrebox("run", "--conf", conf, "--smp", str(smp), "--timeout", "300",
                         "--cmd", f"probe {STEPS1} {STEPS2} {CPUIDS} {SLEEPS}",
                         *(("--", *qemu_args) if qemu_args else ()), cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("[scripts.engine_probe] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    output, rc = command_outputs(result.stdout)[1]
    return report, key_values(output), output, rc, result.stdout


class EngineChecks:
    """Assertions shared by the one- and two-vCPU boots (fixture `probe_run`)."""

    def test_probe_ran_to_the_end(self, probe_run):
        _, values, output, rc = probe_run[:4]
        assert rc == 0 and output[-1] == "done"
        assert int(values["step"], 16) == probe_symbols()["pyrebox_step"]

    def test_address_specific_callbacks_fire_once_per_execution(self, probe_run):
        r = probe_run[0]
        assert r["main_hits"] == 1
        assert r["step_block_addr"] == STEPS1 + STEPS2
        assert r["step_insn_addr"] == STEPS1 + STEPS2
        assert r["errors"] == []

    def test_generic_block_callbacks_see_every_block(self, probe_run):
        r = probe_run[0]
        assert r["step_block_generic"] == STEPS1 + STEPS2
        assert r["step_block_end_next"] == STEPS1 + STEPS2
        assert r["block_end_checked"] > STEPS1 + STEPS2
        assert r["block_end_mismatch"] == 0  # next_pc is the block that really ran next

    def test_callback_removing_itself_fires_once(self, probe_run):
        assert probe_run[0]["once"] == 1

    def test_callback_added_during_the_run_applies_to_translated_code(self, probe_run):
        assert probe_run[0]["late_step"] == STEPS2

    def test_opcode_range_fires_after_each_cpuid(self, probe_run):
        r = probe_run[0]
        assert r["cpuid_opcode"] == CPUIDS
        assert r["cpuid_opcode_next_ok"] == CPUIDS  # next_pc and cpu.RIP = following insn
        assert r["opcode_other"] == 0  # no other user-space cpuid

    def test_insn_end_sees_the_state_after_the_instruction(self, probe_run):
        assert probe_run[0]["insn_end_cpuid"] == CPUIDS

    def test_memory_writes_are_exact(self, probe_run):
        r = probe_run[0]
        assert r["step_writes"] == [[i, 1, (i * 7 + 3) & 0xFF] for i in range(STEPS2)]
        sizes = [1, 2, 4, 8]
        assert r["wide_writes"] == [
            [8 * k, sizes[k % 4], wide_value(k) & ((1 << (8 * sizes[k % 4])) - 1)]
            for k in range(64)]
        assert r["haddr_ok"] is True

    def test_memory_reads_are_exact(self, probe_run):
        r, values = probe_run[0], probe_run[1]
        assert r["reads"] == [[4 * k, 4] for k in range(256)]
        assert int(values["reads_sum"]) == sum(0x01000000 + k for k in range(256))

    def test_guest_memory_and_register_writes_change_the_program(self, probe_run):
        r, values, output = probe_run[:3]
        assert values["value"] == "1234" and r["identity"] == 1  # w_r RDI at entry
        assert values["buffer_head"] == "PYREBOX!"  # w_va at checkpoint 2
        buffer = [0] * 4096
        for i in range(STEPS2):
            buffer[i] = (i * 7 + 3) & 0xFF
        for i in range(STEPS2, STEPS1):
            buffer[i] = (i * 7 + 3) & 0xFF
        buffer[:8] = list(b"PYREBOX!")
        assert int(values["checksum"]) == sum(buffer)

    def test_writing_the_pc_skips_a_function(self, probe_run):
        r, output = probe_run[0], probe_run[2]
        assert r["skipped"] == 1
        assert "skipped-function-ran" not in output

    def test_context_changes_into_and_out_of_the_program(self, probe_run):
        r = probe_run[0]
        # Entering at exec, leaving at sleeps and exit (idle borrows the address
        # space, so not every sleep switches).
        assert r["ctx_in"] >= 1 and r["ctx_out"] >= 1

    def test_tlb_exec_fires_for_the_code_page(self, probe_run):
        r = probe_run[0]
        assert r["tlb_exec_step_page"] >= 1
        assert r["tlb_exec"] >= r["tlb_exec_step_page"]

    def test_eflags_and_pc_are_exact_in_the_middle_of_a_block(self, probe_run):
        r, values = probe_run[0], probe_run[1]
        assert values["flags"] == "100"
        # cmp 1,2: CF SF AF PF; cmp 5,5: ZF PF; cmp -1,3: SF PF; IF and bit 1 always.
        # RF (bit 16) is also set when the site's block is the one a return
        # from a page fault resumes (the fault frame has RF=1; QEMU clears it
        # at the end of that block): whether it is depends on which pages
        # are present, not on PyREBox.
        rf = 1 << 16
        assert [v & ~rf for v in r["eflags_at_site"]] == [0x297, 0x246, 0x286]
        assert r["rip_at_site"] == [probe_symbols()["pyrebox_flags_site"]] * 3

    def test_privilege_level_cpu_count_and_io_ports(self, probe_run):
        r = probe_run[0]
        assert r["kernel_at_main"] is False  # user mode at main
        assert r["kernel_at_switch"] is True  # CR3 is loaded by the kernel
        assert r["cmos_base_memory_kib"] == 640

    def test_callback_errors_are_reported_once_per_distinct_error(self, probe_run):
        r, stdout = probe_run[0], probe_run[4]
        assert r["raised"] == STEPS1 + STEPS2  # the callback stayed registered
        head = ("[pyrebox] error: callback 'raiser' (INSN_BEGIN_CB) of script "
                "scripts.engine_probe raised")
        assert stdout.count(head) == 1
        assert "ValueError: raised on purpose at every step" in stdout
        head2 = ("[pyrebox] error: callback 'raiser2' (INSN_BEGIN_CB) of script "
                 "scripts.engine_probe raised")
        assert stdout.count(head2) == 2  # two distinct messages
        assert "KeyError: 'checkpoint 1'" in stdout and "KeyError: 'checkpoint 2'" in stdout

    def test_events_carry_the_vcpu_running_the_program(self, probe_run):
        assert probe_run[0]["cpu_mismatch"] == 0


class TestOneVcpu(EngineChecks):
    @pytest.fixture(scope="class")
    @classmethod
    def probe_run(cls, tmp_path_factory):
        return boot_probe(tmp_path_factory.mktemp("probe1"), smp=1)

    def test_bad_input_raises_clear_errors_and_registers_nothing(self, probe_run):
        r = probe_run[0]
        bad = r["bad"]
        assert bad["unknown_type"].startswith("ValueError: unknown callback type 99")
        assert bad["not_callable"] == "TypeError: callback function must be callable, got int"
        assert "unexpected keyword argument 'adress'" in bad["wrong_keyword"]
        assert bad["opcode_order"] == \
            "ValueError: opcode range start 0x1a2 is greater than end 0x1a0"
        assert bad["addr_on_mem"] == \
            "ValueError: addr applies to BLOCK_BEGIN_CB and INSN_BEGIN_CB only, not MEM_READ_CB"
        assert bad["remove_unknown"].startswith(
            "ValueError: CallbackManager: no callback named 'no_such_callback' to remove")
        assert bad["bad_register_write"].startswith("ValueError: unknown register 'XYZ'")
        assert bad["bad_register_read"].startswith("AttributeError: cpu has no register 'XYZ'")
        assert bad["unmapped_read"].startswith("InvalidAddress: 0x1000 is not mapped in address")
        assert bad["unbacked_physical"] == \
            "InvalidAddress: physical range 0xffff000000..0xffff000010 is not readable memory"
        assert bad["no_such_cpu"] == "ValueError: no vCPU 7 (this VM has 1)"
        assert r["bad_registered_nothing"] is True

    def test_single_vcpu_index(self, probe_run):
        assert probe_run[0]["cpus"] == [0]
        assert probe_run[0]["num_cpus"] == 1

    def test_tlb_exec_again_only_after_the_program_is_switched_in(self, probe_run):
        # Without KPTI, only a switch into the program flushes its TLB
        # (with KPTI every return to user mode does).
        r = probe_run[0]
        assert 1 <= r["tlb_exec_step_page"] <= 1 + r["ctx_in"]

    def test_no_kpti_on_the_default_cpu(self, probe_run):
        assert probe_run[0]["kpti"] is False


class TestTwoVcpus(EngineChecks):
    @pytest.fixture(scope="class")
    @classmethod
    def probe_run(cls, tmp_path_factory):
        return boot_probe(tmp_path_factory.mktemp("probe2"), smp=2)

    def test_vcpu_indexes_are_valid(self, probe_run):
        assert set(probe_run[0]["cpus"]) <= {0, 1} and probe_run[0]["cpus"]
        assert probe_run[0]["num_cpus"] == 2


class TestKpti(EngineChecks):
    """An Intel CPU model makes the guest kernel use page-table isolation:
    each process has a kernel/user pgd pair, which must be one process."""

    @pytest.fixture(scope="class")
    @classmethod
    def probe_run(cls, tmp_path_factory):
        return boot_probe(tmp_path_factory.mktemp("probe_kpti"), smp=1,
                          qemu_args=("-cpu", "Haswell-noTSX"))

    def test_kpti_detected_and_the_pair_is_one_process(self, probe_run):
        r = probe_run[0]
        assert r["kpti"] is True
        assert r["pgd_bit12"] is False  # the identity is the kernel half
