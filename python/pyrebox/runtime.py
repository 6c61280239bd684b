"""What the plugin calls in Python: start-up and shutdown.

This is the package's composition root: it creates the script manager and
wires the services the lower layers are given (who owns a module handle,
where triggers are found, what opens the shell, which script manager the
api works on). Nothing else in the package imports it.

Thread: QEMU's main thread, with the GIL held (the plugin's guarded entry).
"""

from __future__ import annotations

import os
import sys

from . import (agent_plugin, breakpoints, callbacks, console, interactive, qmp, script_api,
               script_utils, symbol_files, syscall_args, syscall_names, triggers)
from . import config as config_mod
from . import output
from .guest_agent import AGENT_SOCKET
from .native import pyrebox as _pyrebox
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
    target, qemu_plugin_api = target_name, plugin_api
    # QEMU's main loop, which serves QMP, starts after the plugin is installed.
    qmp.set_unavailable("QEMU's monitor does not run yet while start-up scripts initialise; "
                        "call it from a callback")
    sys.stdout = output.ConsoleStream("[python] ")
    sys.stderr = output.ConsoleStream("[python] ")
    config = config_mod.load(conf_path or _default_conf())
    scripts = ScriptManager(search_path=_script_search_path(config))
    wire(config, scripts)
    output.message(f"ready (QEMU target {target}, plugin API {plugin_api}, "
                   f"Python {sys.version.split()[0]})")
    load_linux_symbols(config)
    start_console()
    try:
        for name in config.startup_modules:
            scripts.load(name)
    finally:
        qmp.set_unavailable(None)


def wire(cfg: config_mod.Config, manager: ScriptManager) -> None:
    """Gives the lower layers what they need from this run."""
    script_api.use(manager)
    script_utils.configure(cfg.sections, target or "x86_64")
    callbacks.set_owner_resolver(manager.owner_name)
    triggers.set_search_path([cfg.folder])
    breakpoints.set_shell_opener(interactive.start_shell)
    callbacks.set_derivation("syscall_name", syscall_names.event_name)
    callbacks.set_derivation("syscall_args", syscall_args.entry_arguments)
    callbacks.set_derivation("syscall_args_ret", syscall_args.return_arguments)
    callbacks.set_derivation("syscall_error", syscall_args.error_name)
    if cfg.debug_path is not None:
        symbol_files.set_path(cfg.debug_path)


def load_linux_symbols(cfg: config_mod.Config) -> None:
    """Loads the guest kernel's ISF: [SYMBOLS] isf in pyrebox.conf, else the
    plugin's isf= argument. Without one, the table is built from guest
    memory once the kernel runs (or taken from the cache of tables built
    so). When it cannot be read, Linux introspection is off (with a
    warning) and the VM runs on."""
    path = cfg.isf or _pyrebox.linux_isf_argument()
    if not path:
        # Built from guest memory once the kernel runs (pyrebox.kernel_tables).
        _pyrebox.linux_build_table_from_memory()
        return
    # Loads in the background and reports its outcome; the first use waits.
    _pyrebox.linux_load_symbols(path)


def start_console() -> None:
    """Starts the console server when the plugin got console=PATH."""
    path = _pyrebox.console_argument()
    if not path:
        return
    # The agent channel's socket is beside the console's, in the run folder.
    agent_plugin.set_socket(os.path.join(os.path.dirname(path), AGENT_SOCKET))
    try:
        console.start(path, _pyrebox.qmp_argument())
        interactive.set_server(console.server())
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
    qmp.set_unavailable("QEMU is exiting; its monitor no longer runs")
    if scripts is not None:
        scripts.unload_all()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
