"""pyrebox.conf: PyREBox's INI configuration, read and validated.

The format is PyREBox's: `[MODULES]` lists scripts (`dotted.name: True|False`,
True ones load at start-up); `[VOL]`, `[AGENT]` and `[SYMBOL_CACHE]` are
accepted with their PyREBox keys; `[SYMBOLS] isf` names the guest kernel's
symbol table (ISF) and `debug_path` the host folders of guest files' symbol
files (pyrebox.symbol_files); `[TRACE]` configures `pyrebox trace`. Every section and key is checked: an unknown
one is an error naming it and what is valid, so a typo never silently
disables something. docs/configuration.md documents every key.
"""

from __future__ import annotations

import configparser
import dataclasses
import os

# Section -> allowed keys; None means any key (MODULES: one key per script).
SCHEMA: dict[str, tuple[str, ...] | None] = {
    "MODULES": None,
    "VOL": ("profile",),
    "AGENT": ("name", "conf"),
    "SYMBOL_CACHE": ("path",),
    "SYMBOLS": ("isf", "debug_path"),
    "TRACE": ("program", "output", "filter", "json"),
}

_BOOLEANS = {"true": True, "false": False}


class ConfigError(Exception):
    """A pyrebox.conf problem; the message names the file, section and key."""


@dataclasses.dataclass
class Config:
    path: str | None = None  # None: no configuration file
    modules: dict[str, bool] = dataclasses.field(default_factory=dict)
    sections: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)

    @property
    def folder(self) -> str | None:
        return os.path.dirname(os.path.abspath(self.path)) if self.path else None

    @property
    def startup_modules(self) -> list[str]:
        """Scripts to load at start-up, in file order."""
        return [name for name, enabled in self.modules.items() if enabled]

    @property
    def isf(self) -> str | None:
        """[SYMBOLS] isf, relative paths taken from the configuration's folder."""
        value = self.sections.get("SYMBOLS", {}).get("isf", "").strip()
        if not value:
            return None
        value = os.path.expanduser(value)
        if not os.path.isabs(value) and self.folder:
            value = os.path.join(self.folder, value)
        return value


    @property
    def debug_path(self) -> list[str] | None:
        """[SYMBOLS] debug_path: folders separated by ':', relative ones
        taken from the configuration's folder; None when not given."""
        value = self.sections.get("SYMBOLS", {}).get("debug_path")
        if value is None:
            return None
        folders = []
        for folder in value.split(":"):
            folder = os.path.expanduser(folder.strip())
            if folder:
                if not os.path.isabs(folder) and self.folder:
                    folder = os.path.join(self.folder, folder)
                folders.append(folder)
        return folders


def load(path: str | None) -> Config:
    """Reads and validates `path`; None or "" gives an empty configuration."""
    if not path:
        return Config()
    if not os.path.isfile(path):
        raise ConfigError(f"{path}: configuration file not found")
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none")
    parser.optionxform = str  # script names are case-sensitive module paths
    try:
        with open(path, encoding="utf-8") as f:
            parser.read_file(f)
    except (configparser.Error, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: not a valid INI file: {e}") from None
    return _validate(path, parser)


def _validate(path: str, parser: configparser.ConfigParser) -> Config:
    config = Config(path=path)
    for section in parser.sections():
        if section not in SCHEMA:
            raise ConfigError(
                f"{path}: unknown section [{section}] "
                f"(valid sections: {', '.join('[' + s + ']' for s in SCHEMA)})")
        allowed = SCHEMA[section]
        values = dict(parser.items(section))
        for key in values:
            if allowed is not None and key not in allowed:
                raise ConfigError(
                    f"{path}: unknown key '{key}' in section [{section}] "
                    f"(valid keys: {', '.join(allowed)})")
        config.sections[section] = values
    for name, value in config.sections.get("MODULES", {}).items():
        enabled = _BOOLEANS.get(value.strip().lower())
        if enabled is None:
            raise ConfigError(
                f"{path}: [MODULES] {name}: value '{value}' is not True or False")
        config.modules[name] = enabled
    return config
