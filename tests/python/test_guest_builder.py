"""guest/build.py --guest-kernel SPEC without booting: the private apt
configuration, what a SPEC resolves to (against a fake archive with Debian's
package records, and against the real one when its lists were fetched),
paths.guest, the module choices and the builder's up-to-date check."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from pyrebox import paths

GUEST_SRC = os.path.join(ROOT, "guest")


def load(name: str):
    spec = importlib.util.spec_from_file_location(f"test_{name}", os.path.join(GUEST_SRC, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


builder = load("build")
debian = load("debian_archive")


# ------------------------------------------------------- the private apt config


def test_apt_config_keeps_everything_under_its_folder(tmp_path):
    archive = debian.DebianArchive(tmp_path / "apt")
    archive.write_config()
    root = str(tmp_path / "apt")
    conf = (tmp_path / "apt" / "apt.conf").read_text()
    dirs = [line for line in conf.splitlines() if line.startswith("Dir::")]
    # Every folder and file apt would take from the machine is a private one.
    for key in ("State", "State::lists", "State::status", "Cache", "Etc", "Etc::sourcelist",
                "Etc::sourceparts", "Etc::preferences", "Etc::preferencesparts", "Etc::parts",
                "Etc::trusted", "Etc::trustedparts", "Log"):
        (line,) = [d for d in dirs if d.startswith(f"Dir::{key} ")]
        assert f'"{root}/' in line, line
    assert 'Dir::Etc::main "/dev/null";' in conf
    assert 'APT::Architecture "amd64";' in conf and 'Acquire::Languages "none";' in conf
    assert (tmp_path / "apt" / "state" / "status").read_text() == ""
    assert os.listdir(tmp_path / "apt" / "etc" / "apt.conf.d") == []
    assert archive.config_current()


def test_source_list_has_every_suite_signed_and_only_two_unchecked_dates():
    lines = debian.source_list().splitlines()
    assert [line.split()[-2] for line in lines] == list(debian.SUITES)
    for line in lines:
        assert line.startswith("deb [arch=amd64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg")
        assert line.endswith(" main") and " http://deb.debian.org/debian " in line
        assert ("check-valid-until=no" in line) == (line.split()[-2] in ("sid", "experimental"))


def test_apt_sees_only_the_private_configuration(tmp_path):
    archive = debian.DebianArchive(tmp_path / "apt")
    archive.write_config()
    dump = subprocess.run(["apt-config", "dump"], env=archive.env(), capture_output=True,
                          text=True, check=True).stdout
    assert f'Dir::Etc::parts "{tmp_path}/apt/etc/apt.conf.d/";' in dump
    assert '"/etc/' not in dump  # no folder or file of the machine's /etc (its apt configuration)
    policy = subprocess.run(["apt-cache", "policy"], env=archive.env(), capture_output=True,
                            text=True, check=True).stdout
    # No lists fetched into this folder: apt knows no source's packages yet.
    assert "deb.debian.org" not in policy


def test_lists_are_stale_without_a_fetch(tmp_path):
    archive = debian.DebianArchive(tmp_path / "apt")
    assert archive.lists_age() is None and not archive.lists_fresh()
    archive.write_config()
    (tmp_path / "apt" / "state" / "updated").write_text("now\n")
    assert archive.lists_fresh()
    old = time.time() - debian.MAX_LIST_AGE_S - 60
    os.utime(tmp_path / "apt" / "state" / "updated", (old, old))
    assert not archive.lists_fresh()


# ------------------------------------------------ spec resolution, fake archive


class FakeArchive:
    """Package records as Debian publishes them (fields used by the builder)."""
    SUITES = debian.SUITES

    def __init__(self, records: dict[str, dict], madison: dict[str, list[tuple[str, str]]]):
        self.records, self._madison = records, madison

    def madison(self, package):
        listed = self._madison.get(package, [])
        if not listed and package in self.records:
            listed = [(self.records[package]["Version"], "sid")]
        return listed

    def show(self, spec):
        name, _, version = spec.partition("=")
        record = self.records.get(spec) or self.records.get(name)
        return record if record and record["Version"] == version else None


def split_kernel_archive() -> FakeArchive:
    """A 7.x kernel: an empty linux-image-* that depends on linux-binary-*
    (vmlinuz), linux-modules-* and linux-base-*, next to a 6.x one."""
    v7, r7 = "7.2.13-1", "7.2.13+deb14-amd64"
    v6, r6 = "6.12.95-1~bpo12+1", "6.12.95+deb12-amd64"
    records = {
        f"linux-image-amd64={v7}": {"Package": "linux-image-amd64", "Source": "linux-signed-amd64 (7.2.13+1)",
                                    "Version": v7, "Depends": f"linux-base-amd64 (= {v7}), linux-image-{r7} (= {v7})"},
        f"linux-image-amd64={v6}": {"Package": "linux-image-amd64", "Source": "linux-signed-amd64 (6.12.95+1~bpo12+1)",
                                    "Version": v6, "Depends": f"linux-image-{r6} (= {v6})"},
        f"linux-image-{r7}": {
            "Package": f"linux-image-{r7}", "Source": "linux-signed-amd64 (7.2.13+1)", "Version": v7,
            "Depends": f"dracut | initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool, linux-base-{r7} (= {v7}), "
                       f"linux-binary-{r7} (= {v7}), linux-modules-{r7} (= {v7})"},
        f"linux-base-{r7}": {"Package": f"linux-base-{r7}", "Source": "linux", "Version": v7},
        f"linux-binary-{r7}": {"Package": f"linux-binary-{r7}", "Source": "linux-signed-amd64 (7.2.13+1)",
                               "Version": v7, "Depends": f"linux-base-{r7} (= {v7})"},
        f"linux-modules-{r7}": {"Package": f"linux-modules-{r7}", "Source": "linux", "Version": v7,
                                "Depends": f"kmod, linux-base-{r7} (= {v7})"},
        f"linux-image-{r6}": {"Package": f"linux-image-{r6}", "Source": "linux-signed-amd64 (6.12.95+1~bpo12+1)",
                              "Version": v6, "Depends": "kmod, initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool"},
        "linux-headers-6.12.95+deb12-amd64": {"Package": "linux-headers-6.12.95+deb12-amd64", "Source": "linux",
                                              "Version": v6},
    }
    return FakeArchive(records, {"linux-image-amd64": [(v7, "sid"), (v6, "bookworm-backports")]})


def test_a_suite_is_its_linux_image_amd64_and_7x_brings_its_split_packages():
    kernel = builder.resolve_spec(split_kernel_archive(), "sid")
    assert kernel == {
        "spec": "sid", "suite": "sid", "metapackage": "linux-image-amd64",
        "package": "linux-image-7.2.13+deb14-amd64", "version": "7.2.13-1", "release": "7.2.13+deb14-amd64",
        "packages": [{"package": f"linux-{kind}-7.2.13+deb14-amd64", "version": "7.2.13-1"}
                     for kind in ("image", "base", "binary", "modules")],
    }


def test_a_6x_package_is_one_deb():
    kernel = builder.resolve_spec(split_kernel_archive(), "linux-image-6.12.95+deb12-amd64")
    assert (kernel["suite"], kernel["metapackage"], kernel["release"]) == (None, None, "6.12.95+deb12-amd64")
    assert kernel["packages"] == [{"package": "linux-image-6.12.95+deb12-amd64", "version": "6.12.95-1~bpo12+1"}]
    assert builder.resolve_spec(split_kernel_archive(), "bookworm-backports")["packages"] == kernel["packages"]


@pytest.mark.parametrize("spec, message", [
    ("trixie", "Debian's trixie has no linux-image-amd64 in the package lists; retry with "
               "`guest/build.py --refresh --guest-kernel trixie`"),
    ("linux-image-9.9.9-amd64", "Debian's archive (bullseye, bookworm, bookworm-backports, trixie, sid, "
                                "experimental) has no package linux-image-9.9.9-amd64"),
    ("linux-headers-6.12.95+deb12-amd64", "--guest-kernel linux-headers-6.12.95+deb12-amd64: expected a Debian "
                                          "suite (bullseye, bookworm, bookworm-backports, trixie, sid, "
                                          "experimental) or a kernel package name"),
    ("stretch", "--guest-kernel stretch: expected a Debian suite"),
])
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(builder.BuildError) as error:
        builder.resolve_spec(split_kernel_archive(), spec)
    assert str(error.value).startswith(message)


# ------------------------------------------------ spec resolution, real archive

def fetched_archive():
    archive = debian.DebianArchive(builder.APT_DIR)
    if archive.lists_age() is None:
        pytest.skip("Debian's package lists were not fetched into build/apt: "
                    "run 'guest/build.py --guest-kernel bullseye'")
    return archive


def test_every_suite_resolves_to_its_metapackage_version():
    archive = fetched_archive()
    madison = dict((suite, version) for version, suite in archive.madison("linux-image-amd64"))
    assert sorted(madison) == sorted(debian.SUITES)
    for suite in ("bullseye", "sid"):
        kernel = builder.resolve_spec(archive, suite)
        # Debian's metapackage and the image it depends on share the version.
        assert kernel["version"] == madison[suite], suite
        assert kernel["package"] == f"linux-image-{kernel['release']}"
        assert kernel["packages"][0] == {"package": kernel["package"], "version": kernel["version"]}
        # The same kernel named by its package.
        by_name = builder.resolve_spec(archive, kernel["package"])
        assert by_name["packages"] == kernel["packages"], suite


# -------------------------------------------------------------- paths.guest


@pytest.fixture
def guests(tmp_path, monkeypatch):
    """A build folder with one built --guest-kernel guest (files faked)."""
    build = tmp_path / "build"
    folder = build / "guests" / "9.8.7-amd64"
    folder.mkdir(parents=True)
    manifest = {"kernel_release": "9.8.7-amd64", "vmlinuz": "vmlinuz", "initramfs": "initramfs.cpio.gz",
                "kernel_isf": {"file": "kernel.isf.json.xz"},
                "on_demand_module": {"name": "crc8", "path": "/lib/modules/9.8.7-amd64/kernel/lib/crc8.ko",
                                     "symbol": "crc8"}}
    for name in ("vmlinuz", "initramfs.cpio.gz", "kernel.isf.json.xz"):
        (folder / name).write_bytes(b"")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    (build / "guests" / "specs.json").write_text(json.dumps({"sid": {"release": "9.8.7-amd64",
                                                                     "dir": "guests/9.8.7-amd64"}}))
    monkeypatch.setattr(paths, "BUILD", str(build))
    monkeypatch.setattr(paths, "GUESTS", str(build / "guests"))
    monkeypatch.setattr(paths, "GUEST_SPECS", str(build / "guests" / "specs.json"))
    return folder


def test_paths_guest_finds_a_spec_and_a_release(guests):
    for spec in ("sid", "9.8.7-amd64"):
        built = paths.guest(spec)
        assert built.dir == str(guests)
        assert built.vmlinuz == str(guests / "vmlinuz")
        assert built.initramfs == str(guests / "initramfs.cpio.gz")
        assert built.isf == str(guests / "kernel.isf.json.xz")
        assert built.release == "9.8.7-amd64"
        assert built.on_demand_module["name"] == "crc8"


def test_paths_guest_names_the_command_that_builds_it(guests):
    with pytest.raises(paths.SetupError) as error:
        paths.guest("trixie")
    assert str(error.value) == (f"the guest of --guest-kernel trixie is not built: run "
                                f"'guest/build.py --guest-kernel trixie' in {paths.ROOT}")
    os.unlink(guests / "initramfs.cpio.gz")
    with pytest.raises(paths.SetupError) as error:
        paths.guest("sid")
    assert "is incomplete" in str(error.value) and "initramfs.cpio.gz is missing" in str(error.value)


def test_run_boots_the_spec_guest_with_its_symbols(guests, monkeypatch):
    from pyrebox import qemu, run
    monkeypatch.setattr(qemu, "find", lambda arch="x86_64": f"qemu-system-{arch}")
    monkeypatch.setattr(paths, "require", lambda path, what: path)
    runner = run.Runner(run.RunOptions(guest_kernel="sid"))
    cmd = runner.command_line("/r", plugin_fd=None)
    assert cmd[cmd.index("-kernel") + 1] == str(guests / "vmlinuz")
    assert f",isf={guests / 'kernel.isf.json.xz'}" in cmd[cmd.index("-plugin") + 1]
    assert runner.qemu_env()[paths.GUEST_ENV] == str(guests)
    with pytest.raises(run.RunError, match="--guest-kernel sid picks the kernel of PyREBox's guest"):
        run.validate(run.RunOptions(guest_kernel="sid", extra=["-kernel", "/boot/vmlinuz"]))


# ----------------------------------------------------------------- modules


def modules_dir(tmp_path, dep: str, builtin: str = ""):
    (tmp_path / "modules.dep").write_text(dep)
    (tmp_path / "modules.builtin").write_text(builtin)
    return tmp_path


def test_builtin_modules_are_skipped_and_absent_ones_refused(tmp_path):
    folder = modules_dir(tmp_path, "kernel/drivers/net/virtio_net.ko.xz: kernel/net/core/failover.ko.xz\n"
                                   "kernel/net/core/failover.ko.xz:\n",
                         "kernel/drivers/virtio/virtio_pci.ko\n")
    assert builder.builtin_modules(folder) == {"virtio_pci"}
    assert builder.resolve_modules(folder, ["virtio_net"]) == [
        ("kernel/net/core/failover.ko.xz", []),
        ("kernel/drivers/net/virtio_net.ko.xz", ["kernel/net/core/failover.ko.xz"])]
    with pytest.raises(builder.BuildError, match="kernel module 'e1000' is neither in .*modules.dep nor built in"):
        builder.resolve_modules(folder, ["e1000"])


def test_no_on_demand_candidate_is_an_error(tmp_path):
    folder = modules_dir(tmp_path, "kernel/lib/crc7.ko: kernel/lib/other.ko\nkernel/lib/other.ko:\n")
    with pytest.raises(builder.BuildError, match=r"none of the on-demand test modules \['crc7', 'crc8'\]"):
        builder.choose_on_demand_module(folder, ["crc7", "crc8"])


def test_an_isf_failure_is_one_line(tmp_path, monkeypatch):
    class Symbols:
        class KernelImageError(Exception):
            pass

        @staticmethod
        def generate(vmlinuz):
            raise ValueError("no kallsyms\ntables here")

    monkeypatch.setattr(builder, "load_symbols_package", lambda: Symbols)
    kernel = {"package": "linux-image-7.2.13+deb14-amd64", "version": "7.2.13-1"}
    with pytest.raises(builder.BuildError) as error:
        builder.build_kernel_isf(tmp_path, tmp_path / "vmlinuz", kernel, {})
    assert str(error.value) == ("cannot generate the kernel's ISF from vmlinuz of linux-image-7.2.13+deb14-amd64 "
                                "7.2.13-1 (python/pyrebox/symbols: ValueError: no kallsyms tables here)")


# ------------------------------------------------------- built guests (if any)


def built_specs() -> dict:
    try:
        with open(paths.GUEST_SPECS) as f:
            return json.load(f)
    except OSError:
        return {}


def test_a_built_spec_is_up_to_date_without_a_subprocess(monkeypatch, capsys):
    specs = built_specs()
    archive = debian.DebianArchive(builder.APT_DIR)

    def current(record):
        try:
            with open(os.path.join(paths.BUILD, record["dir"], "manifest.json")) as f:
                manifest = json.load(f)
        except OSError:
            return False
        return manifest["inputs_hash"] == builder.inputs_hash(
            record["kernel"], manifest["host_libraries"], builder.busybox_candidate())

    fresh = [spec for spec, record in specs.items()
             if archive.lists_fresh() and record.get("lists") == archive.state_stamp() and current(record)]
    if not fresh:
        pytest.skip("no --guest-kernel guest built by this builder from today's package lists: "
                    "run 'guest/build.py --guest-kernel bullseye'")
    spec = fresh[0]
    # A rebuild would compile and unpack; resolving the spec would run apt.
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"subprocess.run{a}"))
    monkeypatch.setattr(subprocess, "Popen", lambda *a, **k: pytest.fail(f"subprocess.Popen{a}"))
    assert builder.main(["--guest-kernel", spec]) == 0
    release = specs[spec]["release"]
    assert capsys.readouterr().out == (f"guest: up to date ({os.path.join(paths.GUESTS, release)}, "
                                       f"kernel {release})\n")


def test_built_guests_follow_the_module_rules():
    specs = built_specs()
    if not specs:
        pytest.skip("no --guest-kernel guest is built: run 'guest/build.py --guest-kernel bullseye'")
    for spec, record in specs.items():
        folder = os.path.join(paths.BUILD, record["dir"])
        manifest = json.load(open(os.path.join(folder, "manifest.json")))
        assert manifest["kernel_release"] == record["release"] == open(
            os.path.join(folder, "kernel-release")).read().strip()
        modules_dir_ = os.path.join(folder, manifest["kernel"]["modules_dir"])
        builtin = builder.builtin_modules(builder.Path(modules_dir_))
        assert manifest["kernel_modules_builtin"] == [m for m in builder.KERNEL_MODULES if m in builtin]
        loaded = {builder.module_name(path) for path in manifest["kernel_modules"]}
        assert set(builder.KERNEL_MODULES) - builtin <= loaded
        on_demand = manifest["on_demand_module"]
        name, relpath, symbol = builder.choose_on_demand_module(builder.Path(modules_dir_),
                                                                builder.ON_DEMAND_MODULE_CANDIDATES)
        assert on_demand == {"name": name, "symbol": symbol,
                             "path": f"/lib/modules/{record['release']}/" + relpath.removesuffix(".xz")}


# ------------------------------------------- when a spec is resolved again


class ListsArchive:
    """The archive as build_spec sees it: lists fresh or stale, a fetch that
    works or fails; counts fetches."""

    def __init__(self, fresh: bool, fetch_fails: bool = False):
        self.fresh, self.fetch_fails, self.fetches, self.stamp = fresh, fetch_fails, 0, "lists-1"

    def lists_fresh(self):
        return self.fresh

    def state_stamp(self):
        return self.stamp

    def ensure_lists(self, refresh=False):
        if self.fresh and not refresh:
            return False
        if self.fetch_fails:
            raise debian.ArchiveError("cannot fetch Debian's package lists: no network")
        self.fetches, self.stamp, self.fresh = self.fetches + 1, f"lists-{self.fetches + 2}", True
        return True

    def download(self, specs, into):
        raise AssertionError("no download in these tests")


@pytest.fixture
def spec_builder(tmp_path, monkeypatch):
    """build_spec with a fake archive, resolution and build: what it resolves
    and builds, and the specs.json it keeps."""
    calls = {"resolved": [], "built": []}
    state = {"archive": None}

    class Module:
        ArchiveError = debian.ArchiveError
        DebianArchive = staticmethod(lambda root, log: state["archive"])

    def resolve(archive, spec):
        calls["resolved"].append(spec)
        return {"spec": spec, "package": "linux-image-9.8.7-amd64", "version": "9.8.7-1", "release": "9.8.7-amd64"}

    def build(out, force, kernel, previous, apt_stamp, download, retry_hint):
        calls["built"].append((out.name, kernel["version"]))
        return kernel["release"]

    monkeypatch.setattr(builder, "GUESTS_DIR", builder.Path(tmp_path))
    monkeypatch.setattr(builder, "load_archive_module", lambda: Module)
    monkeypatch.setattr(builder, "resolve_spec", resolve)
    monkeypatch.setattr(builder, "build", build)
    return state, calls


def test_a_known_spec_is_not_resolved_again_while_the_lists_are_unchanged(spec_builder):
    state, calls = spec_builder
    state["archive"] = ListsArchive(fresh=False)
    assert builder.build_spec("sid", force=False, refresh=False) == "9.8.7-amd64"
    assert builder.read_specs()["sid"]["lists"] == "lists-2"
    # The folder, relative to build/ (here the test's folder plays build/guests).
    assert builder.read_specs()["sid"]["dir"] == f"{builder.GUESTS_DIR.name}/9.8.7-amd64"
    builder.build_spec("sid", force=False, refresh=False)  # same lists: the recorded kernel
    assert calls["resolved"] == ["sid"] and state["archive"].fetches == 1
    builder.build_spec("sid", force=False, refresh=True)  # --refresh: fetched and resolved again
    assert calls["resolved"] == ["sid", "sid"] and state["archive"].fetches == 2
    state["archive"].fresh = False  # a day later: the same
    builder.build_spec("sid", force=False, refresh=False)
    assert calls["resolved"] == ["sid"] * 3 and state["archive"].fetches == 3
    assert calls["built"] == [("9.8.7-amd64", "9.8.7-1")] * 4


def test_without_the_network_a_known_spec_keeps_its_kernel(spec_builder, capsys):
    state, calls = spec_builder
    state["archive"] = ListsArchive(fresh=False)
    builder.build_spec("sid", force=False, refresh=False)
    state["archive"] = ListsArchive(fresh=False, fetch_fails=True)
    assert builder.build_spec("sid", force=False, refresh=False) == "9.8.7-amd64"
    assert calls["resolved"] == ["sid"]
    assert ("guest: warning: could not refresh Debian's package lists; sid stays 9.8.7-amd64 (resolved "
            in capsys.readouterr().out)
    # An unknown spec, or --refresh, needs the lists.
    for spec, refresh in (("trixie", False), ("sid", True)):
        with pytest.raises(builder.BuildError, match="cannot fetch Debian's package lists: no network"):
            builder.build_spec(spec, force=False, refresh=refresh)
