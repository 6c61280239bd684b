"""The user's own VM (`pyrebox run --image DISK`): its disk, never written
unless asked, and the QEMU arguments that boot it.

The image is opened read-only under a qcow2 overlay in the run directory:
everything the guest writes, and the snapshots, go to the overlay.
`--keep-overlay FILE` puts the overlay at FILE and keeps it (a later run
with the same FILE continues from it, snapshots included); `--write` boots
the image itself, read-write.

The guest agent's channel (a virtio-serial port named
org.qemu.guest_agent.0, QEMU's convention that qemu-guest-agent looks for)
is always added, so files and commands can reach the guest without
networking.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

AGENT_PORT = "org.qemu.guest_agent.0"
FORMATS = ("qcow2", "raw")


class ImageError(Exception):
    """An image, overlay or kernel that cannot be used; the message says why
    and what to do."""


@dataclasses.dataclass
class Image:
    path: str      # absolute
    format: str    # qcow2 or raw
    virtual_size: int


def inspect(path: str) -> Image:
    """The image's format and size, from qemu-img (which reads only its
    header)."""
    if not os.path.exists(path):
        raise ImageError(f"--image {path}: no such file")
    if not os.path.isfile(path):
        raise ImageError(f"--image {path}: not a file")
    if not os.access(path, os.R_OK):
        raise ImageError(f"--image {path}: not readable by this user")
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", path],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageError(f"--image {path}: qemu-img cannot read it: "
                         f"{(done.stderr or done.stdout).strip()}")
    try:
        info = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise ImageError(f"--image {path}: qemu-img info gave no JSON: {done.stdout[:200]!r}") \
            from None
    fmt = info.get("format")
    if fmt not in FORMATS:
        raise ImageError(f"--image {path}: format {fmt!r} is not one PyREBox boots "
                         f"({' or '.join(FORMATS)}); convert it with "
                         f"qemu-img convert -O qcow2 {path} NEW.qcow2")
    return Image(os.path.abspath(path), fmt, int(info.get("virtual-size", 0)))


def backing_of(overlay: str) -> str | None:
    """The backing file an existing qcow2 overlay names (absolute), or None."""
    done = subprocess.run(["qemu-img", "info", "--output=json", "-U", overlay],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageError(f"--keep-overlay {overlay}: qemu-img cannot read it: "
                         f"{(done.stderr or done.stdout).strip()}")
    info = json.loads(done.stdout)
    backing = info.get("full-backing-filename") or info.get("backing-filename")
    return os.path.abspath(backing) if backing else None


def make_overlay(image: Image, overlay: str) -> None:
    """Creates the qcow2 overlay `overlay` on `image`, or checks that an
    existing one is an overlay of it."""
    if os.path.exists(overlay):
        backing = backing_of(overlay)
        if backing != image.path:
            raise ImageError(f"--keep-overlay {overlay}: it is an overlay of "
                             f"{backing or 'nothing'}, not of {image.path}; give another file")
        return
    done = subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", image.format,
                           "-b", image.path, overlay], capture_output=True, text=True)
    if done.returncode != 0:
        raise ImageError(f"cannot create the overlay {overlay} on {image.path}: "
                         f"{(done.stderr or done.stdout).strip()}")
    os.chmod(overlay, 0o600)  # it will hold what the guest writes, and snapshots


def drive_args(disk: str, fmt: str) -> list[str]:
    """The VM's disk, on virtio (what Debian's and most distributions'
    kernels boot from without extra drivers)."""
    return ["-drive", f"if=virtio,id=pyrebox-image,format={fmt},file={disk}"]


def agent_args(socket_path: str) -> list[str]:
    """A virtio-serial port named as qemu-guest-agent expects, on a host
    socket."""
    return ["-chardev", f"socket,id=pyrebox-agent,path={socket_path},server=on,wait=off",
            "-device", "virtio-serial-pci,id=pyrebox-virtio-serial",
            "-device", f"virtserialport,chardev=pyrebox-agent,name={AGENT_PORT}"]


def kernel_args(kernel: str | None, initrd: str | None, append: str | None) -> list[str]:
    """Direct kernel boot, when a kernel is given (its initrd and command
    line with it); nothing otherwise (the image's own bootloader)."""
    if kernel is None:
        if initrd is not None or append is not None:
            raise ImageError("--initrd and --append need --kernel (without it the image boots "
                             "through its own bootloader, which has its own)")
        return []
    for flag, path in (("--kernel", kernel), ("--initrd", initrd)):
        if path is not None and not os.path.isfile(path):
            raise ImageError(f"{flag} {path}: no such file")
    args = ["-kernel", os.path.abspath(kernel)]
    if initrd is not None:
        args += ["-initrd", os.path.abspath(initrd)]
    if append is not None:
        args += ["-append", append]
    return args
