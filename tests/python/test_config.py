"""pyrebox.conf parsing and validation (no QEMU)."""

import pytest

from conftest import write
from pyrebox import config


def test_no_file_is_an_empty_configuration():
    cfg = config.load(None)
    assert cfg.path is None and cfg.startup_modules == []


def test_modules_in_file_order_true_ones_load(tmp_path):
    path = write(tmp_path / "pyrebox.conf", """
        [MODULES]
        scripts.Second: True
        scripts.off: False
        scripts.first: true

        [VOL]
        profile: LinuxDebian

        [SYMBOL_CACHE]
        path: /tmp/cache
        """)
    cfg = config.load(path)
    assert cfg.startup_modules == ["scripts.Second", "scripts.first"]
    assert cfg.modules == {"scripts.Second": True, "scripts.off": False, "scripts.first": True}
    assert cfg.sections["VOL"] == {"profile": "LinuxDebian"}
    assert cfg.folder == str(tmp_path)


def test_unknown_key_is_named(tmp_path):
    path = write(tmp_path / "pyrebox.conf", """
        [VOL]
        profil: Win7SP1x86
        """)
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert "unknown key 'profil' in section [VOL]" in str(err.value)
    assert "valid keys: profile" in str(err.value)


def test_unknown_section_is_named(tmp_path):
    path = write(tmp_path / "pyrebox.conf", "[MODULE]\nscripts.x: True\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert "unknown section [MODULE]" in str(err.value)


def test_module_value_must_be_boolean(tmp_path):
    path = write(tmp_path / "pyrebox.conf", "[MODULES]\nscripts.x: yes please\n")
    with pytest.raises(config.ConfigError) as err:
        config.load(path)
    assert "scripts.x" in str(err.value) and "not True or False" in str(err.value)


def test_missing_file_and_bad_syntax(tmp_path):
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(str(tmp_path / "nope.conf"))
    path = write(tmp_path / "bad.conf", "no section header\n")
    with pytest.raises(config.ConfigError, match="not a valid INI file"):
        config.load(path)


def test_symbols_isf_relative_to_the_configuration(tmp_path):
    path = write(tmp_path / "pyrebox.conf", "[SYMBOLS]\nisf: k/kernel.isf.json.xz\n")
    assert config.load(path).isf == str(tmp_path / "k" / "kernel.isf.json.xz")
    assert config.load(write(tmp_path / "b.conf", "[SYMBOLS]\nisf: /abs.json\n")).isf \
        == "/abs.json"
    assert config.load(None).isf is None
    with pytest.raises(config.ConfigError, match="valid keys: isf"):
        config.load(write(tmp_path / "c.conf", "[SYMBOLS]\npath: x\n"))
