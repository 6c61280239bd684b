"""Where the checkout's build artifacts are."""

from __future__ import annotations

import dataclasses
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
PLUGIN = os.path.join(BUILD, "cmake", "libpyrebox.so")
GUEST = os.path.join(BUILD, "guest")
GUEST_KERNEL = os.path.join(GUEST, "vmlinuz")
GUEST_INITRAMFS = os.path.join(GUEST, "initramfs.cpio.gz")
GUEST_ISF = os.path.join(GUEST, "kernel.isf.json.xz")
# Guests of other Debian kernels (guest/build.py --guest-kernel SPEC): one
# folder per kernel release, and which SPEC resolved to which (specs.json).
GUESTS = os.path.join(BUILD, "guests")
GUEST_SPECS = os.path.join(GUESTS, "specs.json")
BUILDER = os.path.join(ROOT, "guest", "build.py")
# The Debian 12 VM disk image of the own-VM tests (guest/vm_image.py).
VM = os.path.join(BUILD, "vm")
VM_MANIFEST = os.path.join(VM, "manifest.json")
VM_BUILDER = os.path.join(ROOT, "guest", "vm_image.py")
# Set by the launcher in QEMU's environment: the folder of the guest it boots,
# so scripts in the VM can read its manifest (running_guest()).
GUEST_ENV = "PYREBOX_GUEST"
VENV = os.path.join(ROOT, ".venv")
PYTHONPATH = os.path.join(ROOT, "python")


class SetupError(Exception):
    """Something the set-up step produces is missing."""


def require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise SetupError(f"{what} is missing ({os.path.relpath(path, ROOT)}): "
                         f"run 'make bootstrap' in {ROOT}")
    return path


@dataclasses.dataclass(frozen=True)
class Guest:
    """The files of a built guest (guest/build.py's output folder)."""
    spec: str | None  # None: the default guest
    dir: str
    vmlinuz: str
    initramfs: str
    isf: str          # the kernel's ISF (kernel.isf.json.xz)
    release: str      # the kernel's release (uname -r)
    manifest: dict    # manifest.json: what was built, from what

    @property
    def on_demand_module(self) -> dict:
        """{name, path, symbol} of the kernel module the guest carries for
        tests to insmod and rmmod (not loaded at boot)."""
        return self.manifest["on_demand_module"]


def build_command(spec: str | None) -> str:
    return "make bootstrap" if spec is None else f"guest/build.py --guest-kernel {spec}"


def guest_dir(spec: str | None = None) -> str | None:
    """The folder of the guest of --guest-kernel SPEC (the default guest's for
    None), from build/guests/specs.json and without apt; None if SPEC was
    never built. SPEC may also be a kernel release built in build/guests."""
    if spec is None:
        return GUEST
    try:
        with open(GUEST_SPECS) as f:
            record = json.load(f).get(spec)
    except (OSError, ValueError):
        record = None
    if record and record.get("dir"):
        return os.path.join(BUILD, record["dir"])
    if spec and "/" not in spec and spec not in (".", ".."):
        candidate = os.path.join(GUESTS, spec)
        if os.path.isfile(os.path.join(candidate, "manifest.json")):
            return candidate
    return None


def guest(spec: str | None = None) -> Guest:
    """The default guest (SPEC None) or the guest of --guest-kernel SPEC (a
    Debian suite or kernel package name, as given to guest/build.py; or a
    kernel release). Raises SetupError, naming the command that builds it,
    when it is not built (its manifest is written last)."""
    what = "the default guest" if spec is None else f"the guest of --guest-kernel {spec}"
    folder = guest_dir(spec)
    try:
        with open(os.path.join(folder or GUESTS, "manifest.json")) as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        raise SetupError(f"{what} is not built: run '{build_command(spec)}' in {ROOT}") from None
    built = _guest(spec, folder, manifest)
    for path in (built.vmlinuz, built.initramfs):
        if not os.path.exists(path):
            raise SetupError(f"{what} is incomplete ({os.path.relpath(path, ROOT)} is missing): "
                             f"run '{build_command(spec)}' in {ROOT}")
    return built


def _guest(spec: str | None, folder: str, manifest: dict) -> Guest:
    return Guest(spec=spec, dir=folder,
                 vmlinuz=os.path.join(folder, manifest.get("vmlinuz", "vmlinuz")),
                 initramfs=os.path.join(folder, manifest.get("initramfs", "initramfs.cpio.gz")),
                 isf=os.path.join(folder, manifest.get("kernel_isf", {}).get("file", "kernel.isf.json.xz")),
                 release=manifest.get("kernel_release", ""), manifest=manifest)


def running_guest() -> Guest | None:
    """In a VM the launcher started: the guest it boots (None for a VM of
    the user's own QEMU arguments, or outside such a VM)."""
    folder = os.environ.get(GUEST_ENV)
    if not folder:
        return None
    with open(os.path.join(folder, "manifest.json")) as f:
        return _guest(None, folder, json.load(f))


def open_private(path: str):
    """Opens `path` for writing (binary, truncated) as a file only its owner
    can read: guest memory dumped to the host is no other user's business.
    A file that existed keeps its owner but gets mode 0600 too."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    except OSError:
        os.close(fd)
        raise
    return os.fdopen(fd, "wb")
