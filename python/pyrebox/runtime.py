"""What the plugin calls in Python: start-up and shutdown.

Thread: QEMU's main thread, with the GIL held (the plugin's guarded entry).
"""

from __future__ import annotations

import os
import sys

from . import config as config_mod
from . import output
from .scripts import ScriptManager

target: str | None = None          # "x86_64" or "i386"
qemu_plugin_api: int | None = None  # the running QEMU's plugin API version
config: config_mod.Config | None = None
scripts: ScriptManager | None = None


def _default_conf() -> str | None:
    return "pyrebox.conf" if os.path.isfile("pyrebox.conf") else None


def boot(conf_path: str, target_name: str, plugin_api: int) -> None:
    """Reads the configuration and loads the start-up scripts.

    Raises ConfigError for a bad configuration (nothing has run yet); a
    script that fails to import or initialise is reported and skipped.
    """
    global target, qemu_plugin_api, config, scripts
    from . import qmp
    target, qemu_plugin_api = target_name, plugin_api
    # QEMU's main loop, which serves QMP, starts after the plugin is installed.
    qmp.set_unavailable("QEMU's monitor does not run yet while start-up scripts initialise; "
                        "call it from a callback")
    sys.stdout = output.ConsoleStream("[python] ")
    sys.stderr = output.ConsoleStream("[python] ")
    config = config_mod.load(conf_path or _default_conf())
    scripts = ScriptManager(search_path=_script_search_path(config))
    output.message(f"ready (QEMU target {target}, plugin API {plugin_api}, "
                   f"Python {sys.version.split()[0]})")
    load_linux_symbols(config)
    start_console()
    try:
        for name in config.startup_modules:
            scripts.load(name)
    finally:
        qmp.set_unavailable(None)


def load_linux_symbols(cfg: config_mod.Config) -> None:
    """Loads the guest kernel's ISF: [SYMBOLS] isf in pyrebox.conf, else the
    plugin's isf= argument. Without one, the table is built from guest
    memory once the kernel runs (or taken from the cache of tables built
    so). When it cannot be read, Linux introspection is off (with a
    warning) and the VM runs on."""
    import _pyrebox

    path = cfg.isf or _pyrebox.linux_isf_argument()
    if not path:
        # Built from guest memory once the kernel runs (pyrebox.kernel_tables).
        _pyrebox.linux_build_table_from_memory()
        return
    # Loads in the background and reports its outcome; the first use waits.
    _pyrebox.linux_load_symbols(path)


def start_console() -> None:
    """Starts the console server when the plugin got console=PATH."""
    import _pyrebox

    from . import console
    path = _pyrebox.console_argument()
    if not path:
        return
    try:
        console.start(path, _pyrebox.qmp_argument())
    except OSError as e:
        output.error(f"cannot start the PyREBox console on {path}: {e}")


def _script_search_path(cfg: config_mod.Config) -> list[str]:
    """Script modules resolve against the current folder, then the folder
    of pyrebox.conf."""
    folders = [os.getcwd()]
    if cfg.folder and cfg.folder not in folders:
        folders.append(cfg.folder)
    return folders


def shutdown() -> None:
    """Unloads every script (each gets clean()), when QEMU exits."""
    from . import qmp
    qmp.set_unavailable("QEMU is exiting; its monitor no longer runs")
    if scripts is not None:
        scripts.unload_all()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
