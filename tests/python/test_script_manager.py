"""ScriptManager's unload and reload, outside QEMU (no callbacks involved)."""

from __future__ import annotations

import sys

import pytest

from conftest import write
from pyrebox.scripts import ScriptError, ScriptManager

BASE = '''
VERSION = "{version}"
log = []


def initialize_callbacks(module_hdl, printer):
    log.append(("init", module_hdl, VERSION))


def clean():
    import builtins
    builtins.CLEANED.append(("{name}", VERSION))
'''


@pytest.fixture
def manager(tmp_path, monkeypatch):
    import builtins
    monkeypatch.setattr(builtins, "CLEANED", [], raising=False)
    pkg = f"pkg_{tmp_path.name.replace('-', '_')}"
    write(tmp_path / pkg / "__init__.py", "")
    write(tmp_path / pkg / "base.py", BASE.format(version="v1", name="base"))
    write(tmp_path / pkg / "user.py", f'requirements = ["{pkg}.base"]\n'
          + BASE.format(version="v1", name="user"))
    m = ScriptManager(search_path=[str(tmp_path)])
    yield m, pkg, tmp_path, builtins.CLEANED
    for name in list(sys.modules):
        if name.startswith(pkg):
            del sys.modules[name]


def test_requirements_load_first_and_handles_are_kept(manager):
    m, pkg, _, _ = manager
    assert m.load(f"{pkg}.user") == 2
    assert [(s.handle, s.name) for s in m.known()] == [(1, f"{pkg}.base"), (2, f"{pkg}.user")]


def test_a_required_script_is_not_unloaded(manager):
    m, pkg, _, cleaned = manager
    m.load(f"{pkg}.user")
    with pytest.raises(ScriptError, match=rf"required by {pkg}\.user.*nothing was unloaded"):
        m.unload(1)
    assert cleaned == []
    m.unload(2)
    m.unload(1)
    assert cleaned == [("user", "v1"), ("base", "v1")]
    assert [s.is_loaded for s in m.known()] == [False, False]
    with pytest.raises(ScriptError, match="is not loaded"):
        m.unload(1)
    with pytest.raises(ScriptError, match="no script with handle 9"):
        m.unload(9)


def test_reload_runs_the_edited_code_with_the_same_handle(manager):
    m, pkg, folder, cleaned = manager
    m.load(f"{pkg}.base")
    write(folder / pkg / "base.py", BASE.format(version="v2", name="base"))
    assert m.reload(1) == 1
    module = sys.modules[f"{pkg}.base"]
    assert module.VERSION == "v2" and module.log == [("init", 1, "v2")]
    assert cleaned == [("base", "v1")]
    assert m.load(f"{pkg}.base") == 1  # loaded already: not loaded twice
