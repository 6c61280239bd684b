"""guest/vm_image.py: the Debian 12 VM image of the own-VM tests, checked
against its manifest without booting it (the boot is checked by hand, see
docs/own-vm.md), and the builder's up-to-date check."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from pyrebox import paths

pytestmark = pytest.mark.built_vm


def load_builder():
    spec = importlib.util.spec_from_file_location("test_vm_image_builder", paths.VM_BUILDER)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def manifest() -> dict:
    with open(paths.VM_MANIFEST) as f:
        return json.load(f)


def test_image_is_the_recorded_qcow2(manifest):
    image = os.path.join(paths.VM, manifest["image"]["file"])
    with open(image, "rb") as f:
        assert f.read(4) == b"QFI\xfb"  # qcow2's magic
        f.seek(0)
        digest = hashlib.sha256()
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    assert manifest["image"]["format"] == "qcow2"
    assert digest.hexdigest() == manifest["image"]["sha256"]
    assert os.path.getsize(image) == manifest["image"]["size"]


def test_kernel_and_initrd_for_direct_boot(manifest):
    kernel = os.path.join(paths.VM, manifest["kernel_path"])
    initrd = os.path.join(paths.VM, manifest["initrd_path"])
    with open(kernel, "rb") as f:
        header = f.read(0x210)
    assert header[0x202:0x206] == b"HdrS"  # an x86 bzImage
    assert os.path.getsize(initrd) > 1 << 20
    release = manifest["kernel_release"]
    assert manifest["kernel"]["package"] == f"linux-image-{release}"
    assert manifest["packages"][manifest["kernel"]["package"]] == manifest["kernel"]["version"]


def test_packages_and_boot_facts(manifest):
    for name in ("systemd", "udev", "dbus", "cron", "qemu-guest-agent", "procps"):
        assert name in manifest["packages"], name
    assert manifest["root"]["device"] == "/dev/vda1" and manifest["root"]["partition"] == 1
    assert "root=/dev/vda1" in manifest["cmdline"] and "console=ttyS0" in manifest["cmdline"]


def test_same_kernel_as_the_default_guest(manifest):
    try:
        with open(os.path.join(paths.GUEST, "manifest.json")) as f:
            guest = json.load(f)
    except OSError:
        pytest.skip("the default guest is not built")
    if manifest["kernel"]["source"].startswith("default guest"):
        assert manifest["kernel_release"] == guest["kernel_release"]
        assert manifest["kernel"]["version"] == guest["kernel"]["version"]


def test_up_to_date_build_runs_no_subprocess(monkeypatch, capsys):
    builder = load_builder()
    for name in ("run", "Popen", "call", "check_call", "check_output"):
        monkeypatch.setattr(subprocess, name, lambda *a, _n=name, **k: pytest.fail(f"subprocess.{_n}{a}"))
    monkeypatch.setattr(os, "system", lambda *a: pytest.fail(f"os.system{a}"))
    started = time.monotonic()
    assert builder.main([]) == 0
    assert time.monotonic() - started < 1.0
    assert "is up to date" in capsys.readouterr().out
