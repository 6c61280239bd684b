"""Where the checkout's build artifacts are."""

from __future__ import annotations

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.path.join(ROOT, "build")
PLUGIN = os.path.join(BUILD, "cmake", "libpyrebox.so")
GUEST = os.path.join(BUILD, "guest")
GUEST_KERNEL = os.path.join(GUEST, "vmlinuz")
GUEST_INITRAMFS = os.path.join(GUEST, "initramfs.cpio.gz")
GUEST_ISF = os.path.join(GUEST, "kernel.isf.json.xz")
VENV = os.path.join(ROOT, ".venv")
PYTHONPATH = os.path.join(ROOT, "python")


class SetupError(Exception):
    """Something the set-up step produces is missing."""


def require(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise SetupError(f"{what} is missing ({os.path.relpath(path, ROOT)}): "
                         f"run 'make bootstrap' in {ROOT}")
    return path


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
