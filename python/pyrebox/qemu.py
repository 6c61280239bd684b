"""Finding a QEMU that can host PyREBox, and its command line."""

from __future__ import annotations

import re
import shutil
import subprocess

MIN_VERSION = (10, 0)
INSTALL_HINT = ("install it with: apt-get install -t bookworm-backports qemu-system-x86 "
                "(Debian 12; on Debian 13: apt-get install qemu-system-x86)")


class QemuError(Exception):
    """No usable QEMU; the message names the package and the command."""


def find(arch: str = "x86_64") -> str:
    """Path of qemu-system-<arch>, checked to be QEMU >= 10.0."""
    binary = f"qemu-system-{arch}"
    path = shutil.which(binary)
    if path is None:
        raise QemuError(f"{binary} not found: PyREBox needs QEMU >= 10.0 with TCG plugins; "
                        + INSTALL_HINT)
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise QemuError(f"{path} --version failed ({e}); " + INSTALL_HINT) from None
    match = re.search(r"version (\d+)\.(\d+)", out)
    if match is None:
        raise QemuError(f"cannot read the version of {path}; " + INSTALL_HINT)
    version = (int(match.group(1)), int(match.group(2)))
    if version < MIN_VERSION:
        raise QemuError(f"{path} is QEMU {version[0]}.{version[1]}; PyREBox needs >= "
                        f"{MIN_VERSION[0]}.{MIN_VERSION[1]}; " + INSTALL_HINT)
    return path


def plugin_arg(plugin: str, **options: str | int) -> str:
    """The -plugin argument: path,key=value,... (QEMU splits on commas)."""
    parts = [plugin]
    for key, value in options.items():
        text = str(value)
        if "," in text:
            raise QemuError(f"plugin option {key}={text!r}: QEMU cannot pass a comma in "
                            f"a plugin argument; use a path without commas")
        parts.append(f"{key}={text}")
    return ",".join(parts)


# Options that mean "the user describes the machine to boot": then the
# default guest (kernel, initramfs, batch commands) is not used.
USER_VM_OPTIONS = ("-kernel", "-hda", "-hdb", "-drive", "-cdrom", "-bios", "-blockdev",
                   "-pflash")


def describes_own_vm(extra: list[str]) -> bool:
    return any(arg in USER_VM_OPTIONS for arg in extra)
