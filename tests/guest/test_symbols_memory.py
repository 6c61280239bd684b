"""`pyrebox symbols` on memory images of the running default guest (KASLR
on, as it boots by default): the ISF equals the one made from its vmlinuz
(build/guest/kernel.isf.json.xz) -- same types, same symbols at the same
link-time addresses, same banner.

One boot serves the module: while the guest runs a command, the test stops
the VM through the run's QMP socket, saves the first 512 MiB of physical
memory (QMP pmemsave: the raw form, offset = physical address) and an ELF
core (dump-guest-memory), and lets the guest go on. The raw image is also
read through a callable (generate_from_memory, the running plugin's way).
"""

from __future__ import annotations

import json
import lzma
import queue
import re
import subprocess
import threading
import time

import pytest

from conftest import LAUNCHER, built_release, run_pyrebox
from pyrebox import paths
from pyrebox.qmp_client import Qmp
from pyrebox.symbols import generate_from_memory, memory_image

pytestmark = pytest.mark.guest

QMP_LINE = re.compile(r"\[pyrebox\] QMP socket: (\S+)/qmp\.sock")
RAM = 512 << 20  # the default guest's memory


def _lines(stream) -> queue.Queue:
    lines: queue.Queue = queue.Queue()

    def read():
        for line in stream:
            lines.put(line.rstrip("\n"))
        lines.put(None)
    threading.Thread(target=read, daemon=True).start()
    return lines


def _until(lines: queue.Queue, match, seen: list[str], timeout: float = 300):
    deadline = time.monotonic() + timeout
    while True:
        line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        if line is None:
            raise AssertionError("the run ended before: " + "\n".join(seen[-30:]))
        seen.append(line)
        if match(line):
            return line


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """{"raw": path, "core": path, "kallsyms": the kernel's own count} of
    one moment of the running guest."""
    work = tmp_path_factory.mktemp("memory_images")
    raw, core = work / "guest.mem", work / "guest.core"
    launcher = subprocess.Popen(
        # /proc/kallsyms: the kernel's symbols, then modules' ("[name]").
        [LAUNCHER, "run", "--timeout", "300", "--cmd",
         "echo kallsyms=$(grep -vc '\\[' /proc/kallsyms); echo ready-$((40+2)); sleep 10"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(work))
    seen: list[str] = []
    try:
        lines = _lines(launcher.stdout)
        rundir = QMP_LINE.match(_until(lines, QMP_LINE.match, seen)).group(1)
        count = _until(lines, lambda line: line.startswith("kallsyms="), seen)
        _until(lines, lambda line: line == "ready-42", seen)
        qmp = Qmp(f"{rundir}/qmp.sock")
        qmp.execute("stop")
        qmp.execute("pmemsave", val=0, size=RAM, filename=str(raw))
        qmp.execute("dump-guest-memory", paging=False, protocol=f"file:{core}")
        qmp.execute("cont")
        rc = launcher.wait(timeout=300)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert rc == 0, "\n".join(seen[-30:]) + launcher.stderr.read()
    return {"raw": raw, "core": core, "kallsyms": int(count.split("=")[1])}


@pytest.fixture(scope="module")
def from_vmlinuz() -> dict:
    with lzma.open(paths.GUEST_ISF, "rt") as f:
        return json.load(f)


def generate(image, tmp_path):
    out = tmp_path / "x.json.xz"
    started = time.monotonic()
    result = run_pyrebox("symbols", str(image), "-o", str(out))
    seconds = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    with lzma.open(out, "rt") as f:
        return json.load(f), result.stdout, seconds


def test_the_guest_ran_with_kaslr(images):
    # The kernel says by how much it moved: vmcoreinfo's "KERNELOFFSET=<hex>"
    # (not the "KERNELOFFSET=%lx" it is printed with).
    data = memory_image.open_image(images["raw"])
    values = {bytes(data[at + 13 : at + 30]).split(b"\n")[0]
              for at in memory_image.find_all(data, b"KERNELOFFSET=")}
    offsets = {int(v, 16) for v in values if re.fullmatch(rb"[0-9a-f]+", v)}
    assert len(offsets) == 1, values
    (offset,) = offsets
    assert offset != 0 and offset % 0x200000 == 0


@pytest.mark.parametrize("form", ["raw", "core"])
def test_memory_image_gives_the_vmlinuz_isf(images, from_vmlinuz, tmp_path, form):
    isf, stdout, seconds = generate(images[form], tmp_path)
    print(f"\n{form} image ({images[form].stat().st_size >> 20} MiB): generated in {seconds:.1f}s")
    for section in ("base_types", "user_types", "enums"):
        assert isf[section] == from_vmlinuz[section], section
    assert isf["symbols"] == from_vmlinuz["symbols"]  # names, link-time addresses, types
    banner = isf["symbols"]["linux_banner"]["constant_data"]
    assert banner == from_vmlinuz["symbols"]["linux_banner"]["constant_data"]
    assert f"for Linux {built_release()}: " in stdout
    # Every symbol the running kernel lists, no more.
    assert f"({images['kallsyms']} kallsyms entries)" in stdout
    assert isf["metadata"]["linux"]["symbols"] == [{"kind": "memory", "name": images[form].name}]
    assert seconds < 60, f"generation took {seconds:.1f}s"


def test_guest_memory_through_a_callable_gives_the_vmlinuz_isf(images, from_vmlinuz):
    # RAM of the default guest below 512 MiB, around the VGA hole (the
    # ranges api.save_memory reports).
    ranges = [(0, 0xA0000), (0xC0000, RAM)]
    calls = []
    with open(images["raw"], "rb") as f:
        def read_phys(address, size):
            calls.append((address, size))
            f.seek(address)
            return f.read(size)
        started = time.monotonic()
        result = generate_from_memory(read_phys, RAM, ranges=ranges)
        seconds = time.monotonic() - started
    print(f"\nthrough a callable: {seconds:.1f}s, {sum(s for _, s in calls) >> 20} MiB read")
    isf = result.isf
    for section in ("base_types", "user_types", "enums", "symbols"):
        assert isf[section] == from_vmlinuz[section], section
    assert all(any(a <= address and address + size <= b for a, b in ranges) for address, size in calls)
    assert result.banner.startswith(f"Linux version {built_release()} ")
