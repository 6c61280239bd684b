"""Shared by the own-VM tests (test_own_vm_*.py): the Debian 12 VM image
built by guest/vm_image.py (build/vm; a skip naming `make vm-image` when it
is not built), its manifest, the host-compiled test program, and the
image's hash (every run must leave the image's bytes as they were)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess

import pytest

from pyrebox import paths

HERE = os.path.dirname(os.path.abspath(__file__))


def manifest() -> dict:
    if not os.path.exists(paths.VM_MANIFEST):
        pytest.skip("needs the Debian 12 VM image (build/vm/manifest.json): run 'make vm-image'")
    with open(paths.VM_MANIFEST) as f:
        return json.load(f)


def image_path(m: dict) -> str:
    return os.path.join(paths.VM, m["image"]["file"])


def sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def report_program(folder) -> str:
    """own_vm/report.c compiled static on the host, in FOLDER."""
    out = os.path.join(str(folder), "report")
    subprocess.run(["gcc", "-static", "-O1", "-o", out, os.path.join(HERE, "report.c")],
                   check=True)
    return out


def assert_image_unchanged(m: dict) -> None:
    assert sha256(image_path(m)) == m["image"]["sha256"], "a run wrote the VM's image"
