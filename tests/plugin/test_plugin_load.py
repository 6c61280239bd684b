"""The plugin in both QEMU binaries, without booting a guest (-M none)."""

import pytest

from conftest import run_plugin_only, write


@pytest.mark.parametrize("arch", ["x86_64", "i386"])
def test_plugin_loads_and_runs_a_script(arch, tmp_cwd):
    write(tmp_cwd / "scripts" / "__init__.py", "")
    write(tmp_cwd / "scripts" / "hello.py", """
        import struct, ctypes, json  # C extension modules load inside QEMU
        def initialize_callbacks(module_hdl, printer):
            printer(f"hello handle={module_hdl} word={struct.calcsize('P')}")
        def clean():
            print("clean ran")
        """)
    conf = write(tmp_cwd / "pyrebox.conf", "[MODULES]\nscripts.hello: True\n")
    result = run_plugin_only(arch, f"conf={conf}")
    assert result.returncode == 0, result.stderr
    assert f"[pyrebox] ready (QEMU target {arch}, plugin API 4, Python 3.11" in result.stderr
    assert "[scripts.hello] hello handle=1 word=8" in result.stderr
    assert "[pyrebox] loaded script scripts.hello (handle 1)" in result.stderr
    assert "[python] clean ran" in result.stderr


def test_default_conf_is_the_current_folders(tmp_cwd):
    write(tmp_cwd / "local_script.py", """
        def initialize_callbacks(module_hdl, printer):
            printer("picked up")
        """)
    write(tmp_cwd / "pyrebox.conf", "[MODULES]\nlocal_script: True\n")
    result = run_plugin_only("x86_64")
    assert "[local_script] picked up" in result.stderr


def test_missing_symbol_is_reported_by_name():
    result = run_plugin_only("x86_64",
                             env={"PYREBOX_PRETEND_MISSING_SYMBOLS": "tb_flush,vm_stop"})
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert "[pyrebox] error:   missing symbol: tb_flush" in lines
    assert "[pyrebox] error:   missing symbol: vm_stop" in lines
    assert sum("missing symbol" in line for line in lines) == 2
    assert "qemu-system-x86" in result.stderr


def test_unknown_plugin_argument_is_named():
    result = run_plugin_only("x86_64", "colour=blue")
    assert result.returncode != 0
    assert ("unknown plugin argument 'colour' (valid keys: conf, venv, pythonpath, out, isf, "
            "ram, console, console_qmp, qmp, nic_send, nic_recv)") in result.stderr


def test_missing_venv_is_explained(tmp_path):
    result = run_plugin_only("x86_64", f"venv={tmp_path}")
    assert result.returncode != 0
    assert f"no Python virtual environment at {tmp_path}" in result.stderr


def test_bad_conf_key_refuses_to_start(tmp_cwd):
    conf = write(tmp_cwd / "pyrebox.conf", "[SYMBOL_CACHE]\npaht: x\n")
    result = run_plugin_only("x86_64", f"conf={conf}")
    assert result.returncode != 0
    assert "unknown key 'paht' in section [SYMBOL_CACHE]" in result.stderr


def test_missing_and_broken_scripts_are_reported_and_others_load(tmp_cwd):
    write(tmp_cwd / "broken_import.py", "import no_such_dependency_xyz\n")
    write(tmp_cwd / "raises.py", """
        def initialize_callbacks(module_hdl, printer):
            raise RuntimeError("init failed on purpose")
        """)
    write(tmp_cwd / "no_init.py", "x = 1\n")
    write(tmp_cwd / "good.py", """
        def initialize_callbacks(module_hdl, printer):
            printer("good loaded")
        """)
    conf = write(tmp_cwd / "pyrebox.conf", """
        [MODULES]
        missing_module: True
        broken_import: True
        raises: True
        no_init: True
        good: True
        """)
    result = run_plugin_only("x86_64", f"conf={conf}")
    err = result.stderr
    assert result.returncode == 0, err
    assert "script module missing_module not found" in err
    assert "script broken_import failed to import" in err
    assert "ModuleNotFoundError: No module named 'no_such_dependency_xyz'" in err
    assert "script raises raised in initialize_callbacks; it is not loaded" in err
    assert "RuntimeError: init failed on purpose" in err
    assert "script no_init" in err and "defines no initialize_callbacks" in err
    assert "[good] good loaded" in err
    assert "loaded script good (handle 1)" in err


def test_requirements_load_first_once_and_cycles_are_refused(tmp_cwd):
    write(tmp_cwd / "base.py", """
        def initialize_callbacks(module_hdl, printer):
            printer(f"base init {module_hdl}")
        """)
    write(tmp_cwd / "top.py", """
        requirements = ["base"]
        def initialize_callbacks(module_hdl, printer):
            printer(f"top init {module_hdl}")
        """)
    write(tmp_cwd / "cyc_a.py", "requirements = ['cyc_b']\ndef initialize_callbacks(h, p): pass\n")
    write(tmp_cwd / "cyc_b.py", "requirements = ['cyc_a']\ndef initialize_callbacks(h, p): pass\n")
    conf = write(tmp_cwd / "pyrebox.conf",
                 "[MODULES]\ntop: True\nbase: True\ncyc_a: True\n")
    err = run_plugin_only("x86_64", f"conf={conf}").stderr
    assert err.index("[base] base init 1") < err.index("[top] top init 2")
    assert err.count("base init") == 1
    assert "cycle: cyc_a -> cyc_b -> cyc_a" in err
