#!/usr/bin/env python3
"""A guest kernel's ISF from the DWARF of its debug package.

    python3 guest/debug_table.py [--guest DIR] [--force]

DIR (default <repo>/build/guest) is a guest guest/build.py made; its
manifest names the kernel package and version. This downloads
linux-image-<release>-dbg of that version (through the machine's apt for the
default guest, through the project's own apt configuration for the others:
debian_archive.py), takes only its /usr/lib/debug/boot/vmlinux-<release> out
of it, and writes DIR/kernel.dwarf.isf.json.xz with `pyrebox symbols` (types
from DWARF: python/pyrebox/symbols/dwarf.py). The package (hundreds of MB)
and the debug vmlinux are deleted afterwards; DIR/kernel.dwarf.json records
what the table was made from, and the step is skipped while that is
unchanged.

This is how a kernel without BTF (Debian's i386 kernels) gets its table,
and, for the default guest's kernel, which has both, what tests compare the
BTF table with (tests/python/test_dwarf_kernel.py).

Needs: apt-get, dpkg-deb, tar; the venv's pyelftools.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import build  # noqa: E402  (guest/build.py: downloads, locks, the symbols package)

DWARF_ISF = "kernel.dwarf.isf.json.xz"
RECORD = "kernel.dwarf.json"


def inputs_hash(kernel: dict) -> str:
    facts = {"kernel": [kernel["package"], kernel["version"]],
             "generator": {p.name: build.file_digest(p) for p in build.symbols_sources()}}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def debug_package(kernel: dict) -> str:
    return f"{kernel['package']}-dbg={kernel['version']}"


def download_for(guest: Path):
    """The download function of the guest's kernel: the machine's apt for
    the default guest, the project's archive for the other kernels."""
    if guest.resolve() == build.DEFAULT_OUT.resolve():
        return build.machine_apt_download
    debian = build.load_archive_module()
    archive = debian.DebianArchive(build.APT_DIR, log=build.log)
    archive.ensure_lists()
    return archive.download


def extract_vmlinux(deb: Path, release: str, into: Path) -> Path:
    """Only the debug vmlinux out of DEB (tar stops reading after it: it is
    near the start of the package)."""
    member = f"./usr/lib/debug/boot/vmlinux-{release}"
    dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL)
    tar = subprocess.run(["tar", "-x", "--occurrence=1", "-C", str(into), member],
                         stdin=dpkg.stdout, capture_output=True, text=True)
    dpkg.stdout.close()
    dpkg.wait()  # ends by SIGPIPE once tar has what it wanted
    target = into / member
    if tar.returncode != 0 or not target.is_file():
        raise build.BuildError(f"{deb.name} has no {member[1:]}: {tar.stderr.strip()}")
    return target


def make_table(guest: Path, force: bool = False) -> dict:
    manifest = build.read_manifest(guest)
    if manifest is None:
        raise build.BuildError(f"{guest} has no guest (manifest.json): build it first with "
                               f"guest/build.py")
    kernel, release = manifest["kernel"], manifest["kernel_release"]
    inputs = inputs_hash(kernel)
    try:
        known = json.loads((guest / RECORD).read_text())
    except (OSError, ValueError):
        known = {}
    if not force and known.get("inputs_hash") == inputs and (guest / DWARF_ISF).is_file():
        build.log(f"{DWARF_ISF} of {release} is up to date")
        return known
    started = time.monotonic()
    symbols = build.load_symbols_package()
    with tempfile.TemporaryDirectory(prefix="pyrebox-dbg-", dir=guest) as work:
        work = Path(work)
        spec = debug_package(kernel)
        build.log(f"downloading {spec}")
        download_for(guest)([spec], work)
        debs = sorted(work.glob("*.deb"))
        if not debs:
            raise build.BuildError(f"apt downloaded no package for {spec}")
        vmlinux = extract_vmlinux(debs[0], release, work)
        debs[0].unlink()
        build.log(f"generating {DWARF_ISF} from the DWARF of vmlinux-{release}")
        try:
            result = symbols.generate(vmlinux, "dwarf")
            partial = guest / f".partial-{DWARF_ISF}"  # ends in .xz: written compressed
            symbols.write_isf(result.isf, partial)
            os.replace(partial, guest / DWARF_ISF)
        except symbols.KernelImageError as error:
            raise build.BuildError(f"cannot generate {DWARF_ISF} from {spec}: {error}") from None
    record = {"file": DWARF_ISF, "inputs_hash": inputs, "package": spec,
              "generator": symbols.GENERATOR_VERSION, "types": result.user_types,
              "symbols": result.symbols, "seconds": round(time.monotonic() - started, 1)}
    (guest / RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    build.log(f"wrote {guest / DWARF_ISF} ({result.user_types} types, {result.symbols} symbols) "
              f"in {record['seconds']}s")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--guest", type=Path, default=build.DEFAULT_OUT,
                        help="the guest's folder (default: build/guest)")
    parser.add_argument("--force", action="store_true", help="make the table even if up to date")
    args = parser.parse_args(argv)
    try:
        with build.locked(args.guest, ".dwarf.lock"):
            make_table(args.guest, args.force)
    except build.BuildError as error:
        print(f"guest: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
