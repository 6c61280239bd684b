"""ScriptManager's loading, unloading and reloading, and the api functions
on it, outside QEMU (callbacks on a fake _pyrebox)."""

from __future__ import annotations

import sys

import pytest

from conftest import write
from fake_pyrebox import fake_native  # noqa: F401 - the fixture
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


LEAKY = '''
from pyrebox.callbacks import CallbackManager

managers = []


def initialize_callbacks(module_hdl, printer):
    printer("initialising")
    m = CallbackManager(module_hdl)
    managers.append(m)
    m.add_callback(CallbackManager.INSN_BEGIN_CB, lambda *a: None, name="a")
    m.add_callback(CallbackManager.BLOCK_BEGIN_CB, lambda *a: None, name="b")
    {fail}


def clean():
    {clean}
'''


def test_unloading_removes_the_callbacks_clean_forgot(manager, fake_native):  # noqa: F811
    m, pkg, folder, _ = manager
    write(folder / pkg / "leaky.py", LEAKY.format(fail="", clean="pass"))
    assert m.load(f"{pkg}.leaky") == 1
    assert sorted(fake_native.registered) == [1, 2]
    assert m.owner_name(1) == f"script {pkg}.leaky" and m.owner_name(2) is None
    m.unload(1)
    assert fake_native.registered == {} and sorted(fake_native.unregistered) == [1, 2]
    assert m.owner_name(1) is None  # not loaded any more
    assert fake_native.lines() == [
        f"[{pkg}.leaky] initialising",
        f"[pyrebox] loaded script {pkg}.leaky (handle 1)",
        f"[pyrebox] warning: script {pkg}.leaky left 2 callback(s) registered after clean(); "
        f"they were removed",
        f"[pyrebox] unloaded script {pkg}.leaky (handle 1)"]


def test_a_clean_that_removes_its_callbacks_gets_no_warning(manager, fake_native):  # noqa: F811
    m, pkg, folder, _ = manager
    write(folder / pkg / "tidy.py", LEAKY.format(fail="", clean="managers[0].clean()"))
    m.load(f"{pkg}.tidy")
    m.unload(1)
    assert fake_native.registered == {}
    assert not any("warning" in line for line in fake_native.lines())


def test_a_failed_initialisation_removes_its_callbacks_quietly(manager, fake_native):  # noqa: F811
    m, pkg, folder, _ = manager
    write(folder / pkg / "broken.py", LEAKY.format(fail='raise RuntimeError("no")', clean="pass"))
    assert m.load(f"{pkg}.broken") is None
    assert fake_native.registered == {} and sorted(fake_native.unregistered) == [1, 2]
    assert m.known() == []
    lines = fake_native.lines()
    assert lines[1] == (f"[pyrebox] error: script {pkg}.broken raised in initialize_callbacks; "
                        f"it is not loaded:")
    assert lines[-1] == "[pyrebox] error: RuntimeError: no"
    assert not any("warning" in line for line in lines)


def test_script_api_works_on_the_manager_it_is_given(manager, monkeypatch, capsys):
    from pyrebox import script_api
    m, pkg, _, _ = manager
    monkeypatch.setattr(script_api, "_current", None)
    assert script_api.manager() is None
    with pytest.raises(RuntimeError, match="not running inside QEMU"):
        script_api.get_loaded_modules()
    script_api.use(m)
    assert script_api.manager() is m
    assert script_api.import_module(f"{pkg}.user") == 2
    assert script_api.unload_module(1) is False  # required by user
    assert script_api.unload_module(2) is True
    assert script_api.reload_module(2) is True
    assert script_api.get_loaded_modules() == [
        {"module_handle": 1, "module_name": f"{pkg}.base", "is_loaded": True},
        {"module_handle": 2, "module_name": f"{pkg}.user", "is_loaded": True}]
    assert script_api.unload_module(7) is False
    err = capsys.readouterr().err
    assert f"[pyrebox] error: script {pkg}.base (handle 1) is required by {pkg}.user" in err
    assert "[pyrebox] error: no script with handle 7 (known: " in err


def test_module_names_complete_one_package_level_at_a_time(manager):
    m, pkg, folder, _ = manager
    write(folder / "not-a-module.py", "")
    write(folder / "notes.txt", "")
    (folder / "empty_dir").mkdir()
    assert m.module_names(pkg[:5]) == [f"{pkg}."]
    assert m.module_names(f"{pkg}.") == [f"{pkg}.base", f"{pkg}.user"]
    assert m.module_names(f"{pkg}.u") == [f"{pkg}.user"]
    assert m.module_names("no-such.") == []
    assert m.module_names("") == [f"{pkg}."]
