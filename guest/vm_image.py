#!/usr/bin/env python3
"""Build a small real Debian 12 (bookworm) VM disk image for the tests of
`pyrebox run --image`.

    python3 guest/vm_image.py [--out DIR] [--refresh]

Outputs, in DIR (default <repo>/build/vm):
    debian12.qcow2   the disk: an MBR partition table, one ext4 partition (the
                     root filesystem, vda1 under virtio) and GRUB (i386-pc) in
                     the MBR and the gap before the partition
    vmlinuz, initrd.img   the kernel and initramfs of the image, for direct
                     kernel boot (-kernel/-initrd)
    manifest.json    what was built:
        kernel_release, kernel {package, version, source}
        packages         {name: version} of every package installed
        image            {file, format, sha256, size, virtual_size}
        root             {device, partition, filesystem, uuid, start_sector}
        cmdline          the kernel command line to use with direct kernel boot
        kernel_path, initrd_path   the extracted files (relative to DIR)
        bootloader       "grub-i386-pc" (or null when GRUB could not be set up)
        hostname, inputs_hash
    debootstrap-cache/   the downloaded .deb files (reused by later builds)

How: debootstrap installs a minimal bookworm (systemd, udev, dbus, cron,
qemu-guest-agent, procps, the kernel's dependencies and GRUB's i386-pc files)
into DIR/rootfs from Debian's archive (debian_archive.ARCHIVE_URL); the kernel
is the package of the default guest (build/guest/manifest.json: same release
and version; its .deb from build/guest), or bookworm's linux-image-amd64 when
that is not available.  The tree is configured (hostname, fstab, root with an
empty password and autologin on ttyS0, the guest agent started by its udev
rule when /dev/virtio-ports/org.qemu.guest_agent.0 appears), made into an ext4
filesystem with `mkfs.ext4 -d` (no mount, no loop device), placed at sector
2048 of a raw disk partitioned by sfdisk, GRUB's boot.img and a core.img from
grub-mkimage written before it, and converted with qemu-img.

The build is skipped, with one line and no subprocess, when manifest.json
records the same hash of inputs (package list, kernel package, builder source)
and the outputs are there with the recorded sizes.  --refresh rebuilds anyway
(with the archive's current package versions).

Needs: root, debootstrap (installed with apt-get when missing), e2fsprogs
(mkfs.ext4 with -d), fdisk (sfdisk), qemu-utils (qemu-img).
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "build" / "vm"
DEFAULT_GUEST = REPO / "build" / "guest"

SUITE = "bookworm"
HOSTNAME = "pyrebox-vm"
IMAGE = "debian12.qcow2"
MANIFEST = "manifest.json"
FORMAT = 1

# Installed by debootstrap (minbase variant, plus these).  The kernel's own
# dependencies are here because the kernel package is installed after
# debootstrap, from its .deb.
PACKAGES = [
    "systemd", "systemd-sysv", "udev", "dbus", "cron", "qemu-guest-agent", "procps",
    "kmod", "linux-base", "initramfs-tools", "grub-pc-bin",
]
FALLBACK_KERNEL = "linux-image-amd64"

PART_START = 2048          # sectors of 512 bytes: 1 MiB, room for GRUB's core.img
ROOT_DEVICE = "/dev/vda1"
CMDLINE = f"root={ROOT_DEVICE} console=ttyS0 rw"
# GRUB modules put into core.img; the rest are read from /boot/grub/i386-pc.
GRUB_CORE_MODULES = ["biosdisk", "part_msdos", "ext2", "normal", "linux", "search",
                     "serial", "terminal", "configfile", "echo", "test", "gzio"]


class BuildError(Exception):
    pass


def log(message: str) -> None:
    print(f"vm-image: {message}", flush=True)


def run(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> str:
    full_env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive", **(env or {}))
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found") from None
    if proc.returncode != 0:
        detail = ((proc.stderr or "") + (proc.stdout or "")).strip()[-4000:]
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{detail}")
    return proc.stdout


def load_archive_module():
    spec = importlib.util.spec_from_file_location("debian_archive", REPO / "guest" / "debian_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------- inputs


def default_guest_kernel(guest: Path = DEFAULT_GUEST) -> dict | None:
    """The default guest's kernel package and its .deb, if that guest is built."""
    try:
        manifest = json.loads((guest / "manifest.json").read_text())
        kernel = manifest["kernel"]
        deb = guest / kernel["deb"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not deb.is_file():
        return None
    return {"package": kernel["package"], "version": kernel["version"],
            "release": manifest.get("kernel_release"), "deb": str(deb)}


def stat_fingerprint(path: str | None) -> str:
    if not path:
        return "none"
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def inputs_hash(kernel: dict | None) -> str:
    """Hash of everything the image is made from; a stat and a few reads, no
    subprocess."""
    h = hashlib.sha256()
    h.update(Path(__file__).read_bytes())
    h.update((REPO / "guest" / "debian_archive.py").read_bytes())
    h.update(json.dumps({"format": FORMAT, "suite": SUITE, "packages": PACKAGES, "cmdline": CMDLINE,
                         "hostname": HOSTNAME}, sort_keys=True).encode())
    if kernel:
        h.update(f"{kernel['package']}={kernel['version']}:{stat_fingerprint(kernel['deb'])}".encode())
    else:
        h.update(FALLBACK_KERNEL.encode())
    return h.hexdigest()


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def up_to_date(out: Path, manifest: dict | None, wanted: str) -> bool:
    if not manifest or manifest.get("inputs_hash") != wanted:
        return False
    try:
        return ((out / manifest["image"]["file"]).stat().st_size == manifest["image"]["size"]
                and (out / manifest["kernel_path"]).is_file()
                and (out / manifest["initrd_path"]).is_file())
    except (OSError, KeyError, TypeError):
        return False


# ----------------------------------------------------------------- build


def ensure_debootstrap() -> None:
    if shutil.which("debootstrap"):
        return
    log("installing debootstrap (apt-get)")
    run(["apt-get", "install", "-y", "-q", "debootstrap"])


def chroot(root: Path, *cmd: str) -> str:
    return run(["chroot", str(root), *cmd],
               env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"})


def write(path: Path, text: str, mode: int = 0o644) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def mounts_under(root: Path) -> list[str]:
    """Mount points inside ROOT (debootstrap mounts /proc and /sys in the
    tree while it runs; one left by an interrupted build must not be
    removed with the tree nor copied into the image), deepest first."""
    prefix = str(root.resolve()) + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            point = line.split()[4].replace("\\040", " ")
            if point.startswith(prefix) or point == prefix[:-1]:
                found.append(point)
    return sorted(found, key=len, reverse=True)


def unmount_under(root: Path) -> None:
    for point in mounts_under(root):
        log(f"unmounting {point}")
        run(["umount", "-l", point])
    left = mounts_under(root)
    if left:
        raise BuildError(f"cannot unmount {', '.join(left)}")


def remove_tree(root: Path) -> None:
    if root.exists():
        unmount_under(root)
        shutil.rmtree(root)


def debootstrap(root: Path, cache: Path, with_kernel: bool) -> None:
    archive = load_archive_module()
    cache.mkdir(parents=True, exist_ok=True)
    packages = PACKAGES + ([FALLBACK_KERNEL] if with_kernel else [])
    log(f"debootstrap {SUITE} ({', '.join(packages)})")
    run(["debootstrap", "--variant=minbase", f"--include={','.join(packages)}",
         f"--keyring={archive.KEYRING}", f"--cache-dir={cache}", "--arch=amd64",
         SUITE, str(root), archive.ARCHIVE_URL])


def install_kernel_deb(root: Path, deb: Path) -> None:
    log(f"installing {deb.name}")
    target = root / "tmp" / deb.name
    shutil.copy2(deb, target)
    try:
        chroot(root, "dpkg", "-i", f"/tmp/{deb.name}")
    finally:
        target.unlink(missing_ok=True)


def configure(root: Path, root_uuid: str) -> None:
    write(root / "etc" / "hostname", HOSTNAME + "\n")
    write(root / "etc" / "hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{HOSTNAME}\n"
                                  "::1\tlocalhost ip6-localhost ip6-loopback\n")
    write(root / "etc" / "fstab", f"UUID={root_uuid}\t/\text4\terrors=remount-ro\t0\t1\n")
    # root: empty password, and logged in at once on the serial console.
    shadow = root / "etc" / "shadow"
    lines = shadow.read_text().splitlines()
    lines = [("root::" + line.split(":", 2)[2]) if line.startswith("root:") else line for line in lines]
    shadow.write_text("\n".join(lines) + "\n")
    units = root / "etc" / "systemd" / "system"
    write(units / "serial-getty@ttyS0.service.d" / "autologin.conf",
          "[Service]\nExecStart=\n"
          "ExecStart=-/sbin/agetty --autologin root --keep-baud 115200,57600,38400,9600 %I $TERM\n")
    wants = units / "getty.target.wants"
    wants.mkdir(parents=True, exist_ok=True)
    link = wants / "serial-getty@ttyS0.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/serial-getty@.service")
    # The guest agent's unit is started by its udev rule when the port
    # appears; enabling it also wants it on every boot where the port is.
    agent_unit = root / "lib" / "systemd" / "system" / "qemu-guest-agent.service"
    if not agent_unit.is_file():
        raise BuildError("qemu-guest-agent.service is not in the image")
    multi = units / "multi-user.target.wants"
    multi.mkdir(parents=True, exist_ok=True)
    link = multi / "qemu-guest-agent.service"
    if not link.is_symlink():
        link.symlink_to("/lib/systemd/system/qemu-guest-agent.service")
    # A new machine id on first boot; no network configuration at all.
    write(root / "etc" / "machine-id", "")
    # Smaller: no downloaded packages or package lists in the image.
    for folder in (root / "var" / "cache" / "apt" / "archives", root / "var" / "lib" / "apt" / "lists"):
        for path in folder.glob("*"):
            if path.is_file():
                path.unlink()


def kernel_files(root: Path) -> tuple[str, Path, Path]:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"expected one kernel in /boot, found {[k.name for k in kernels]}")
    release = kernels[0].name[len("vmlinuz-"):]
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.is_file():
        raise BuildError(f"no initramfs for {release} in /boot")
    return release, kernels[0], initrd


def grub_config(release: str, root_uuid: str) -> str:
    return "\n".join([
        "serial --unit=0 --speed=115200",
        "terminal_input serial console",
        "terminal_output serial console",
        "set timeout=1",
        "set default=0",
        f"search --no-floppy --fs-uuid --set=root {root_uuid}",
        f"menuentry 'Debian 12 ({release})' {{",
        f"    linux /boot/vmlinuz-{release} {CMDLINE}",
        f"    initrd /boot/initrd.img-{release}",
        "}",
        "",
    ])


def install_grub_files(root: Path, release: str, root_uuid: str) -> bytes:
    """GRUB's modules in /boot/grub/i386-pc, its grub.cfg, and a core.img
    made by grub-mkimage inside the tree; returns core.img."""
    source = root / "usr" / "lib" / "grub" / "i386-pc"
    target = root / "boot" / "grub" / "i386-pc"
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix in (".mod", ".lst", ".img"):
            shutil.copy2(path, target / path.name)
    write(root / "boot" / "grub" / "grub.cfg", grub_config(release, root_uuid))
    chroot(root, "grub-mkimage", "-O", "i386-pc", "-o", "/tmp/core.img",
           "-p", "(hd0,msdos1)/boot/grub", *GRUB_CORE_MODULES)
    core_path = root / "tmp" / "core.img"
    core = core_path.read_bytes()
    core_path.unlink()
    if len(core) > (PART_START - 1) * 512:
        raise BuildError(f"GRUB's core.img ({len(core)} bytes) does not fit before the partition")
    return core


def tree_size(root: Path) -> int:
    total = 0
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + dirnames:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            total += (st.st_size + 4095) // 4096 * 4096
    return total


def copy_sparse(source: Path, target, offset: int) -> None:
    block = 1 << 20
    zero = bytes(block)
    with open(source, "rb") as src:
        position = offset
        while chunk := src.read(block):
            if chunk != zero[:len(chunk)]:
                target.seek(position)
                target.write(chunk)
            position += len(chunk)


def make_disk(work: Path, root: Path, root_uuid: str, core: bytes | None, image: Path) -> dict:
    fs = work / "root.ext4"
    size_mib = (tree_size(root) * 13 // 10) // (1 << 20) + 256
    fs.unlink(missing_ok=True)
    log(f"mkfs.ext4 -d ({size_mib} MiB)")
    run(["mkfs.ext4", "-q", "-F", "-L", "root", "-U", root_uuid, "-d", str(root),
         "-E", "root_owner=0:0", str(fs), f"{size_mib}M"])
    disk = work / "disk.raw"
    disk.unlink(missing_ok=True)
    fs_sectors = fs.stat().st_size // 512
    with open(disk, "wb") as out:
        out.truncate((PART_START + fs_sectors) * 512)
    # A fixed disk identifier: the same inputs give the same partition table.
    label_id = "0x" + root_uuid.replace("-", "")[:8]
    script = f"label: dos\nlabel-id: {label_id}\nunit: sectors\n\nstart={PART_START}, size={fs_sectors}, type=83, bootable\n"
    proc = subprocess.run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(disk)],
                          input=script, capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"sfdisk failed: {proc.stderr.strip()}")
    with open(disk, "r+b") as out:
        copy_sparse(fs, out, PART_START * 512)
        if core is not None:
            boot = (root / "usr" / "lib" / "grub" / "i386-pc" / "boot.img").read_bytes()
            # boot.img's code, keeping the disk signature and partition table
            # (bytes 440..511); it loads sector 1, where core.img goes.
            out.seek(0)
            out.write(boot[:440])
            out.seek(512)
            out.write(core)
    fs.unlink()
    partial = image.with_name(f".{image.name}.partial")
    log("qemu-img convert to qcow2")
    run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(disk), str(partial)])
    disk.unlink()
    os.replace(partial, image)
    return {"start_sector": PART_START, "sectors": fs_sectors, "label_id": label_id}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def installed_packages(root: Path) -> dict[str, str]:
    out = chroot(root, "dpkg-query", "-W", "-f", "${Package}\t${Version}\n")
    return dict(line.split("\t", 1) for line in out.splitlines() if "\t" in line)


def build(out: Path, refresh: bool = False, guest: Path = DEFAULT_GUEST) -> dict:
    kernel = default_guest_kernel(guest)
    wanted = inputs_hash(kernel)
    previous = read_manifest(out)
    if not refresh and up_to_date(out, previous, wanted):
        log(f"{out / IMAGE} is up to date ({previous['kernel_release']})")
        return previous
    if os.geteuid() != 0:
        raise BuildError("building the VM image needs root (debootstrap, chroot)")
    started = time.monotonic()
    ensure_debootstrap()
    out.mkdir(parents=True, exist_ok=True)
    root = out / "rootfs"
    remove_tree(root)
    root_uuid = str(uuid.UUID(wanted[:32]))
    debootstrap(root, out / "debootstrap-cache", with_kernel=kernel is None)
    if kernel:
        install_kernel_deb(root, Path(kernel["deb"]))
    unmount_under(root)
    release, vmlinuz, initrd = kernel_files(root)
    packages = installed_packages(root)
    configure(root, root_uuid)
    core = None
    try:
        core = install_grub_files(root, release, root_uuid)
    except BuildError as error:
        log(f"warning: no GRUB in the image (direct kernel boot only): {error}")
    shutil.copy2(vmlinuz, out / "vmlinuz")
    shutil.copy2(initrd, out / "initrd.img")
    image = out / IMAGE
    unmount_under(root)
    disk = make_disk(out, root, root_uuid, core, image)
    remove_tree(root)
    info = json.loads(run(["qemu-img", "info", "--output=json", str(image)]))
    kernel_package = f"linux-image-{release}"
    manifest = {
        "format": FORMAT,
        "suite": SUITE,
        "hostname": HOSTNAME,
        "kernel_release": release,
        "kernel": {
            "package": kernel_package,
            "version": packages.get(kernel_package),
            "source": ("default guest's .deb" if kernel else f"debootstrap ({FALLBACK_KERNEL} of {SUITE})"),
        },
        "packages": packages,
        "requested_packages": PACKAGES + ([] if kernel else [FALLBACK_KERNEL]),
        "image": {"file": IMAGE, "format": info.get("format"), "sha256": sha256(image),
                  "size": image.stat().st_size, "virtual_size": info.get("virtual-size")},
        "root": {"device": ROOT_DEVICE, "partition": 1, "filesystem": "ext4", "uuid": root_uuid, **disk},
        "cmdline": CMDLINE,
        "kernel_path": "vmlinuz",
        "initrd_path": "initrd.img",
        "bootloader": "grub-i386-pc" if core is not None else None,
        "inputs_hash": wanted,
    }
    partial = out / f".{MANIFEST}.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(partial, out / MANIFEST)
    log(f"built {image} ({manifest['image']['size'] >> 20} MiB, kernel {release}) "
        f"in {time.monotonic() - started:.0f}s")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output folder (default build/vm)")
    parser.add_argument("--refresh", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            build(out, refresh=args.refresh)
        except BuildError as error:
            print(f"vm-image: error: {error}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
