#!/usr/bin/env python3
"""Build the PyREBox default guest: a Debian kernel plus a busybox initramfs.

    python3 guest/build.py [--out DIR] [--force]
    python3 guest/build.py --guest-kernel SPEC [--guest-kernel SPEC]... [--refresh] [--force]

Without --guest-kernel: the default guest, in DIR (default <repo>/build/guest),
from the kernel that the machine's apt has as the candidate of
linux-image-amd64 (Debian 12's is 6.1).

With --guest-kernel SPEC: the guest of another Debian kernel, with the same
programs, init and layout, in build/guests/<kernel release>.  SPEC is a suite
(bullseye, bookworm, bookworm-backports, trixie, sid, experimental: that
suite's current linux-image-amd64) or a kernel package name
(linux-image-6.12.95+deb12-amd64: its newest version in those suites).  They
are looked up and downloaded through the project's own apt configuration
(debian_archive.py, in build/apt; the machine's apt is neither read nor
changed), whose package lists are fetched when missing, once a day, or on
--refresh.  build/guests/specs.json records what each SPEC resolved to; while
the lists are unchanged a build of a known SPEC needs no apt.  Several
--guest-kernel options build several guests; one that fails does not stop
the others (the exit status is 1).

Outputs, in the guest's folder:
    vmlinuz              the kernel
    kernel-release       its release string (e.g. "6.1.0-41-amd64"), one line
    initramfs.cpio.gz    /init, busybox, the test programs, glibc for them
    programs/<name>      the test programs as compiled (also usable on the host)
    kernel/              the unpacked kernel package(s) (kernel/lib/modules/<release>,
                         or kernel/usr/lib/modules/<release>, with a generated modules.dep)
    <package>_<version>_amd64.deb   the downloaded kernel package(s) (cache)
    kernel.isf.json.xz   the kernel's Volatility 3 ISF (python/pyrebox/symbols),
                         regenerated only when the kernel or the generator changes
    manifest.json        what was built, from what:
        kernel           {metapackage, package, version, deb, modules_dir}; for a
                         --guest-kernel guest also spec and suite (null for a
                         package name), and debs when the kernel has several
        kernel_release   same text as kernel-release
        vmlinuz, initramfs   file names in DIR
        programs         [{name, linkage, host_path (relative to DIR), guest_path}]
        host_libraries   host files ldd named for the dynamic programs; each is
                         in the image at the same path
        kernel_modules   guest paths of the modules loaded at boot, in order
        kernel_modules_builtin   names of KERNEL_MODULES the kernel has built in
        on_demand_module {name, path (in the guest), symbol (a function it
                         exports)} of the module tests insmod and rmmod
        kernel_isf       {file, inputs_hash, generator, types, symbols}
        inputs_hash      hash of all inputs (see inputs_hash)
        apt_state        fingerprint of the apt lists the kernel was resolved from

The initramfs size is padded with NULs to a multiple of 4 bytes, so an
uncompressed cpio archive can be appended to it as is (see write_gzip).

The build is skipped, printing one line, when manifest.json records the same
hash of inputs and every output is present; that check runs no subprocess.
Needs (Debian): apt-get/apt-cache/dpkg-deb, gcc with libc6-dev, busybox-static.
Python 3.11 standard library only.
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import hashlib
import importlib.util
import json
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GUEST_SRC = REPO / "guest"
PROGRAMS_SRC = GUEST_SRC / "programs"
INIT_SRC = GUEST_SRC / "init"
CPIO_SRC = REPO / "python" / "pyrebox" / "cpio.py"
SYMBOLS_SRC = REPO / "python" / "pyrebox" / "symbols"
KERNEL_ISF = "kernel.isf.json.xz"
DEFAULT_OUT = REPO / "build" / "guest"
ARCHIVE_SRC = GUEST_SRC / "debian_archive.py"
# Guests of other Debian kernels (--guest-kernel SPEC): build/guests/<release>,
# and build/guests/specs.json, which SPEC resolved to which kernel.
GUESTS_DIR = REPO / "build" / "guests"
SPECS_FILE = "specs.json"
# The project's own apt configuration and lists (debian_archive.py).
APT_DIR = REPO / "build" / "apt"

# The kernel is whatever this metapackage currently depends on: no version is
# pinned here, so a Debian point release moves the guest to the new kernel.
KERNEL_METAPACKAGE = "linux-image-amd64"
KERNEL_ARCH = "amd64"

# Kernel modules to put into the initramfs and load at boot (by module name,
# e.g. "virtio_net"); their modules.dep dependencies come along.  The guest's
# /init insmods them, dependencies first, from /etc/pyrebox/modules.
KERNEL_MODULES: list[str] = ["ne2k_pci", "e1000", "virtio_pci", "virtio_net"]

# Built-in modules (the kernel's modules.builtin lists them: 6.12 builds
# virtio_pci in, for one) are skipped; a name that is neither loadable nor
# built in is an error.

# QEMU's guest agent, for `pyrebox run --agent` (the console's put, get and
# exec): the machine's qemu-ga (package qemu-guest-agent) and the libraries
# it loads go in as they are, with the kernel modules of its virtio-serial
# port, which /init loads (from /etc/pyrebox/agent-modules) and starts
# qemu-ga on only when the kernel command line has pyrebox.agent.
AGENT_BINARY = "/usr/sbin/qemu-ga"
AGENT_MODULES: list[str] = ["virtio_console"]

# Host programs copied into the guest as they are, with the libraries they
# load: (path, the Debian package that installs it). strace is the guest's
# own view of system calls, which the tracing tests compare against.
HOST_PROGRAMS: list[tuple[str, str]] = [(AGENT_BINARY, "qemu-guest-agent"),
                                        ("/usr/bin/strace", "strace")]

# One kernel module is put into the initramfs but not loaded: tests insmod and
# rmmod it to see module events.  It is the first of these that the kernel
# has as a loadable module without dependencies and with an exported
# function: small library modules with no hardware behind them (crc7 went
# away in 7.x, where crc_itu_t and crc8 remain).  The manifest records which
# (on_demand_module: name, guest path, one exported function).
ON_DEMAND_MODULE_CANDIDATES: list[str] = ["crc7", "crc_itu_t", "crc8", "crc4"]

# How each program in guest/programs is linked: (linkage, extra gcc flags).
# Static, non-PIE programs have fixed addresses that tests read from their
# symbol tables; the dynamic one exercises the loader and glibc.  A .c file
# not listed here is built dynamic with no extra flags.
STATIC_FLAGS = ["-static", "-no-pie", "-O1"]
DYNAMIC_FLAGS = ["-O2"]
STATIC32_FLAGS = ["-m32", "-static", "-nostdlib", "-ffreestanding", "-fno-pic", "-no-pie",
                  "-fno-stack-protector", "-O1"]
# Each static program is linked at an address of its own (not the default
# 4 MiB, where the static busybox lives), so an address-specific callback on
# one program's code never fires in another program.
PROGRAMS = {
    "probe": ("static", ["-Wl,-Ttext-segment=0x10000000"]),
    "static_loop": ("static", ["-Wl,-Ttext-segment=0x20000000"]),
    "fork_exec": ("static", ["-Wl,-Ttext-segment=0x30000000"]),
    "workload": ("static", ["-Wl,-Ttext-segment=0x40000000"]),
    "wx": ("static", ["-Wl,-Ttext-segment=0x50000000"]),
    "keys": ("static", ["-Wl,-Ttext-segment=0x60000000"]),
    "udp_peer": ("static", ["-Wl,-Ttext-segment=0x70000000"]),
    "syscall_seq": ("static", ["-Wl,-Ttext-segment=0x71000000", "-pthread"]),
    "sigrestart": ("static", ["-Wl,-Ttext-segment=0x73000000"]),
    "odd_names": ("static", ["-Wl,-Ttext-segment=0x74000000"]),
    "hostile_probe": ("static", ["-Wl,-Ttext-segment=0x75000000"]),
    "clock_probe": ("static", ["-Wl,-Ttext-segment=0x76000000"]),
    # A 32-bit program without libc (no i386 libraries needed in the guest).
    "syscall32": ("static32", ["-Wl,-Ttext-segment=0x72000000"]),
    "dyn_libc": ("dynamic", []),
    "dyn_wait": ("dynamic", []),
    "dl_cycle": ("dynamic", []),
    "fork_getpid": ("dynamic", []),
    # A shared library (installed as /usr/local/lib/<name>.so) that dl_cycle
    # loads with dlopen and unloads with dlclose.
    "libdltest": ("shared", ["-fPIC"]),
}
COMMON_CFLAGS = ["-Wall", "-Wextra"]
GUEST_PROGRAM_DIR = "/usr/local/bin"
GUEST_LIBRARY_DIR = "/usr/local/lib"

# Fixed timestamp for cpio entries and the gzip header: same inputs, same bytes.
IMAGE_MTIME = 0
GZIP_LEVEL = 6

MANIFEST_FORMAT = 1
OUTPUT_FILES = ("vmlinuz", "kernel-release", "initramfs.cpio.gz", KERNEL_ISF)


class BuildError(Exception):
    """A failure with a message meant for the person running the build."""


def load_cpio_module():
    # Loaded by file path rather than "import pyrebox.cpio" so that building
    # the guest never depends on (or runs) the rest of the pyrebox package.
    spec = importlib.util.spec_from_file_location("pyrebox_guest_cpio", CPIO_SRC)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def load_symbols_package():
    # By file path, like the cpio module: the ISF generator is a package of
    # its own (standard library + libbpf) and needs nothing else of pyrebox.
    init = SYMBOLS_SRC / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "pyrebox_guest_symbols", init, submodule_search_locations=[str(SYMBOLS_SRC)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def log(message: str) -> None:
    print(f"guest: {message}", flush=True)


def run(cmd: list[str], *, missing_hint: str, cwd: Path | None = None) -> str:
    """Run a command and return its stdout; raise BuildError on any failure."""
    env = dict(os.environ, LC_ALL="C")
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} not found; {missing_hint}") from None
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise BuildError(f"`{' '.join(cmd)}` failed (exit {proc.returncode}):\n{detail}")
    return proc.stdout


# --------------------------------------------------------------------- kernel


def apt_state_stamp() -> str:
    """Fingerprint of apt's package lists and configuration, from stat only.

    While it is unchanged, apt-cache would resolve the metapackage the same
    way, so the resolution stored in manifest.json can be reused without
    running apt-cache (which alone takes most of a second).
    """
    lists = Path("/var/lib/apt/lists")
    config = Path("/etc/apt")
    paths = sorted(lists.iterdir()) if lists.is_dir() else []  # not partial/: in-flight downloads
    paths += sorted(config.rglob("*")) if config.is_dir() else []
    entries = []
    for path in paths:
        if path.name != "lock" and path.is_file():
            st = path.stat()
            entries.append(f"{path}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()


def first_stanza_field(text: str, field: str) -> str | None:
    for line in text.split("\n\n", 1)[0].splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def resolve_kernel() -> dict:
    """Ask apt which linux-image-<release>-amd64 the metapackage's candidate
    (the default one, not backports, unless apt is configured otherwise)
    depends on, and at which version."""
    hint = "this builder needs Debian's apt (apt-cache)"
    try:
        shown = run(["apt-cache", "show", "--no-all-versions", KERNEL_METAPACKAGE], missing_hint=hint)
    except BuildError as error:
        raise BuildError(f"cannot resolve {KERNEL_METAPACKAGE}; run `apt-get update` and retry.\n{error}") from None
    depends = first_stanza_field(shown, "Depends")
    if not depends:
        raise BuildError(
            f"apt-cache knows no installable {KERNEL_METAPACKAGE}; run `apt-get update` and retry"
        )
    target = image_dependency(depends)
    if target is None:
        raise BuildError(f"{KERNEL_METAPACKAGE} depends on no linux-image-*-{KERNEL_ARCH} package: {depends}")
    package, version = target
    if version is None:
        record = run(["apt-cache", "show", "--no-all-versions", package], missing_hint=hint)
        version = first_stanza_field(record, "Version")
    if not version:
        raise BuildError(f"apt-cache has no installable version of {package}; run `apt-get update` and retry")
    return {"metapackage": KERNEL_METAPACKAGE, "package": package, "version": version}


def image_dependency(depends: str) -> tuple[str, str | None] | None:
    """The first linux-image-<release>-amd64 (or -unsigned) in a metapackage's
    Depends, with the version it pins (None if it pins none)."""
    wanted = re.compile(r"^(linux-image-\S+-" + KERNEL_ARCH + r"(?:-unsigned)?)\s*(?:\(\s*=\s*([^)\s]+)\s*\))?$")
    for clause in depends.split(","):
        for alternative in clause.split("|"):
            match = wanted.match(alternative.strip())
            if match:
                return match.group(1), match.group(2)
    return None


def kernel_packages(kernel: dict) -> list[dict]:
    """The packages the kernel is unpacked from, image package first: one for
    kernels that ship vmlinuz and modules in linux-image-*, several for those
    that split them (see resolve_spec)."""
    return kernel.get("packages") or [{"package": kernel["package"], "version": kernel["version"]}]


def deb_filename(package: dict) -> str:
    # apt-get download's naming: an epoch's ':' is written as '%3a'.
    return f"{package['package']}_{package['version'].replace(':', '%3a')}_{KERNEL_ARCH}.deb"


def machine_apt_download(specs: list[str], into: Path) -> None:
    run(["apt-get", "download", *specs], cwd=into, missing_hint="this builder needs Debian's apt-get")


def fetch_kernel_debs(out: Path, kernel: dict, download=machine_apt_download, retry_hint: str = "") -> list[Path]:
    """Download the kernel's packages into OUT unless those exact versions are there."""
    packages = kernel_packages(kernel)
    debs = [out / deb_filename(package) for package in packages]
    missing = [package for package, deb in zip(packages, debs) if not deb.is_file()]
    if missing:
        specs = [f"{package['package']}={package['version']}" for package in missing]
        log(f"downloading {' '.join(specs)}")
        retry_hint = retry_hint or f"Try `apt-get update` and then `apt-get download {' '.join(specs)}`."
        with tempfile.TemporaryDirectory(dir=out, prefix=".download-") as tmp:
            try:
                download(specs, Path(tmp))
            except Exception as error:  # BuildError or the archive's ArchiveError
                raise BuildError(
                    f"could not download the kernel package(s) {' '.join(specs)}.\n{retry_hint}\n{error}"
                ) from None
            for package in missing:
                fetched = Path(tmp) / deb_filename(package)
                if not fetched.is_file():
                    got = sorted(path.name for path in Path(tmp).glob("*.deb"))
                    raise BuildError(f"downloading {package['package']}={package['version']} gave {got}")
                os.replace(fetched, out / deb_filename(package))
    # Older kernels' packages are no longer needed.
    for stale in out.glob(f"linux-*_{KERNEL_ARCH}.deb"):
        if stale not in debs:
            stale.unlink()
    return debs


def extract_kernel(out: Path, debs: list[Path], kernel: dict) -> tuple[str, Path, Path]:
    """Unpack the packages into OUT/kernel (once per version), adding the
    modules.dep that Debian's postinst would have made.

    Returns (release, vmlinuz inside the tree, lib/modules/<release> dir).
    """
    tree = out / "kernel"
    marker = tree / ".pyrebox-unpacked"
    wanted = "".join(f"{package['package']} {package['version']}\n" for package in kernel_packages(kernel))
    if not (marker.is_file() and marker.read_text() == wanted):
        partial = out / "kernel.partial"
        shutil.rmtree(partial, ignore_errors=True)
        for deb in debs:
            log(f"unpacking {deb.name}")
            run(["dpkg-deb", "-x", str(deb), str(partial)], missing_hint="this builder needs Debian's dpkg-deb")
        write_modules_dep(locate_kernel_files(partial, debs)[2])
        (partial / marker.name).write_text(wanted)
        shutil.rmtree(tree, ignore_errors=True)
        os.replace(partial, tree)
    return locate_kernel_files(tree, debs)


def locate_kernel_files(tree: Path, debs: list[Path]) -> tuple[str, Path, Path]:
    """The kernel image and modules folder: boot/vmlinuz-<release> with
    lib/modules/<release> (Debian up to 6.x), or lib/modules/<release>/vmlinuz
    (7.x's linux-binary-*), under / or /usr."""
    names = ", ".join(deb.name for deb in debs)
    images = sorted((tree / "boot").glob("vmlinuz-*"))
    for lib in (tree / "lib" / "modules", tree / "usr" / "lib" / "modules"):
        images += sorted(lib.glob("*/vmlinuz"))
    if len(images) != 1:
        raise BuildError(f"expected one boot/vmlinuz-* or lib/modules/*/vmlinuz in {names}, found {len(images)}")
    image = images[0]
    release = image.name[len("vmlinuz-") :] if image.name != "vmlinuz" else image.parent.name
    for modules_dir in (tree / "lib" / "modules" / release, tree / "usr" / "lib" / "modules" / release):
        if modules_dir.is_dir() and any(modules_dir.rglob("*.ko*")):
            return release, image, modules_dir
    raise BuildError(f"{names} have no kernel modules in lib/modules/{release}")


# ------------------------------------------------------------------- programs


def program_sources() -> list[Path]:
    return sorted(PROGRAMS_SRC.glob("*.c"))


def compile_programs(out: Path) -> list[dict]:
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("gcc not found; install it with `apt-get install gcc libc6-dev`")
    bin_dir = out / "programs"
    bin_dir.mkdir(parents=True, exist_ok=True)
    programs = []
    for source in program_sources():
        name = source.stem
        linkage, extra_flags = PROGRAMS.get(name, ("dynamic", []))
        flags = {"static": STATIC_FLAGS, "static32": STATIC32_FLAGS,
                 "shared": [*DYNAMIC_FLAGS, "-shared"]}.get(linkage, DYNAMIC_FLAGS)
        flags = flags + extra_flags
        file_name = f"{name}.so" if linkage == "shared" else name
        target = bin_dir / file_name
        partial = bin_dir / f".{name}.partial"
        log(f"compiling {source.name} ({linkage})")
        try:
            run(
                [gcc, *COMMON_CFLAGS, *flags, "-o", str(partial), str(source)],
                missing_hint="install it with `apt-get install gcc libc6-dev`",
            )
        except BuildError as error:
            hint = " (static linking needs libc6-dev: `apt-get install libc6-dev`)" if linkage == "static" else ""
            raise BuildError(f"compiling {source.name} failed{hint}:\n{error}") from None
        os.replace(partial, target)
        programs.append(
            {
                "name": name,
                "linkage": linkage,
                "host_path": f"programs/{file_name}",
                "guest_path": f"{GUEST_LIBRARY_DIR if linkage == 'shared' else GUEST_PROGRAM_DIR}/{file_name}",
            }
        )
    return programs


def shared_libraries(binary: Path) -> list[str]:
    """Absolute paths, as ldd prints them, of what a dynamic binary loads
    (libraries and the ELF interpreter; the vDSO has no file)."""
    listing = run(["ldd", str(binary)], missing_hint="install it with `apt-get install libc-bin`")
    paths = []
    for line in listing.splitlines():
        line = line.strip()
        if "not found" in line:
            raise BuildError(f"ldd {binary.name}: {line}")
        if "=>" in line:
            candidate = line.split("=>", 1)[1].strip().split(" (", 1)[0].strip()
        else:
            candidate = line.split(" (", 1)[0].strip()
        if candidate.startswith("/"):
            paths.append(candidate)
    return paths


# -------------------------------------------------------------------- busybox


def find_busybox() -> Path:
    for candidate in ("/bin/busybox", shutil.which("busybox")):
        if candidate and os.access(candidate, os.X_OK):
            path = Path(candidate)
            if elf_has_interpreter(path):
                raise BuildError(
                    f"{path} is dynamically linked; the guest needs a static busybox: "
                    "`apt-get install busybox-static`"
                )
            return path
    raise BuildError("busybox not found; install it with `apt-get install busybox-static`")


def elf_has_interpreter(path: Path) -> bool:
    """True if a 64-bit little-endian ELF file has a PT_INTERP program header."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise BuildError(f"{path} is not a 64-bit little-endian ELF executable")
        phoff = int.from_bytes(header[0x20:0x28], "little")
        phentsize = int.from_bytes(header[0x36:0x38], "little")
        phnum = int.from_bytes(header[0x38:0x3A], "little")
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    PT_INTERP = 3
    return any(
        int.from_bytes(table[i * phentsize : i * phentsize + 4], "little") == PT_INTERP for i in range(phnum)
    )


def busybox_applets(busybox: Path) -> list[str]:
    listing = run([str(busybox), "--list-full"], missing_hint="`apt-get install busybox-static`")
    return [line.strip() for line in listing.splitlines() if line.strip()]


# ------------------------------------------------------------- kernel modules


def module_name(relpath: str) -> str:
    base = relpath.rsplit("/", 1)[-1]
    base = re.sub(r"\.ko(\.(xz|gz|zst))?$", "", base)
    return base.replace("-", "_")


def read_module(path: Path) -> bytes:
    # busybox insmod may lack decompression support, so modules go in plain.
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):
        raise BuildError(f"{path.name}: zstd-compressed modules are not supported by this builder")
    return data


def elf_sections(image: bytes) -> dict[str, tuple[int, bytes, int, int]]:
    """{name: (type, contents, link, index)} of a 64-bit little-endian ELF
    image's sections."""
    word = lambda offset, size: int.from_bytes(image[offset : offset + size], "little")  # noqa: E731
    shoff, shentsize, shnum, shstrndx = word(0x28, 8), word(0x3A, 2), word(0x3C, 2), word(0x3E, 2)
    headers = [shoff + i * shentsize for i in range(shnum)]
    strtab = headers[shstrndx]
    names = image[word(strtab + 0x18, 8) : word(strtab + 0x18, 8) + word(strtab + 0x20, 8)]
    sections = {}
    for index, header in enumerate(headers):
        name_offset = word(header, 4)
        name = names[name_offset : names.index(b"\0", name_offset)].decode()
        contents = image[word(header + 0x18, 8) : word(header + 0x18, 8) + word(header + 0x20, 8)]
        sections[name] = (word(header + 4, 4), contents, word(header + 0x28, 4), index)
    return sections


def elf_section(image: bytes, wanted: str) -> bytes:
    """Contents of the named section of a 64-bit little-endian ELF image."""
    return elf_sections(image).get(wanted, (0, b""))[1]


def exported_functions(image: bytes) -> list[str]:
    """Names of the functions a kernel module exports (EXPORT_SYMBOL*), sorted:
    the names in __ksymtab_strings that its symbol table says are functions."""
    sections = elf_sections(image)
    exported = {name.decode() for name in sections.get("__ksymtab_strings", (0, b""))[1].split(b"\0") if name}
    symtab = sections.get(".symtab")
    if symtab is None:
        return []
    by_index = {value[3]: value for value in sections.values()}
    strings = by_index.get(symtab[2], (0, b""))[1]
    STT_FUNC, entry = 2, 24
    functions = set()
    table = symtab[1]
    for offset in range(0, len(table) - entry + 1, entry):
        name_offset = int.from_bytes(table[offset : offset + 4], "little")
        if table[offset + 4] & 0xF == STT_FUNC and name_offset:
            name = strings[name_offset : strings.index(b"\0", name_offset)].decode()
            if name in exported:
                functions.add(name)
    return sorted(functions)


def write_modules_dep(modules_dir: Path) -> None:
    """Write modules.dep as depmod would, from each module's .modinfo
    "depends=" field: every dependency, transitively, listed so that loading
    them from last to first (as modprobe does) respects their own needs.

    Debian's kernel package ships no modules.dep (its postinst runs depmod,
    which may not be installed here).  Kept if one already exists.
    """
    target = modules_dir / "modules.dep"
    if target.exists():
        return
    modules = sorted(str(p.relative_to(modules_dir)) for p in modules_dir.rglob("*.ko*") if p.is_file())
    by_name = {module_name(relpath): relpath for relpath in modules}
    direct: dict[str, list[str]] = {}
    for relpath in modules:
        modinfo = elf_section(read_module(modules_dir / relpath), ".modinfo")
        names = []
        for field in modinfo.split(b"\0"):
            if field.startswith(b"depends="):
                names += [name.replace("-", "_") for name in field[len(b"depends=") :].decode().split(",") if name]
        missing = [name for name in names if name not in by_name]
        if missing:
            raise BuildError(f"{relpath} depends on modules not in the package: {missing}")
        direct[relpath] = [by_name[name] for name in names]
    lines = []
    for relpath in modules:
        lines.append(f"{relpath}: {' '.join(reversed(load_order(direct, [relpath])[:-1]))}".rstrip())
    target.write_text("\n".join(lines) + "\n")


def load_order(deps: dict[str, list[str]], wanted: list[str]) -> list[str]:
    """WANTED and everything they need, each once, dependencies first."""
    order: list[str] = []

    def visit(relpath: str, chain: tuple[str, ...]) -> None:
        if relpath in order:
            return
        if relpath in chain:
            raise BuildError(f"kernel module dependency cycle: {' -> '.join(chain + (relpath,))}")
        for dependency in deps.get(relpath, []):
            visit(dependency, chain + (relpath,))
        order.append(relpath)

    for relpath in wanted:
        visit(relpath, ())
    return order


def read_modules_dep(modules_dir: Path) -> dict[str, list[str]]:
    deps: dict[str, list[str]] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        if ":" in line:
            module, rest = line.split(":", 1)
            deps[module.strip()] = rest.split()
    return deps


def builtin_modules(modules_dir: Path) -> set[str]:
    """Names of the modules built into the kernel (its modules.builtin)."""
    path = modules_dir / "modules.builtin"
    if not path.is_file():
        return set()
    return {module_name(line.strip()) for line in path.read_text().splitlines() if line.strip()}


def resolve_modules(modules_dir: Path, names: list[str]) -> list[tuple[str, list[str]]]:
    """Module files (relative to lib/modules/<release>) for NAMES and their
    modules.dep dependencies, in load order, each with its modules.dep list."""
    deps = read_modules_dep(modules_dir)
    by_name = {module_name(relpath): relpath for relpath in deps}
    wanted = []
    for name in names:
        relpath = by_name.get(name.replace("-", "_"))
        if relpath is None:
            raise BuildError(f"kernel module {name!r} is neither in {modules_dir}/modules.dep nor built in "
                             "(modules.builtin): misspelt, or not in this kernel?")
        wanted.append(relpath)
    return [(relpath, deps.get(relpath, [])) for relpath in load_order(deps, wanted)]


def choose_on_demand_module(modules_dir: Path, candidates: list[str]) -> tuple[str, str, str]:
    """(name, file relative to MODULES_DIR, exported function) of the first
    of CANDIDATES that this kernel has as a loadable module with no dependencies."""
    deps = read_modules_dep(modules_dir)
    by_name = {module_name(relpath): relpath for relpath in deps}
    for name in candidates:
        relpath = by_name.get(name)
        if relpath is not None and not deps[relpath]:
            functions = exported_functions(read_module(modules_dir / relpath))
            if functions:
                return name, relpath, functions[0]
    raise BuildError(
        f"none of the on-demand test modules {candidates} is a loadable module without dependencies "
        f"in {modules_dir}: add one that this kernel has to ON_DEMAND_MODULE_CANDIDATES in guest/build.py"
    )


def add_kernel_modules(
    archive, modules_dir: Path, release: str, names: list[str], on_demand_candidates: list[str] = (),
    agent_names: list[str] = (),
) -> dict:
    """Put NAMES and AGENT_NAMES that are not built in and the chosen
    on-demand module (plus dependencies) under /lib/modules/<release>
    (uncompressed, so busybox insmod takes them), with a matching
    modules.dep; the load order of NAMES goes to /etc/pyrebox/modules, that
    of AGENT_NAMES (without what NAMES loads) to /etc/pyrebox/agent-modules.

    Returns {"load": guest paths in load order, "builtin": NAMES built in,
    "agent": agent module paths in load order, "on_demand": {name, path,
    symbol} or None}."""
    builtin = builtin_modules(modules_dir)
    skipped = [name for name in names if name.replace("-", "_") in builtin]
    names = [name for name in names if name not in skipped]
    agent_names = [name for name in agent_names if name.replace("-", "_") not in builtin]
    on_demand = None
    if on_demand_candidates:
        name, relpath, symbol = choose_on_demand_module(modules_dir, list(on_demand_candidates))
        on_demand = {"name": name, "relpath": relpath, "symbol": symbol}
    plain = lambda relpath: re.sub(r"\.ko\.(xz|gz|zst)$", ".ko", relpath)  # noqa: E731
    base = f"/lib/modules/{release}"
    insmod_order, agent_order, dep_lines, added = [], [], [], set()
    groups = ((names, insmod_order), ([on_demand["name"]] if on_demand else [], None),
              (agent_names, agent_order))
    for wanted, order in groups:
        for relpath, dependencies in resolve_modules(modules_dir, list(wanted)) if wanted else []:
            if relpath not in added:
                added.add(relpath)
                archive.add_file(f"{base}/{plain(relpath)}", read_module(modules_dir / relpath))
                dep_lines.append(f"{plain(relpath)}: {' '.join(plain(d) for d in dependencies)}".rstrip())
            path = f"{base}/{plain(relpath)}"
            if order is not None and path not in insmod_order and path not in order:
                order.append(path)
    if added:
        archive.add_file(f"{base}/modules.dep", ("\n".join(dep_lines) + "\n").encode())
    if insmod_order:
        archive.add_file("/etc/pyrebox/modules", ("\n".join(insmod_order) + "\n").encode())
    if agent_order:
        archive.add_file("/etc/pyrebox/agent-modules", ("\n".join(agent_order) + "\n").encode())
    if on_demand:
        on_demand = {"name": on_demand["name"], "path": f"{base}/{plain(on_demand['relpath'])}",
                     "symbol": on_demand["symbol"]}
    return {"load": insmod_order, "builtin": skipped, "agent": agent_order, "on_demand": on_demand}


# ------------------------------------------------------------------ initramfs


def add_host_file_as_is(archive, path: str, depth: int = 0) -> None:
    """Copy a host file to the same guest path; a symlink is copied as a
    symlink (same target) and its target is copied too."""
    if depth > 8:
        raise BuildError(f"too many levels of symlinks at {path}")
    if path in archive:
        return
    if os.path.islink(path):
        target = os.readlink(path)
        archive.add_symlink(path, target)
        resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
        add_host_file_as_is(archive, resolved, depth + 1)
    else:
        archive.add_file(path, source=path, mode=stat.S_IMODE(os.stat(path).st_mode))


def build_initramfs(
    cpio, busybox: Path, programs: list[dict], out: Path, libraries: list[str], modules_dir: Path, release: str
):
    archive = cpio.CpioArchive(mtime=IMAGE_MTIME)
    for directory in ("bin", "sbin", "usr/bin", "usr/sbin", "usr/local/bin", "etc", "proc", "sys", "dev", "run", "mnt"):
        archive.add_directory(directory, 0o755)
    archive.add_directory("root", 0o700)
    archive.add_directory("tmp", 0o1777)
    # The kernel opens /dev/console for /init before anything is mounted.
    archive.add_char_device("dev/console", 5, 1, 0o600)
    archive.add_char_device("dev/null", 1, 3, 0o666)

    archive.add_file("init", source=INIT_SRC, mode=0o755)
    archive.add_file("bin/busybox", source=busybox, mode=0o755)
    for applet in busybox_applets(busybox):
        if applet != "bin/busybox":
            archive.add_symlink(applet, "/bin/busybox")

    archive.add_file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n")
    archive.add_file("etc/group", b"root:x:0:\n")

    for program in programs:
        archive.add_file(program["guest_path"], source=out / program["host_path"], mode=0o755)
    for library in libraries:
        add_host_file_as_is(archive, library)

    modules = add_kernel_modules(archive, modules_dir, release, KERNEL_MODULES, ON_DEMAND_MODULE_CANDIDATES,
                                 AGENT_MODULES)
    return archive, modules


def write_gzip(data: bytes, target: Path) -> None:
    partial = target.with_name(f".{target.name}.partial")
    with open(partial, "wb") as raw:
        # filename="" and a fixed mtime keep the gzip header reproducible.
        with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=raw, mtime=IMAGE_MTIME) as gz:
            gz.write(data)
        # The kernel only recognises an uncompressed archive appended after
        # this one if it starts at a multiple of 4 bytes; it skips NUL padding
        # between archives (and gzip readers ignore trailing NULs).
        raw.write(b"\0" * (-raw.tell() % 4))
    os.replace(partial, target)


# ------------------------------------------------------------ up-to-date check


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def stat_fingerprint(path: str | Path | None) -> str:
    """size and mtime of a host file (following symlinks), or 'missing'."""
    if path is None:
        return "missing"
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def inputs_hash(kernel: dict, libraries: list[str], busybox_path: str | None) -> str:
    """Hash of everything the outputs are made from."""
    sources = [Path(__file__).resolve(), INIT_SRC, CPIO_SRC, *sorted(p for p in PROGRAMS_SRC.iterdir() if p.is_file())]
    sources += symbols_sources()
    facts = {
        "format": MANIFEST_FORMAT,
        "sources": {str(p.relative_to(REPO)): file_digest(p) for p in sources},
        "kernel": [kernel["package"], kernel["version"]],
        "libraries": {lib: stat_fingerprint(lib) for lib in sorted(libraries)},
        "busybox": [busybox_path, stat_fingerprint(busybox_path)],
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def symbols_sources() -> list[Path]:
    return sorted(SYMBOLS_SRC.glob("*.py"))


def kernel_isf_inputs(kernel: dict) -> str:
    """Hash of what the ISF is made from: the kernel package and the generator."""
    facts = {
        "kernel": [kernel["package"], kernel["version"]],
        "generator": {p.name: file_digest(p) for p in symbols_sources()},
    }
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def build_kernel_isf(out: Path, vmlinuz: Path, kernel: dict, previous: dict) -> dict:
    """OUT/kernel.isf.json.xz for VMLINUZ, reused when its inputs are unchanged."""
    inputs = kernel_isf_inputs(kernel)
    known = previous.get("kernel_isf", {})
    if known.get("inputs_hash") == inputs and (out / KERNEL_ISF).is_file():
        return known
    log(f"generating {KERNEL_ISF}")
    symbols = load_symbols_package()
    try:
        result = symbols.generate(vmlinuz)
        symbols.write_isf(result.isf, out / KERNEL_ISF)
    except Exception as error:  # noqa: BLE001 - any failure of the generator is this kernel's
        # One line: the generator's own message (or, for a failure it did not
        # foresee, the exception's type) and what the image was.
        detail = " ".join(str(error).split()) or type(error).__name__
        if not isinstance(error, (symbols.KernelImageError, OSError)):
            detail = f"{type(error).__name__}: {detail}"
        raise BuildError(
            f"cannot generate the kernel's ISF from {vmlinuz.name} of {kernel['package']} {kernel['version']} "
            f"(python/pyrebox/symbols: {detail})"
        ) from None
    return {
        "file": KERNEL_ISF,
        "inputs_hash": inputs,
        "generator": symbols.GENERATOR_VERSION,
        "types": result.user_types,
        "symbols": result.symbols,
    }


def read_manifest(out: Path) -> dict | None:
    try:
        return json.loads((out / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def outputs_present(out: Path, manifest: dict) -> bool:
    paths = [out / name for name in OUTPUT_FILES]
    paths += [out / program["host_path"] for program in manifest.get("programs", [])]
    paths.append(out / manifest.get("kernel", {}).get("modules_dir", "kernel/missing"))
    return all(path.exists() for path in paths)


def busybox_candidate() -> str | None:
    # Cheap lookup for the hash; find_busybox() does the real checks.
    for candidate in ("/bin/busybox", shutil.which("busybox")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def write_manifest(out: Path, manifest: dict) -> None:
    partial = out / ".manifest.json.partial"
    partial.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    os.replace(partial, out / "manifest.json")


# ----------------------------------------------------------------------- main


def build(
    out: Path,
    force: bool,
    kernel: dict,
    previous: dict,
    apt_stamp: str,
    download=machine_apt_download,
    retry_hint: str = "",
) -> str:
    """Build the guest of KERNEL in OUT unless it is up to date; returns its
    kernel release."""
    started = time.monotonic()
    if not force and previous:
        wanted = inputs_hash(kernel, previous.get("host_libraries", []), busybox_candidate())
        if previous.get("inputs_hash") == wanted and outputs_present(out, previous):
            print(f"guest: up to date ({out}, kernel {previous.get('kernel_release')})", flush=True)
            return previous["kernel_release"]

    cpio = load_cpio_module()
    busybox = find_busybox()
    programs = compile_programs(out)  # before the download: fail fast without gcc
    debs = fetch_kernel_debs(out, kernel, download, retry_hint)
    release, vmlinuz, modules_dir = extract_kernel(out, debs, kernel)
    if kernel.get("release") and kernel["release"] != release:
        raise BuildError(f"{kernel['package']} holds kernel {release}, not {kernel['release']} as its name says")

    libraries: list[str] = []
    for program in programs:
        if program["linkage"] in ("dynamic", "shared"):
            for library in shared_libraries(out / program["host_path"]):
                if library not in libraries:
                    libraries.append(library)
    # The host programs and what they load, copied as they are (host files
    # count as inputs like the libraries).
    for binary, package in HOST_PROGRAMS:
        if not os.path.isfile(binary):
            raise BuildError(f"{binary} not found; install it with `apt-get install {package}`")
        for path in [binary, *shared_libraries(Path(binary))]:
            if path not in libraries:
                libraries.append(path)

    archive, modules = build_initramfs(cpio, busybox, programs, out, libraries, modules_dir, release)
    write_gzip(archive.to_bytes(), out / "initramfs.cpio.gz")

    shutil.copyfile(vmlinuz, out / ".vmlinuz.partial")
    os.replace(out / ".vmlinuz.partial", out / "vmlinuz")
    (out / "kernel-release").write_text(release + "\n")
    kernel_isf = build_kernel_isf(out, vmlinuz, kernel, {} if force else previous)

    record = {key: value for key, value in kernel.items() if key not in ("packages", "release")}
    if len(debs) > 1:
        record["debs"] = [deb.name for deb in debs]
    manifest = {
        "format": MANIFEST_FORMAT,
        "inputs_hash": inputs_hash(kernel, libraries, str(busybox)),
        "apt_state": apt_stamp,
        "kernel": dict(record, deb=debs[0].name, modules_dir=str(modules_dir.relative_to(out))),
        "kernel_release": release,
        "vmlinuz": "vmlinuz",
        "initramfs": "initramfs.cpio.gz",
        "initramfs_entries": len(archive),
        "programs": programs,
        "host_libraries": libraries,
        "busybox": str(busybox),
        "kernel_modules": modules["load"],
        "kernel_modules_builtin": modules["builtin"],
        "agent_modules": modules["agent"],
        "on_demand_module": modules["on_demand"],
        "kernel_isf": kernel_isf,
    }
    write_manifest(out, manifest)
    size = (out / "initramfs.cpio.gz").stat().st_size
    log(
        f"built {out} in {time.monotonic() - started:.1f}s: kernel {kernel['package']} {kernel['version']} "
        f"({release}), initramfs {size // 1024} KiB"
    )
    return release


def locked(folder: Path, name: str = ".build.lock"):
    """An exclusive lock of FOLDER (one build at a time per output directory:
    parallel test runs); released when the returned file is closed."""
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / name, "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def build_default(out: Path, force: bool) -> None:
    """The default guest: the kernel of the machine's apt candidate of the metapackage."""
    with locked(out):
        previous = read_manifest(out) or {}
        apt_stamp = apt_state_stamp()
        if previous.get("apt_state") == apt_stamp and previous.get("kernel", {}).get("version"):
            kernel = {key: previous["kernel"][key] for key in ("metapackage", "package", "version")}
        else:
            kernel = resolve_kernel()
        build(out, force, kernel, previous, apt_stamp)


# ------------------------------------------------ guests of other Debian kernels


def load_archive_module():
    spec = importlib.util.spec_from_file_location("pyrebox_guest_debian_archive", ARCHIVE_SRC)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


IMAGE_PACKAGE = re.compile(r"^linux-image-(\S+-" + KERNEL_ARCH + r")(-unsigned)?$")


def kernel_source(record: dict) -> bool:
    """True if a package record comes from Debian's kernel sources (linux, linux-signed-<arch>)."""
    source = record.get("Source", record.get("Package", "")).split()[0]
    return source == "linux" or source.startswith("linux-signed-")


def resolve_spec(archive, spec: str) -> dict:
    """What --guest-kernel SPEC means in the private apt: {spec, suite,
    metapackage, package, version, release, packages}.

    SPEC is a suite (its linux-image-amd64) or a kernel package name.  The
    packages are the image package and what it depends on at exactly its
    version from the kernel's sources: nothing more up to 6.x, whose
    linux-image-* holds the kernel and its modules; 7.x's linux-image-* is
    empty and depends on linux-binary-* (vmlinuz), linux-modules-* and
    linux-base-* (modules.builtin and the other module lists)."""
    suites = archive.SUITES
    usage = (f"--guest-kernel {spec}: expected a Debian suite ({', '.join(suites)}) or a kernel "
             f"package name such as linux-image-6.12.95+deb12-amd64")
    suite = metapackage = None
    if spec in suites:
        suite, metapackage = spec, KERNEL_METAPACKAGE
        versions = [version for version, where in archive.madison(metapackage) if where == suite]
        if not versions:
            raise BuildError(f"Debian's {suite} has no {metapackage} in the package lists; "
                             f"retry with `guest/build.py --refresh --guest-kernel {spec}`")
        record = archive.show(f"{metapackage}={versions[0]}")
        target = image_dependency((record or {}).get("Depends", ""))
        if target is None:
            raise BuildError(f"{metapackage} {versions[0]} of {suite} depends on no linux-image-*-{KERNEL_ARCH}")
        package, version = target
    elif re.fullmatch(r"linux-image-[0-9][A-Za-z0-9.+~-]*", spec):
        # Its highest version in any suite (madison lists the newest first).
        package, version = spec, next((version for version, _ in archive.madison(spec)), None)
    else:
        raise BuildError(usage)
    record = archive.show(f"{package}={version}") if version else None
    if record is None:
        raise BuildError(
            f"Debian's archive ({', '.join(suites)}) has no package {package}"
            + (f" at version {version}" if version else "")
            + "; the kernels it has: `APT_CONFIG=build/apt/apt.conf apt-cache search '^linux-image-[0-9]'` "
            f"(or retry with `guest/build.py --refresh --guest-kernel {spec}`)"
        )
    version = record["Version"]
    match = IMAGE_PACKAGE.match(package)
    if not match or not kernel_source(record):
        raise BuildError(f"{package} is not a Debian kernel image package (linux-image-<release>-{KERNEL_ARCH})")
    packages = [{"package": package, "version": version}]
    pinned = re.compile(r"^(linux-\S+)\s*\(\s*=\s*([^)\s]+)\s*\)$")
    queue = [record]
    while queue:
        for clause in queue.pop(0).get("Depends", "").split(","):
            for alternative in clause.split("|"):
                found = pinned.match(alternative.strip())
                if not found or found.group(2) != version:
                    continue
                if any(known["package"] == found.group(1) for known in packages):
                    continue
                dependency = archive.show(f"{found.group(1)}={version}")
                if dependency is None:
                    raise BuildError(f"{package} {version} needs {found.group(1)} {version}, which the "
                                     f"archive does not have; retry with --refresh")
                if kernel_source(dependency):
                    packages.append({"package": found.group(1), "version": version})
                    queue.append(dependency)
    return {
        "spec": spec,
        "suite": suite,
        "metapackage": metapackage,
        "package": package,
        "version": version,
        "release": match.group(1),
        "packages": packages,
    }


def read_specs() -> dict:
    try:
        return json.loads((GUESTS_DIR / SPECS_FILE).read_text())
    except (OSError, ValueError):
        return {}


def record_spec(spec: str, record: dict) -> None:
    with locked(GUESTS_DIR, ".specs.lock"):
        specs = read_specs()
        specs[spec] = record
        partial = GUESTS_DIR / f".{SPECS_FILE}.partial"
        partial.write_text(json.dumps(specs, indent=2, sort_keys=True) + "\n")
        os.replace(partial, GUESTS_DIR / SPECS_FILE)


def build_spec(spec: str, force: bool, refresh: bool) -> str:
    """The guest of --guest-kernel SPEC in build/guests/<release>; returns the release.

    The spec's resolution (build/guests/specs.json) is reused while the private
    package lists are unchanged and less than a day old: then the up-to-date
    check runs no subprocess."""
    debian = load_archive_module()
    archive = debian.DebianArchive(APT_DIR, log=log)
    known = read_specs().get(spec)
    kernel = None
    if known and not refresh and archive.lists_fresh() and known.get("lists") == archive.state_stamp():
        kernel = known["kernel"]
    else:
        try:
            archive.ensure_lists(refresh)
        except debian.ArchiveError as error:
            if refresh or not known:
                raise BuildError(str(error)) from None
            log(f"warning: could not refresh Debian's package lists; {spec} stays {known['release']} "
                f"(resolved {known['resolved']}): {' '.join(str(error).split())}")
            kernel = known["kernel"]
        if kernel is None:
            try:
                kernel = resolve_spec(archive, spec)
            except debian.ArchiveError as error:
                raise BuildError(str(error)) from None
    out = GUESTS_DIR / kernel["release"]
    with locked(out):
        release = build(
            out, force, kernel, read_manifest(out) or {}, archive.state_stamp(), download=archive.download,
            retry_hint=f"Try `guest/build.py --refresh --guest-kernel {spec}`.",
        )
    if known is None or known.get("kernel") != kernel or known.get("lists") != archive.state_stamp():
        record_spec(spec, {
            "release": release,
            "dir": str(out.relative_to(GUESTS_DIR.parent)),
            "kernel": kernel,
            "lists": archive.state_stamp(),
            "resolved": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        })
    return release


def main(argv: list[str] | None = None) -> int:
    suites = load_archive_module().SUITES
    parser = argparse.ArgumentParser(
        description="Build the PyREBox default guest (kernel + initramfs), or guests of other Debian kernels."
    )
    parser.add_argument("--out", type=Path, help="output directory of the default guest (default: build/guest)")
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    parser.add_argument(
        "--guest-kernel", action="append", default=[], metavar="SPEC",
        help="build the guest of another Debian kernel in build/guests/<release> instead: a suite "
             f"({', '.join(suites)}: its current {KERNEL_METAPACKAGE}) or a kernel package "
             "name (linux-image-6.12.95+deb12-amd64); repeatable",
    )
    parser.add_argument(
        "--refresh", action="store_true",
        help="with --guest-kernel: fetch Debian's package lists again (otherwise once a day)",
    )
    args = parser.parse_args(argv)
    if args.guest_kernel and args.out:
        parser.error("--out is for the default guest; a --guest-kernel guest goes to build/guests/<release>")
    if args.refresh and not args.guest_kernel:
        parser.error("--refresh goes with --guest-kernel (the default guest uses the machine's apt)")
    if not args.guest_kernel:
        try:
            build_default((args.out or DEFAULT_OUT).resolve(), args.force)
        except BuildError as error:
            print(f"guest/build.py: error: {error}", file=sys.stderr)
            return 1
        return 0
    failed = []
    for number, spec in enumerate(dict.fromkeys(args.guest_kernel)):
        try:
            build_spec(spec, args.force, args.refresh and number == 0)
        except BuildError as error:
            # The other kernels are still built; the exit status tells.
            print(f"guest/build.py: error: --guest-kernel {spec}: {error}", file=sys.stderr)
            failed.append(spec)
    if failed and len(args.guest_kernel) > 1:
        print(f"guest/build.py: error: not built: {' '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
