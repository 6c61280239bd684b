"""Volatility 3 on the running VM (python/pyrebox/volatility.py).

One boot serves the module: the guest insmods its on-demand kernel module
(crc7), runs `static_loop 100`
then `dyn_libc`; tests/guest/scripts/vol_live.py runs plugins with api.vol
from an INSN_BEGIN callback at the kernel's do_group_exit as each program
exits, takes PyREBox's own lists at the same moment, and writes a memory
image (api.save_memory) that volatility3's own `vol -f` then reads on the
host with the same ISF.
"""

from __future__ import annotations

import json
import lzma
import os
import shutil
import subprocess

import pytest

from conftest import (ROOT, command_outputs, insmod_command, key_values, on_demand_module,
                      run_plugin_only, run_pyrebox, write)
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "vol_live.py")
VOL = os.path.join(ROOT, ".venv", "bin", "vol")
LIBC_PATHS = ("/usr/lib/x86_64-linux-gnu/libc.so.6", "/lib/x86_64-linux-gnu/libc.so.6")


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    work = tmp_path_factory.mktemp("vol_live")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "vol_live.py")
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        symbols = json.load(f)["symbols"]
    with open(work / "kernel_offsets.json", "w") as f:
        json.dump({"do_group_exit": symbols["do_group_exit"]["address"]
                   - symbols["_text"]["address"]}, f)
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.vol_live: True\n")
    # api.save_memory replaces this file: the image gets mode 0600 all the same.
    write(work / "guest.mem", "an older file of mode 0644")
    os.chmod(work / "guest.mem", 0o644)
    result = run_pyrebox("run", "--conf", conf, "--timeout", "300", "--cmd", insmod_command(on_demand_module()),
                         "--cmd", "static_loop 100", "--cmd", "dyn_libc", cwd=str(work))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("[scripts.vol_live] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    outputs = command_outputs(result.stdout)
    assert outputs[1][1] == 0, outputs[1]  # insmod
    times = report["times"]
    print("\napi.vol timings (s): " + "; ".join(
        f"{name}: {', '.join(f'{t:.2f}' for t in values)}" for name, values in times.items()))
    return {"report": report, "static": key_values(outputs[2][0]),
            "dyn": key_values(outputs[3][0]), "work": work}


def test_no_errors_and_both_programs_seen(live):
    report = live["report"]
    assert report["errors"] == []
    assert report["static_loop"] is not None and report["dyn_libc"] is not None


def test_pslist_agrees_with_get_process_list(live):
    snap = live["report"]["static_loop"]
    assert snap["pid"] == int(live["static"]["pid"])
    vol_rows = sorted(tuple(row) for row in snap["pslist"])
    ours = sorted(tuple(p) for p in snap["processes"])
    assert vol_rows == ours  # (pid, name, ppid) of every process, kernel threads too
    me = [row for row in vol_rows if row[0] == snap["pid"]]
    assert me == [(snap["pid"], "static_loop", me[0][2])]
    assert (1, "init", 0) in vol_rows and (2, "kthreadd", 0) in vol_rows
    # A later call (cached kernel, fresh memory) gives the same rows.
    assert snap["pslist_again_same"] is True


def test_lsmod_agrees_with_get_module_list(live):
    snap = live["report"]["static_loop"]
    lsmod, modules = snap["lsmod"], snap["modules"]
    assert [row[0] for row in lsmod] == [m[0] for m in modules]
    assert on_demand_module()["name"] in [m[0] for m in modules]
    assert {"e1000", "ne2k_pci", "virtio_net"} <= {m[0] for m in modules}
    for (name, offset, code_size, taints), (_, base, size) in zip(lsmod, modules):
        # Volatility shows the struct module's address (48-bit, in the
        # module's memory) and the module's core size.
        assert code_size == size, name
        assert base <= offset | 0xffff000000000000 < base + size, name
        assert taints == "", name


def test_maps_shows_libc_at_the_base_dyn_libc_prints(live):
    snap = live["report"]["dyn_libc"]
    assert snap["pid"] == int(live["dyn"]["pid"])
    assert snap["maps_pids"] == [snap["pid"]]
    libc = [m for m in snap["maps"] if m[3] == live["dyn"]["libc_path"]]
    assert live["dyn"]["libc_path"] in LIBC_PATHS
    assert libc and min(m[0] for m in libc) == int(live["dyn"]["libc_base"], 16)
    assert any(m[2] == "r-x" for m in libc)
    own = [m for m in snap["maps"] if m[3] == "/usr/local/bin/dyn_libc"]
    assert own and any(m[3] == "[stack]" for m in snap["maps"])


def test_bad_input_gives_messages(live):
    bad = live["report"]["bad"]
    assert bad["unknown"].startswith("no Volatility plugin 'linux.no_such_plugin.Nothing'")
    assert "argument --pid" in bad["bad_args"] and "'zz'" in bad["bad_args"]
    assert bad["raises"] == ("scripts.vol_live.Broken failed: RuntimeError: "
                             "this plugin always fails")
    assert bad["not_str"] == "plugin must be a plugin name, got 42"
    # pslist after the errors still worked (image_pslist below).
    assert live["report"]["static_loop"]["image_pslist"]


def test_memory_image_gives_the_same_pslist_to_vol(live):
    snap = live["report"]["static_loop"]
    image = live["work"] / "guest.mem"
    ranges = snap["image"]["ranges"]
    assert ranges[0][0] == 0 and [0xC0000, 512 << 20] in ranges  # RAM around the VGA hole
    assert os.path.getsize(image) == snap["image"]["size"] == ranges[-1][1]
    result = subprocess.run([VOL, "-q", "-f", str(image), "-s", paths.GUEST, "-r", "json",
                             "linux.pslist.PsList"], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(result.stdout)
    from_image = sorted([r["PID"], r["PPID"], r["COMM"], r["OFFSET (V)"]] for r in rows)
    assert from_image == snap["image_pslist"]
    assert int(live["static"]["pid"]) in [r[0] for r in from_image]


def test_memory_image_is_readable_by_its_owner_only(live):
    assert os.stat(live["work"] / "guest.mem").st_mode & 0o777 == 0o600


def test_no_symbol_table_is_a_message(tmp_cwd):
    write(tmp_cwd / "scripts" / "__init__.py", "")
    write(tmp_cwd / "scripts" / "novol.py", """
        import api
        def initialize_callbacks(module_hdl, printer):
            try:
                api.vol("linux.pslist.PsList")
            except api.VolatilityError as e:
                print("VOL-ERROR", e)
        def clean():
            pass
        """)
    conf = write(tmp_cwd / "pyrebox.conf", "[MODULES]\nscripts.novol: True\n")
    result = run_plugin_only("x86_64", f"conf={conf}")
    assert result.returncode == 0, result.stderr
    assert ("VOL-ERROR no kernel symbol table (ISF) loaded: Linux introspection is off: no "
            "Linux symbol table given (plugin argument isf=FILE or [SYMBOLS] isf in "
            "pyrebox.conf)\n") in result.stderr + result.stdout
