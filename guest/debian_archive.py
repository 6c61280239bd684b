"""The project's own view of Debian's archive: a private apt configuration.

    archive = DebianArchive(REPO / "build" / "apt")
    archive.ensure_lists()                 # apt-get update when needed
    archive.madison("linux-image-amd64")   # [(version, suite), ...]
    archive.show("linux-image-amd64=6.12.95-1~bpo12+1")
    archive.download(["pkg=version"], into)

Everything apt keeps (its lists, its cache, an empty dpkg status, the source
list) lives under one folder of the build (ROOT, normally build/apt), and
every apt command runs with APT_CONFIG pointing at ROOT/apt.conf.  That file
replaces the machine's configuration: apt reads APT_CONFIG before its
configuration parts, and this one names its own (empty) parts folder, its own
source list and preferences, so nothing of the machine's /etc/apt (sources,
pins, architectures, proxies of its own) is read, and nothing of the machine
is changed: neither /etc/apt, nor its package lists, nor its dpkg state.

The sources are Debian's main archive for every suite a guest kernel may come
from (SUITES).  apt never installs anything with this configuration; it only
resolves versions and downloads .deb files, whose checksums come from the
signed Release files.

Python 3.11 standard library only (like build.py, which imports it).
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import time
from pathlib import Path

ARCHIVE_URL = "http://deb.debian.org/debian"
KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
ARCH = "amd64"

# The suites a guest kernel can come from, oldest first.  Each is in the
# source list with the main component.  "Stale" suites are published with a
# short Valid-Until (sid, experimental: about a week); a mirror that lags
# behind serves them past that date, and apt would then refuse the whole
# suite as expired.  For those apt is told not to check the date: the
# Release file's signature is still checked (signed-by), so what is used is
# still Debian's, at worst a few days old, which only matters for security
# updates, and a guest kernel for analysis needs none.
SUITES = ("bullseye", "bookworm", "bookworm-backports", "trixie", "sid", "experimental")
UNCHECKED_VALID_UNTIL = ("sid", "experimental")

# The lists are fetched again when older than this (or on request).
MAX_LIST_AGE_S = 24 * 3600


class ArchiveError(Exception):
    """apt failed or knows nothing of what was asked; the message says what to do."""


def source_list() -> str:
    lines = []
    for suite in SUITES:
        options = [f"arch={ARCH}", f"signed-by={KEYRING}"]
        if suite in UNCHECKED_VALID_UNTIL:
            options.append("check-valid-until=no")
        lines.append(f"deb [{' '.join(options)}] {ARCHIVE_URL} {suite} main")
    return "\n".join(lines) + "\n"


def apt_conf(root: Path) -> str:
    """The configuration of ROOT: every path apt would take from the machine
    is a private one."""
    return "\n".join(
        [
            f'Dir::State "{root}/state/";',
            f'Dir::State::lists "{root}/state/lists/";',
            f'Dir::State::status "{root}/state/status";',
            f'Dir::Cache "{root}/cache/";',
            # No cache of source packages (none are listed; it would be a
            # copy of the binary cache, about 100 MB).
            'Dir::Cache::srcpkgcache "";',
            f'Dir::Etc "{root}/etc/";',
            'Dir::Etc::main "/dev/null";',
            f'Dir::Etc::sourcelist "{root}/etc/sources.list";',
            f'Dir::Etc::sourceparts "{root}/etc/sources.list.d/";',
            f'Dir::Etc::preferences "{root}/etc/preferences";',
            f'Dir::Etc::preferencesparts "{root}/etc/preferences.d/";',
            f'Dir::Etc::parts "{root}/etc/apt.conf.d/";',
            f'Dir::Etc::trusted "{root}/etc/trusted.gpg";',
            f'Dir::Etc::trustedparts "{root}/etc/trusted.gpg.d/";',
            f'Dir::Log "{root}/log/";',
            'APT::Architecture "amd64";',
            'APT::Architectures { "amd64"; };',
            'Acquire::Languages "none";',
            # Lists stay compressed as fetched (tens of MB instead of hundreds).
            'Acquire::GzipIndexes "true";',
            'Acquire::PDiffs "false";',
            'Acquire::Retries "3";',
            "",
        ]
    )


class DebianArchive:
    SUITES = SUITES

    def __init__(self, root: Path, log=print):
        self.root = Path(root).resolve()
        self.log = log
        self.conf = self.root / "apt.conf"
        self.lists = self.root / "state" / "lists"

    # ------------------------------------------------------------ set-up

    def write_config(self) -> None:
        """Writes ROOT's files (only those whose text changed)."""
        files = {
            self.conf: apt_conf(self.root),
            self.root / "etc" / "sources.list": source_list(),
            self.root / "etc" / "preferences": "",
            self.root / "state" / "status": "",
        }
        for folder in ("etc/sources.list.d", "etc/preferences.d", "etc/apt.conf.d", "etc/trusted.gpg.d",
                       "state/lists/partial", "cache/archives/partial", "log"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        for path, text in files.items():
            if not (path.is_file() and path.read_text() == text):
                partial = path.with_name(f".{path.name}.partial")
                partial.write_text(text)
                os.replace(partial, path)

    def config_current(self) -> bool:
        """True if ROOT's configuration is this module's (two small reads, no apt)."""
        try:
            return (self.conf.read_text() == apt_conf(self.root)
                    and (self.root / "etc" / "sources.list").read_text() == source_list())
        except OSError:
            return False

    def lists_age(self) -> float | None:
        """Seconds since the lists were last fetched, None if they never were
        with this configuration (from stat and two small reads: no apt)."""
        stamp = self.root / "state" / "updated"
        if not (self.config_current() and stamp.is_file()):
            return None
        return max(0.0, time.time() - stamp.stat().st_mtime)

    def lists_fresh(self) -> bool:
        age = self.lists_age()
        return age is not None and age < MAX_LIST_AGE_S

    def state_stamp(self) -> str:
        """Changes whenever the lists are fetched (a stat and a small read)."""
        stamp = self.root / "state" / "updated"
        try:
            st = stamp.stat()
        except OSError:
            return "missing"
        return f"{st.st_mtime_ns}:{stamp.read_text().strip()}"

    def ensure_lists(self, refresh: bool = False) -> bool:
        """Fetches the lists when missing, older than a day, or on REFRESH.
        Returns True if it fetched them."""
        if not refresh and self.lists_fresh():
            return False
        self.write_config()
        with open(self.root / ".update.lock", "w") as lock:
            # One update at a time (parallel builds); the one that waited
            # finds the lists fresh.
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not refresh and self.lists_fresh():
                return False
            self.log(f"fetching Debian's package lists ({', '.join(SUITES)})")
            started = time.monotonic()
            self.apt(["apt-get", "update", "-q"], what="fetch Debian's package lists")
            missing = [suite for suite in SUITES if not self._has_lists(suite)]
            if missing:
                raise ArchiveError(
                    f"apt-get update fetched no package list for {', '.join(missing)} "
                    f"from {ARCHIVE_URL}; check the network and retry with --refresh"
                )
            stamp = self.root / "state" / "updated"
            stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) + "\n")
            self.log(f"package lists fetched in {time.monotonic() - started:.1f}s")
        return True

    def _has_lists(self, suite: str) -> bool:
        tag = f"_dists_{suite}_main_binary-{ARCH}_Packages"
        return any(tag in path.name for path in self.lists.iterdir())

    # ------------------------------------------------------------- queries

    def env(self) -> dict:
        return dict(os.environ, APT_CONFIG=str(self.conf), LC_ALL="C")

    def apt(self, cmd: list[str], *, what: str, cwd: Path | None = None, check: bool = True) -> str:
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=self.env(), capture_output=True, text=True)
        except FileNotFoundError:
            raise ArchiveError(f"{cmd[0]} not found: this needs Debian's apt") from None
        if check and proc.returncode != 0:
            detail = (proc.stderr or proc.stdout).strip()
            raise ArchiveError(f"cannot {what}: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n{detail}")
        return proc.stdout

    def madison(self, package: str) -> list[tuple[str, str]]:
        """(version, suite) of every version of PACKAGE the archive has."""
        out = self.apt(["apt-cache", "madison", package], what=f"look up {package}", check=False)
        found = []
        for line in out.splitlines():
            parts = [part.strip() for part in line.split("|")]
            if len(parts) == 3 and parts[0] == package and parts[2].endswith(" Packages"):
                # "<url> <suite>/main amd64 Packages"
                suite = parts[2].split()[1].split("/", 1)[0]
                found.append((parts[1], suite))
        return found

    def show(self, spec: str) -> dict[str, str] | None:
        """The fields of one package record: SPEC is "name=version" or "name"
        (its candidate: slower, apt then works out every package's policy);
        None if apt has no such package."""
        cmd = ["apt-cache", "show", spec] if "=" in spec else ["apt-cache", "show", "--no-all-versions", spec]
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True)
        if proc.returncode != 0 or not proc.stdout.strip():
            return None
        return parse_stanza(proc.stdout.split("\n\n", 1)[0])

    def download(self, specs: list[str], into: Path) -> list[Path]:
        """apt-get download SPECS into the folder INTO; returns the new .deb files."""
        before = set(into.glob("*.deb"))
        self.apt(["apt-get", "download", "-q", *specs], what=f"download {' '.join(specs)}", cwd=into)
        return sorted(set(into.glob("*.deb")) - before)


def parse_stanza(text: str) -> dict[str, str]:
    """A deb822 paragraph as {field: value}; continuation lines are joined
    with newlines."""
    fields: dict[str, str] = {}
    name = None
    for line in text.splitlines():
        if line[:1] in (" ", "\t") and name:
            fields[name] += "\n" + line.strip()
        elif ":" in line:
            name, value = line.split(":", 1)
            fields[name] = value.strip()
    return fields
