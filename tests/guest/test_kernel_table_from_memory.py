"""A kernel nobody gave a table for: with `--isf memory` the plugin builds
the ISF from the running kernel's own .BTF and kallsyms in guest memory
(pyrebox.kernel_tables), caches it per kernel banner, and introspection
works from it at once; the next boot of the same kernel takes the cached
table. Checked on the default guest's kernel (6.1: kallsyms relative to a
base) and on the newest test kernel (sid's 7.x: self-relative kallsyms),
against the table built from each kernel's vmlinuz."""

from __future__ import annotations

import glob
import json
import lzma
import os
import shutil

import pytest

from conftest import command_outputs, key_values, run_pyrebox, write
from pyrebox import paths

pytestmark = pytest.mark.guest

SCRIPT = os.path.join(os.path.dirname(__file__), "scripts", "process_events.py")
CHILDREN = 2
COMMAND = f"fork_exec {CHILDREN} /usr/local/bin/static_loop 10"


def load(path: str) -> dict:
    with lzma.open(path, "rt") as f:
        return json.load(f)


def boot(work, cache, spec: str | None):
    conf = write(work / "pyrebox.conf", "[MODULES]\nscripts.process_events: True\n")
    args = ["run", "--conf", conf, "--timeout", "300", "--isf", "memory", "--cmd", COMMAND]
    if spec is not None:
        args += ["--guest-kernel", spec]
    result = run_pyrebox(*args, cwd=str(work), env={**os.environ, "XDG_CACHE_HOME": str(cache)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    lines = [l for l in result.stdout.splitlines() if l.startswith("[scripts.process_events] RESULT ")]
    assert len(lines) == 1, result.stdout[-3000:]
    report = json.loads(lines[0].split("RESULT ", 1)[1])
    assert report["errors"] == [], report["errors"]
    return result.stdout, report, command_outputs(result.stdout)


@pytest.fixture(scope="module", params=["default", "sid"])
def runs(request, tmp_path_factory):
    spec = None if request.param == "default" else request.param
    try:
        built = paths.guest(spec)
    except paths.SetupError as e:
        pytest.skip(f"{e} (or 'make test', which builds it)")
    work = tmp_path_factory.mktemp("table_from_memory")
    write(work / "scripts" / "__init__.py", "")
    shutil.copy(SCRIPT, work / "scripts" / "process_events.py")
    cache = work / "cache"
    first = boot(work, cache, spec)
    tables = glob.glob(str(cache / "pyrebox" / "kernels" / "*.isf.json.xz"))
    second = boot(work, cache, spec) if spec is None else None
    return built, first, second, tables


def test_the_table_built_from_memory_is_the_kernel_files_own(runs):
    built, (stdout, _, _), _, tables = runs
    assert len(tables) == 1, tables
    assert os.path.basename(tables[0]).startswith(built.release + "-")
    assert f"Linux {built.release}: no symbol table given; building one from guest memory" in stdout
    assert f"Linux {built.release}: built {tables[0]} in " in stdout
    ours, reference = load(tables[0]), load(built.isf)
    for part in ("base_types", "user_types", "enums", "symbols"):
        assert ours[part] == reference[part], part
    assert ours["symbols"]["linux_banner"] == reference["symbols"]["linux_banner"]


def test_process_events_of_the_boot_arrive_with_the_built_table(runs):
    _, (_, report, outputs), _, _ = runs
    lines, rc = outputs[1]
    assert rc == 0
    parent = int(key_values(lines)["parent"])
    children = [int(l.split()[0].split("=")[1]) for l in lines if l.startswith("child=")]
    assert len(children) == CHILDREN
    creates = [e for e in report["events"] if e["ev"] == "create"]
    assert [e["pid"] for e in creates if e["name"] == "static_loop"] == children
    assert parent in [e["pid"] for e in creates if e["name"] == "fork_exec"]


def test_the_next_boot_takes_the_cached_table(runs):
    built, _, second, tables = runs
    if second is None:
        pytest.skip("the cache is checked on the default guest's kernel")
    stdout, report, outputs = second
    assert f"Linux {built.release}: symbol table from the cache ({tables[0]})" in stdout
    assert "building one from guest memory" not in stdout
    children = [int(l.split()[0].split("=")[1]) for l in outputs[1][0] if l.startswith("child=")]
    creates = [e for e in report["events"] if e["ev"] == "create"]
    assert [e["pid"] for e in creates if e["name"] == "static_loop"] == children
