"""Launcher argument errors: reported before QEMU starts (no boot)."""

import os

import pytest

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


def test_commands_in_a_vm_of_qemu_arguments_are_refused_with_the_way_that_works():
    result = run_pyrebox("run", "--cmd", "true", "--", "-kernel", "/boot/vmlinuz")
    assert result.returncode == 2
    assert ("--cmd and --file need the guest agent's channel, which --image adds: give "
            "your VM's disk as --image DISK") in result.stderr


def test_bad_smp_and_timeout():
    assert "needs at least 1 vCPU" in run_pyrebox("run", "--smp", "0", "--cmd", "x").stderr
    assert "positive number" in run_pyrebox("run", "--timeout", "0", "--cmd", "x").stderr


@pytest.fixture
def built(monkeypatch):
    """command_line() as on a set-up machine, whatever this one has: it is
    plain string building once QEMU and the build are found."""
    from pyrebox import paths, qemu
    monkeypatch.setattr(qemu, "find", lambda arch="x86_64": f"qemu-system-{arch}")
    monkeypatch.setattr(paths, "require", lambda path, what: path)


def test_memory_size_and_symbols_reach_the_plugin(built):
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
    cmd = runner.command_line("/nonexistent", plugin_fd=None)
    plugin = cmd[cmd.index("-plugin") + 1]
    assert f",ram={1 << 30}" in plugin
    # The default guest's symbols go with it once it is built.
    assert (f",isf={paths.GUEST_ISF}" in plugin) == os.path.isfile(paths.GUEST_ISF)


def test_memory_after_the_separator_is_what_qemu_and_the_plugin_use(built):
    from pyrebox import run

    def sizes(**options):
        cmd = run.Runner(run.RunOptions(**options)).command_line("/nonexistent", plugin_fd=None)
        plugin = cmd[cmd.index("-plugin") + 1]
        ram = int(plugin.split(",ram=")[1].split(",")[0])
        # QEMU takes the last -m: that is the size the plugin is told.
        given = [cmd[i + 1] for i, a in enumerate(cmd) if a in ("-m", "--m")]
        given += [a.split("=", 1)[1] for a in cmd if a.startswith(("-m=", "--m="))]
        return ram, run.memory_bytes(given[-1])

    assert sizes(extra=["-m", "3G"]) == (3 << 30, 3 << 30)
    assert sizes(memory="1G", extra=["-m", "2G"]) == (2 << 30, 2 << 30)
    assert sizes(extra=["--m", "size=1536M,slots=2,maxmem=4G"]) == (1536 << 20, 1536 << 20)
    assert sizes(extra=["-m=768"]) == (768 << 20, 768 << 20)
    assert sizes(memory="1G") == (1 << 30, 1 << 30)
    assert run.qemu_memory(run.RunOptions(extra=["-m", "2G", "-m", "4G"])) == "4G"
    try:
        run.validate(run.RunOptions(extra=["-m", "lots"]))
    except run.RunError as e:
        assert str(e) == "-m (after --) lots: not a size (e.g. 512M or 2G)"
    else:
        raise AssertionError("-m lots accepted")


def test_bad_memory_size():
    result = run_pyrebox("run", "--memory", "lots", "--cmd", "true")
    assert result.returncode == 2
    assert "--memory lots: not a size" in result.stderr


def test_nic_options_are_checked():
    assert "unknown NIC model" in run_pyrebox("run", "--nic", "rtl9999", "--cmd", "x").stderr
    result = run_pyrebox("run", "--hostfwd", "udp::5555-:7777", "--cmd", "x")
    assert result.returncode == 2 and "--hostfwd needs --nic MODEL" in result.stderr
    result = run_pyrebox("run", "--nic", "e1000", "--hostfwd", "5555:7777", "--cmd", "x")
    assert result.returncode == 2 and "expected QEMU's hostfwd form" in result.stderr


def test_nic_is_isolated_and_mirrored_to_the_plugin(built):
    from pyrebox import run
    opts = run.RunOptions(nic="ne2k-pci", hostfwd=["udp:127.0.0.1:5555-:7777"])
    run.validate(opts)
    cmd = run.Runner(opts).command_line("/r", plugin_fd=None)
    netdev = cmd[cmd.index("-netdev") + 1]
    assert netdev == ("user,id=pyrebox-net,restrict=on,ipv6=off,"
                      "hostfwd=udp:127.0.0.1:5555-:7777")
    assert "ne2k_pci,netdev=pyrebox-net,mac=52:54:00:12:34:56" in cmd
    assert ("filter-mirror,id=pyrebox-mirror-send,netdev=pyrebox-net,queue=rx,"
            "outdev=pyrebox-nic-send") in cmd
    plugin = cmd[cmd.index("-plugin") + 1]
    assert "nic_send=/r/nic-send.sock,nic_recv=/r/nic-recv.sock" in plugin
    assert "qmp=/r/pyrebox-qmp.sock" in plugin
    # Without --nic: no network device at all.
    plain = run.Runner(run.RunOptions()).command_line("/r", plugin_fd=None)
    assert "-netdev" not in plain and "nic_send" not in " ".join(plain)


def test_isf_option_picks_the_table(built, tmp_path):
    from pyrebox import paths, run
    table = write(tmp_path / "k.isf.json", "{}")

    def plugin_of(**options):
        cmd = run.Runner(run.RunOptions(**options)).command_line("/nonexistent", plugin_fd=None)
        return cmd[cmd.index("-plugin") + 1]

    assert f",isf={table}" in plugin_of(isf=table)
    # From memory: no table goes to the plugin, for the default guest too.
    assert ",isf=" not in plugin_of(isf=run.ISF_FROM_MEMORY)
    assert ",isf=" not in plugin_of(extra=["-kernel", "/boot/vmlinuz"])
    assert f",isf={table}" in plugin_of(isf=table, extra=["-kernel", "/boot/vmlinuz"])
    assert (f",isf={paths.GUEST_ISF}" in plugin_of()) == os.path.isfile(paths.GUEST_ISF)


def test_missing_isf_file_is_named(tmp_path):
    result = run_pyrebox("run", "--isf", str(tmp_path / "none.json"), "--cmd", "true")
    assert result.returncode == 2
    assert f"--isf {tmp_path / 'none.json'}: no such file" in result.stderr
    assert "--isf memory" in result.stderr
