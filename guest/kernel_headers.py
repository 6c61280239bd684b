#!/usr/bin/env python3
"""The kernel headers of a guest's kernel (Debian's linux-headers-<release>),
to build kernel modules for it: the hostile-guest tests build one of their
own (tests/guest/kmod).

    guest/kernel_headers.py [--guest-kernel SPEC]

makes sure /usr/src/linux-headers-<release>/Makefile exists for the default
guest (or the guest of --guest-kernel SPEC, built first) and prints that
folder. When it is missing, apt-get installs linux-headers-<release> at the
guest kernel's version from the machine's sources; when they do not have
that version, its .debs (the headers, their -common part and linux-kbuild)
are downloaded with the project's private apt configuration (build/apt, as
guest/build.py uses) and installed as files. Installing needs root.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python"))
sys.path.insert(0, str(REPO / "guest"))

from pyrebox import paths  # noqa: E402


class HeadersError(Exception):
    pass


def headers_dir(release: str) -> Path:
    return Path("/usr/src") / f"linux-headers-{release}"


def installed(release: str) -> bool:
    return (headers_dir(release) / "Makefile").is_file()


def apt_install(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    return subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *args],
                          env=env, capture_output=True, text=True)


def from_private_archive(package: str, version: str) -> None:
    """Downloads PACKAGE=VERSION and the linux-* packages it depends on with
    the private apt configuration, then installs the files."""
    import debian_archive as debian

    archive = debian.DebianArchive(REPO / "build" / "apt", log=lambda m: print(f"kernel headers: {m}"))
    archive.ensure_lists(False)
    record = archive.show(f"{package}={version}")
    if record is None:
        raise HeadersError(f"Debian's archive has no {package} {version}")
    # "linux-headers-6.1.0-57-common (= 6.1.192-3), linux-kbuild-6.1 (>= 6.1.192-3), ..."
    wanted = [f"{package}={version}"]
    for dep in record.get("Depends", "").split(","):
        name = dep.split("|")[0].strip().split(" ")[0]
        if re.fullmatch(r"linux-(headers|kbuild)-[\w.+-]+", name):
            wanted.append(f"{name}={version}")
    with tempfile.TemporaryDirectory() as tmp:
        debs = archive.download(wanted, Path(tmp))
        result = apt_install([str(d) for d in debs])
        if result.returncode != 0:
            raise HeadersError(f"installing {', '.join(d.name for d in debs)} failed:\n"
                               f"{result.stdout[-1500:]}{result.stderr[-1500:]}")


def ensure(release: str, version: str) -> Path:
    if installed(release):
        return headers_dir(release)
    if os.geteuid() != 0:
        raise HeadersError(f"linux-headers-{release} is not installed: run as root (or "
                           f"`apt-get install linux-headers-{release}={version}`)")
    package = f"linux-headers-{release}"
    print(f"kernel headers: installing {package} {version}", flush=True)
    result = apt_install([f"{package}={version}"])
    if result.returncode != 0:
        from_private_archive(package, version)
    if not installed(release):
        raise HeadersError(f"{package} {version} is installed but "
                           f"{headers_dir(release)}/Makefile is missing")
    return headers_dir(release)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guest-kernel", metavar="SPEC", help="the guest of this kernel (default: the default guest)")
    args = parser.parse_args()
    try:
        guest = paths.guest(args.guest_kernel)
        version = guest.manifest["kernel"]["version"]
        print(ensure(guest.release, version))
    except (paths.SetupError, HeadersError, KeyError) as error:
        print(f"kernel headers: error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
