"""Launcher argument errors: reported before QEMU starts (no boot)."""

from conftest import run_pyrebox, write


def test_bad_conf_key_message(tmp_path):
    conf = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.x: True\n[AGENT]\nnmae: x\n")
    result = run_pyrebox("run", "--conf", conf, "--cmd", "true")
    assert result.returncode == 2
    assert "unknown key 'nmae' in section [AGENT]" in result.stderr
    assert "valid keys: name, conf" in result.stderr


def test_missing_file_is_named(tmp_path):
    result = run_pyrebox("run", "--file", str(tmp_path / "absent.bin"), "--cmd", "true")
    assert result.returncode == 2
    assert f"host file '{tmp_path / 'absent.bin'}' not found" in result.stderr


def test_missing_conf_file(tmp_path):
    result = run_pyrebox("run", "--conf", str(tmp_path / "x.conf"), "--cmd", "true")
    assert result.returncode == 2
    assert "configuration file not found" in result.stderr


def test_commands_with_own_vm_are_refused():
    result = run_pyrebox("run", "--cmd", "true", "--", "-kernel", "/boot/vmlinuz")
    assert result.returncode == 2
    assert "--cmd and --file work with the default guest only" in result.stderr


def test_bad_smp_and_timeout():
    assert "needs at least 1 vCPU" in run_pyrebox("run", "--smp", "0", "--cmd", "x").stderr
    assert "positive number" in run_pyrebox("run", "--timeout", "0", "--cmd", "x").stderr


def test_memory_size_and_symbols_reach_the_plugin():
    from pyrebox import paths, run
    assert run.memory_bytes("512M") == 512 << 20
    assert run.memory_bytes("2G") == 2 << 30
    assert run.memory_bytes("256") == 256 << 20  # QEMU's unit: MiB
    assert run.memory_bytes("size=1G,slots=2,maxmem=4G") == 1 << 30
    for bad in ("lots", "0", "-1G"):
        try:
            run.memory_bytes(bad)
        except run.RunError as e:
            assert bad in str(e)
        else:
            raise AssertionError(bad)
    runner = run.Runner(run.RunOptions(memory="1G"))
    try:
        cmd = runner.command_line("/nonexistent", plugin_fd=None)
    except paths.SetupError:
        return  # no build: nothing more to check here
    plugin = cmd[cmd.index("-plugin") + 1]
    assert f",ram={1 << 30}" in plugin
    assert f",isf={paths.GUEST_ISF}" in plugin


def test_bad_memory_size():
    result = run_pyrebox("run", "--memory", "lots", "--cmd", "true")
    assert result.returncode == 2
    assert "--memory lots: not a size" in result.stderr
