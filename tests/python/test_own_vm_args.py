"""`pyrebox run --image`: the overlay, the disk and agent arguments, and the
refused combinations. qemu-img makes real images; no VM boots here."""

import os
import subprocess

import pytest

from pyrebox import own_vm, paths, qemu, run


@pytest.fixture
def built(monkeypatch):
    monkeypatch.setattr(qemu, "find", lambda arch="x86_64": f"qemu-system-{arch}")
    monkeypatch.setattr(paths, "require", lambda path, what: path)


def image(tmp_path, fmt="qcow2", name="vm"):
    path = str(tmp_path / f"{name}.{fmt}")
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, path, "64M"], check=True)
    return path


def args_after(cmd, flag):
    return [cmd[i + 1] for i, a in enumerate(cmd) if a == flag]


def test_inspect_reads_format_and_size(tmp_path):
    assert own_vm.inspect(image(tmp_path)).format == "qcow2"
    raw = own_vm.inspect(image(tmp_path, "raw"))
    assert (raw.format, raw.virtual_size) == ("raw", 64 << 20)
    with pytest.raises(own_vm.ImageError, match="no such file"):
        own_vm.inspect(str(tmp_path / "missing.qcow2"))
    vdi = str(tmp_path / "vm.vdi")
    subprocess.run(["qemu-img", "create", "-q", "-f", "vdi", vdi, "64M"], check=True)
    with pytest.raises(own_vm.ImageError, match="format 'vdi' is not one PyREBox boots"):
        own_vm.inspect(vdi)


def test_overlay_is_made_on_the_image_and_checked_when_kept(tmp_path):
    base = own_vm.inspect(image(tmp_path))
    overlay = str(tmp_path / "keep.qcow2")
    own_vm.make_overlay(base, overlay)
    assert own_vm.backing_of(overlay) == base.path
    assert os.stat(overlay).st_mode & 0o777 == 0o600
    own_vm.make_overlay(base, overlay)  # kept: accepted again as it is
    other = own_vm.inspect(image(tmp_path, name="other"))
    with pytest.raises(own_vm.ImageError, match=f"it is an overlay of {base.path}, not of "
                                                f"{other.path}"):
        own_vm.make_overlay(other, overlay)


def test_image_run_boots_the_overlay_with_the_agent_channel(built, tmp_path):
    disk = image(tmp_path, "raw")
    opts = run.RunOptions(image=disk)
    run.validate(opts)
    cmd = run.Runner(opts).command_line("/r", plugin_fd=None)
    drives = args_after(cmd, "-drive")
    assert "if=virtio,id=pyrebox-image,format=qcow2,file=/r/overlay.qcow2" in drives
    # The overlay holds the snapshots: no separate snapshot disk.
    assert not any("pyrebox-disk" in d for d in drives)
    assert "virtserialport,chardev=pyrebox-agent,name=org.qemu.guest_agent.0" in cmd
    assert "socket,id=pyrebox-agent,path=/r/agent.sock,server=on,wait=off" in cmd
    # Its own bootloader: none of the default guest's kernel, initrd or table.
    assert "-kernel" not in cmd and "-initrd" not in cmd
    assert ",isf=" not in cmd[cmd.index("-plugin") + 1]


def test_image_with_a_kernel_and_kept_overlay_or_written_in_place(built, tmp_path):
    disk = image(tmp_path)
    kernel = str(tmp_path / "vmlinuz")
    open(kernel, "wb").close()
    keep = str(tmp_path / "keep.qcow2")
    opts = run.RunOptions(image=disk, kernel=kernel, append="console=ttyS0 root=/dev/vda1",
                          keep_overlay=keep)
    run.validate(opts)
    cmd = run.Runner(opts).command_line("/r", plugin_fd=None)
    assert args_after(cmd, "-kernel") == [kernel]
    assert args_after(cmd, "-append") == ["console=ttyS0 root=/dev/vda1"]
    assert f"if=virtio,id=pyrebox-image,format=qcow2,file={keep}" in args_after(cmd, "-drive")
    opts = run.RunOptions(image=disk, write=True)
    cmd = run.Runner(opts).command_line("/r", plugin_fd=None)
    assert (f"if=virtio,id=pyrebox-image,format=qcow2,file={os.path.abspath(disk)}"
            in args_after(cmd, "-drive"))
    # A raw image written in place cannot hold snapshots: the snapshot disk stays.
    raw = image(tmp_path, "raw", name="raw")
    cmd = run.Runner(run.RunOptions(image=raw, write=True)).command_line("/r", plugin_fd=None)
    drives = args_after(cmd, "-drive")
    assert f"if=virtio,id=pyrebox-image,format=raw,file={os.path.abspath(raw)}" in drives
    assert any("id=pyrebox-disk" in d for d in drives)


@pytest.mark.parametrize("options, message", [
    (dict(kernel="/boot/vmlinuz"), "--kernel goes with --image DISK"),
    (dict(write=True), "--write goes with --image DISK"),
    (dict(image="IMG", extra=["-drive", "file=x"]), "both describe the machine"),
    (dict(image="IMG", guest_kernel="sid"), "with --image give --kernel VMLINUZ"),
    (dict(image="IMG", write=True, keep_overlay="o.qcow2"), "give one of them"),
    (dict(image="IMG", append="quiet"), "--initrd and --append need --kernel"),
    (dict(image="IMG", kernel="/nonexistent/vmlinuz"), "--kernel /nonexistent/vmlinuz: no such"),
])
def test_refused_combinations(tmp_path, options, message):
    if options.get("image") == "IMG":
        options["image"] = image(tmp_path)
    with pytest.raises(run.RunError, match=message):
        run.validate(run.RunOptions(**options))


@pytest.mark.parametrize("options, message", [
    (dict(savevm="s"), "--savevm with --image needs --keep-overlay FILE"),
    (dict(savevm="s", disk="d.qcow2"), "give --keep-overlay FILE instead of --disk"),
    (dict(loadvm="s", keep_overlay="KEEP"), "--loadvm s: .*keep.qcow2 does not exist"),
    (dict(savevm="s", write=True, fmt="raw"), "is raw and cannot hold snapshots"),
])
def test_snapshots_of_an_image_need_a_disk_that_outlives_the_run(tmp_path, options, message):
    image_path = image(tmp_path, options.pop("fmt", "qcow2"))
    if options.get("keep_overlay") == "KEEP":
        options["keep_overlay"] = str(tmp_path / "keep.qcow2")
    with pytest.raises(run.RunError, match=message):
        run.validate(run.RunOptions(image=image_path, **options))


def test_image_runs_take_files_and_commands_and_snapshots_in_the_overlay(built, tmp_path):
    disk = image(tmp_path)
    host = str(tmp_path / "sample")
    open(host, "wb").close()
    keep = str(tmp_path / "keep.qcow2")
    files = [run.parse_file_spec(host)]
    run.validate(run.RunOptions(image=disk, files=files, commands=["./sample"]))
    run.validate(run.RunOptions(image=disk, keep_overlay=keep, savevm="booted", files=files))
    open(keep, "wb").close()
    # After a loadvm the agent copies files in as well.
    opts = run.RunOptions(image=disk, keep_overlay=keep, loadvm="booted", files=files,
                          commands=["./sample"])
    run.validate(opts)
    cmd = run.Runner(opts).command_line("/r", plugin_fd=None)
    assert args_after(cmd, "-loadvm") == ["booted"]
    assert not any("pyrebox-disk" in d for d in args_after(cmd, "-drive"))
    # With --write a qcow2 image holds the snapshots itself.
    run.validate(run.RunOptions(image=disk, write=True, savevm="booted"))
