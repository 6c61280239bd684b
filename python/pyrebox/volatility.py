"""Volatility 3 on the running VM.

PyreboxMemoryLayer is a Volatility data layer over the guest's physical
memory, read through PyREBox at the moment of each read (never a copy):
the ranges backed by RAM or ROM come from QEMU's memory map, and anything
else (MMIO, unassigned addresses) is a hole, reported as Volatility expects
(InvalidAddressException, or zeros when a scan asks for padding).

Volatility's own machinery does the rest, through its public API: the
session's context holds our layer, and the PyreboxStacking automagic (in
place of LayerStacker, which stacks on a file) runs
LayerStacker.stack_layer on it, so LinuxIntelStacker finds the kernel's
banner and KASLR shifts in guest memory and stacks an Intel32e layer on
it, and LayerStacker.find_suitable_requirements hands that layer to the
plugin; LinuxSymbolFinder then picks the kernel's ISF from the banner. The
ISF's folder is added to Volatility's symbol path (a folder of our own that
links to the file, so nothing else beside it is scanned as a symbol table).

A Session keeps what does not change while the guest runs: the context with
the loaded ISF and the stacked layers. Before every plugin run the few
Volatility caches that would keep guest memory from the previous run
(memoised layer reads, page-table entries, the module area; see
_memory_caches) are emptied with their cache_clear(), and whatever the previous run added to
the context (process layers, modules) is dropped, so the plugin sees
memory as it is now. The session is rebuilt when the kernel's banner is no
longer where it was found (the guest rebooted, or a snapshot of another
boot was loaded).
"""

from __future__ import annotations

import argparse
import bisect
import datetime
import hashlib
import io
import os
import sys
import threading
import time
from typing import Any

from . import machine, paths
from .native import pyrebox as _pyrebox


class VolatilityError(Exception):
    """A Volatility command that cannot run; the message says why."""


def _framework():
    """Imports Volatility 3 (slow the first time: ~1 s)."""
    try:
        import volatility3.framework  # noqa: F401
        from volatility3 import framework
    except ImportError as e:  # pragma: no cover - the venv has it
        raise VolatilityError(f"Volatility 3 is not installed ({e})") from None
    _adapt_taint_flags()
    return framework


class _TaintFlag:
    """One entry of the kernel's taint_flags[] as Volatility's taint code
    reads it (c_true, c_false, module)."""

    __slots__ = ("c_true", "c_false", "module")

    def __init__(self, c_true: int, c_false: int, module: bool):
        self.c_true, self.c_false, self.module = c_true, c_false, module


def _adapt_taint_flags() -> None:
    """Linux 7.x's struct taint_flag has no `module` member (which taints a
    module's own taint letters show); Volatility's linux.lsmod (through
    Tainting) reads it and raises. Where the member is missing, the list
    Tainting reads is given entries with `module` true: every flag set in a
    module's taints is shown, which is what a kernel without the per-flag
    choice prints. Kernels with the member are read as before. Installed
    once, in Volatility's class (our process only)."""
    try:
        from volatility3.framework.symbols.linux.utilities import tainting
    except ImportError:  # pragma: no cover - another Volatility layout
        return
    cls = tainting.Tainting
    if getattr(cls, "_pyrebox_adapted", False):
        return
    original = cls._get_kernel_taint_flags_list.__func__

    def flags_list(klass, context, kernel_module_name):
        flags = original(klass, context, kernel_module_name)
        if not flags or flags[0].has_member("module"):
            return flags
        return [_TaintFlag(int(f.c_true), int(f.c_false), True) for f in flags]

    cls._get_kernel_taint_flags_list = classmethod(flags_list)
    cls._pyrebox_adapted = True


# --------------------------------------------------------------------- layers

def _ram_ranges() -> list[tuple[int, int]]:
    try:
        return [tuple(r) for r in _pyrebox.memory_map()]
    except Exception:  # noqa: BLE001 - an older QEMU: guess from what reads
        return _probed_ranges()


def _probed_ranges() -> list[tuple[int, int]]:
    """Without QEMU's memory map: below 4 GiB, 1 MiB steps that read."""
    ranges: list[tuple[int, int]] = []
    step = 1 << 20
    for start in range(0, 1 << 32, step):
        try:
            _pyrebox.read_physical(start, 1)
            _pyrebox.read_physical(start + step - 1, 1)
        except Exception:  # noqa: BLE001
            continue
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], start + step)
        else:
            ranges.append((start, start + step))
    return ranges


def memory_ranges() -> list[tuple[int, int]]:
    """The guest-physical [start, end) ranges that are memory (RAM, ROM)."""
    return _ram_ranges()


def _make_layer_class():
    from volatility3.framework import exceptions, interfaces

    class PyreboxMemoryLayer(interfaces.layers.DataLayerInterface):
        """The running guest's physical memory, read through PyREBox."""

        def __init__(self, context, config_path, name, metadata=None):
            super().__init__(context=context, config_path=config_path, name=name,
                             metadata=metadata)
            self._ranges = memory_ranges()
            if not self._ranges:
                raise exceptions.LayerException(name, "the guest has no memory")
            self._starts = [s for s, _ in self._ranges]

        @property
        def minimum_address(self) -> int:
            return 0

        @property
        def maximum_address(self) -> int:
            return self._ranges[-1][1] - 1

        def _pieces(self, offset: int, length: int):
            """(start, end, is_memory) pieces covering [offset, offset+length)."""
            end = offset + length
            pos = offset
            i = max(bisect.bisect_right(self._starts, offset) - 1, 0)
            while pos < end:
                while i < len(self._ranges) and self._ranges[i][1] <= pos:
                    i += 1
                if i == len(self._ranges):
                    yield pos, end, False
                    return
                start, stop = self._ranges[i]
                if pos < start:
                    upto = min(start, end)
                    yield pos, upto, False
                    pos = upto
                    continue
                upto = min(stop, end)
                yield pos, upto, True
                pos = upto

        def is_valid(self, offset: int, length: int = 1) -> bool:
            if offset < 0 or length <= 0:
                return length == 0 and offset >= 0
            return all(mem for _, _, mem in self._pieces(offset, length))

        def read(self, offset: int, length: int, pad: bool = False) -> bytes:
            if offset < 0:
                raise exceptions.InvalidAddressException(self.name, offset,
                                                         "negative physical address")
            out = []
            for start, end, mem in self._pieces(offset, length):
                if mem:
                    try:
                        out.append(_pyrebox.read_physical(start, end - start))
                        continue
                    except Exception:  # noqa: BLE001 - unplugged meanwhile
                        pass
                if not pad:
                    raise exceptions.InvalidAddressException(
                        self.name, start, f"physical address {start:#x} is not guest memory")
                out.append(b"\0" * (end - start))
            return b"".join(out)

        def write(self, offset: int, data: bytes) -> None:
            if not self.is_valid(offset, len(data)):
                raise exceptions.InvalidAddressException(
                    self.name, offset, f"physical range {offset:#x}+{len(data):#x} is not "
                    f"guest memory")
            _pyrebox.write_physical(offset, bytes(data))

        @property
        def dependencies(self) -> list[str]:
            return []

        @classmethod
        def get_requirements(cls):
            return []

    PyreboxMemoryLayer.__module__ = __name__
    PyreboxMemoryLayer.__qualname__ = "PyreboxMemoryLayer"
    return PyreboxMemoryLayer


def _make_stacking_class():
    from volatility3 import framework
    from volatility3.framework import interfaces
    from volatility3.framework.automagic import stacker
    from volatility3.framework.configuration import requirements

    class PyreboxStacking(interfaces.automagic.AutomagicInterface):
        """Satisfies a plugin's translation-layer requirements with the
        layers Volatility's stackers put on the guest's physical memory:
        LayerStacker.stack_layer on the session's context, which holds the
        PyreboxMemoryLayer (so no file, no single_location), then
        LayerStacker.find_suitable_requirements. The layers stay in the
        context; a stack is built once per choice of stackers."""

        priority = 10  # LayerStacker's: before the symbol finders

        def __init__(self, context, config_path, *args, base_layer: str | None = None,
                     **kwargs):
            super().__init__(context, config_path, *args, **kwargs)
            self.base_layer = base_layer
            self._stacks: dict[tuple[str, ...], list[str]] = {}

        def __call__(self, context, config_path, requirement, progress_callback=None):
            if self.base_layer is None or not requirement.unsatisfied(context, config_path):
                return None
            chosen = tuple(self.config.get("stackers", None) or ())
            stacked = self._stacks.get(chosen)
            if stacked is None or any(name not in context.layers for name in stacked):
                stack_set = sorted(
                    framework.class_subclasses(interfaces.automagic.StackerLayerInterface),
                    key=lambda s: s.stack_order)
                if chosen:
                    stack_set = [s for s in stack_set if s.__name__ in chosen]
                stacked = stacker.LayerStacker.stack_layer(context, self.base_layer, stack_set,
                                                           progress_callback)
                if len(stacked) > 1:  # nothing found (yet): try again next time
                    self._stacks[chosen] = stacked
            found = stacker.LayerStacker.find_suitable_requirements(context, config_path,
                                                                    requirement, stacked)
            if found:
                # As LayerStacker.stack does: the layer's configuration goes
                # under the requirement too (KernelModule reads the kernel's
                # offset there).
                path, layer_name = found
                context.config.merge(path, context.layers[layer_name].build_configuration())
                context.config[path] = layer_name
            return None

        @classmethod
        def get_requirements(cls):
            return [requirements.ListRequirement(name="stackers", optional=True,
                                                 description="The stackers to try")]

    PyreboxStacking.__module__ = __name__
    PyreboxStacking.__qualname__ = "PyreboxStacking"
    return PyreboxStacking


_classes: dict[str, Any] = {}


def __getattr__(name):  # the classes exist once Volatility is imported
    if name in ("PyreboxMemoryLayer", "PyreboxStacking"):
        _ensure_classes()
        return _classes[name]
    raise AttributeError(name)


def _ensure_classes():
    if not _classes:
        _framework()
        layer = _make_layer_class()
        _classes["PyreboxMemoryLayer"] = layer
        _classes["PyreboxStacking"] = _make_stacking_class()
        # Volatility re-creates layers from their configuration by class path.
        globals().update(_classes)
    return _classes


# -------------------------------------------------------------------- symbols

def isf_path() -> str:
    """The kernel's ISF PyREBox loaded (from the plugin argument isf= or
    [SYMBOLS] isf in pyrebox.conf); VolatilityError if none is loaded."""
    try:
        path = _pyrebox.linux_isf_path()
    except Exception:  # noqa: BLE001
        path = None
    if not path:
        try:
            why = _pyrebox.linux_off_reason()
        except Exception:  # noqa: BLE001
            why = ""
        # why: "Linux introspection is off: <the reason, and what to give>".
        raise VolatilityError(
            "no kernel symbol table (ISF) loaded: " +
            (why or "give one with [SYMBOLS] isf in pyrebox.conf or the plugin argument "
                    "isf=FILE"))
    if not os.path.isfile(path):
        raise VolatilityError(f"the kernel symbol table {path} does not exist")
    return os.path.abspath(path)


def _symbol_folder(isf: str) -> str:
    """A folder of our own in Volatility's cache that holds (a link to)
    the ISF only, added to Volatility's symbol path."""
    from volatility3 import symbols
    from volatility3.framework import constants

    key = hashlib.sha1(isf.encode()).hexdigest()[:16]
    folder = os.path.join(constants.CACHE_PATH, "pyrebox-symbols", key)
    name = os.path.basename(isf)
    if not any(name.endswith(ext) for ext in constants.ISF_EXTENSIONS):
        name += ".json" if not isf.endswith(".xz") else ".json.xz"
    link = os.path.join(folder, name)
    os.makedirs(folder, exist_ok=True)
    if not (os.path.islink(link) and os.readlink(link) == isf):
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(isf, link)
    if folder not in symbols.__path__:
        symbols.__path__.append(folder)
    return folder


# -------------------------------------------------------------------- session

_VOLATILITY_IDENTIFIERS_FILENAME: str | None = None


def _private_identifier_cache(isf: str) -> str:
    """Points Volatility (in this process) at an identifier cache of the
    ISF's own and returns its path. An update of the cache drops every
    location that is not on the updating process's symbol path, so VMs of
    different kernels sharing Volatility's one file would drop each other's
    tables, and then find no kernel."""
    global _VOLATILITY_IDENTIFIERS_FILENAME
    from volatility3.framework import constants

    if _VOLATILITY_IDENTIFIERS_FILENAME is None:
        _VOLATILITY_IDENTIFIERS_FILENAME = constants.IDENTIFIERS_FILENAME
    key = hashlib.sha1(isf.encode()).hexdigest()[:16]
    constants.IDENTIFIERS_FILENAME = f"pyrebox-{key}-{_VOLATILITY_IDENTIFIERS_FILENAME}"
    return os.path.join(constants.CACHE_PATH, constants.IDENTIFIERS_FILENAME)


def _memory_caches() -> list:
    """The functools caches of Volatility that keep guest memory from one
    plugin run to the next. They are lru_caches on functions, so they live
    as long as the process, and their keys are objects the session keeps:
    - TranslationLayerInterface.read and LinearlyMappedLayer.read memoise
      reads of a layer (the session keeps the kernel's Intel layer);
    - Intel._translate_entry and Intel._get_valid_table memoise page-table
      entries and tables of that layer;
    - Modules.get_modules_memory_boundaries memoises the kernel's module
      area (mod_tree.addr_min/addr_max, which grow as modules load) by
      (context, module name): the context is the session's, and every run
      names its kernel module the same.
    Every other cache is either keyed on objects a run creates and drops
    (struct objects compare by identity: task_struct.add_process_layer,
    module.get_module_address_boundaries, Kallsyms' methods, SizedModule.hash)
    or holds constants (page sizes and masks, type sizes, the kernel's
    taint-flag table)."""
    from volatility3.framework.interfaces import layers as layer_interfaces
    from volatility3.framework.layers import intel, linear

    caches = [layer_interfaces.TranslationLayerInterface.read,
              linear.LinearlyMappedLayer.read,
              intel.Intel._translate_entry,
              intel.Intel._get_valid_table]
    try:
        from volatility3.framework.symbols.linux.utilities import modules
    except ImportError:  # pragma: no cover - another Volatility layout
        pass
    else:
        caches.append(getattr(modules.Modules, "get_modules_memory_boundaries", None))
    return [c for c in caches if callable(getattr(c, "cache_clear", None))]


def _clear_memory_caches() -> None:
    """Empties the caches _memory_caches() lists (functools' cache_clear)."""
    for cache in _memory_caches():
        cache.cache_clear()


class Session:
    """One Volatility context for the running VM (see the module's doc)."""

    def __init__(self, isf: str):
        framework = _framework()
        from volatility3.framework import automagic, contexts, interfaces
        from volatility3.framework.automagic import stacker
        from volatility3.framework.automagic.symbol_cache import SqliteCache

        framework.require_interface_version(2, 0, 0)
        classes = _ensure_classes()
        self.isf = isf
        _symbol_folder(isf)
        # Volatility's identifier cache learns the ISF's banner (as the
        # SymbolCacheMagic automagic does for the command line).
        SqliteCache(_private_identifier_cache(isf)).update()
        framework.import_files(sys.modules["volatility3.plugins"], True)
        self.context = contexts.Context()
        # The guest's memory, at the bottom of every stack.
        base = self.context.layers.free_layer_name("PyreboxMemory")
        self.context.add_layer(classes["PyreboxMemoryLayer"](
            self.context, interfaces.configuration.path_join("pyrebox", base), base))
        stacking = classes["PyreboxStacking"]
        # Volatility's LayerStacker stacks on a file (single_location); ours
        # replaces it. The identifier cache is already up to date.
        self.automagics = [a for a in automagic.available(self.context)
                           if not isinstance(a, (stacker.LayerStacker, stacking))
                           and type(a).__name__ != "SymbolCacheMagic"]
        self.automagics.append(stacking(self.context,
                                        interfaces.configuration.path_join("automagic",
                                                                           "PyreboxStacking"),
                                        base_layer=base))
        self.automagics.sort(key=lambda a: a.priority)
        self.runs = 0
        self.kernel: tuple[str, str, int] | None = None  # (layer, table, banner address)
        self.banner = b""

    def still_valid(self) -> bool:
        """Whether the kernel found earlier is still there (same banner at
        the same place): false after a reboot into another KASLR slide."""
        if self.kernel is None:
            return True
        layer, _, address = self.kernel
        try:
            now = self.context.layers[layer].read(address, len(self.banner))
        except Exception:  # noqa: BLE001
            return False
        return now == self.banner

    def _remember_kernel(self, config_path: str) -> None:
        if self.kernel is not None:
            return
        from volatility3.framework import constants
        for layer_name, layer in self.context.layers.items():
            banner = layer.config.get("kernel_banner") if hasattr(layer, "config") else None
            if not banner:
                continue
            for table_name in self.context.symbol_space:
                table = self.context.symbol_space[table_name]
                if "linux_banner" not in getattr(table, "symbols", []):
                    continue
                offset = layer.config.get("kernel_virtual_offset", 0) or 0
                address = self.context.symbol_space.get_symbol(
                    table_name + constants.BANG + "linux_banner").address + offset
                try:
                    data = layer.read(address, len(banner))
                except Exception:  # noqa: BLE001
                    continue
                if data == banner.encode("latin-1"):
                    self.kernel = (layer_name, table_name, address)
                    self.banner = data
                    return

    def _prefill(self, plugin, path: str) -> None:
        """Points the plugin's kernel requirements at the kernel already found
        (so the ISF is not loaded again)."""
        if self.kernel is None:
            return
        from volatility3.framework.configuration import requirements
        layer, table, _ = self.kernel
        join = lambda *p: ".".join(x for x in p if x)  # noqa: E731
        layer_config = self.context.layers[layer].build_configuration()
        for req in plugin.get_requirements():
            if isinstance(req, requirements.ModuleRequirement):
                layer_path = join(path, req.name, "layer_name")
                self.context.config.merge(layer_path, layer_config)
                self.context.config[layer_path] = layer
                self.context.config[join(path, req.name, "symbol_table_name")] = table
            elif isinstance(req, requirements.SymbolTableRequirement):
                self.context.config[join(path, req.name)] = table

    def run(self, plugin, argv: list[str], output_dir: str):
        """Constructs and runs `plugin` with command-line style `argv`;
        returns (TreeGrid, seconds)."""
        from volatility3 import cli
        from volatility3.framework import automagic, exceptions, interfaces, plugins
        from volatility3.framework.automagic import stacker

        parser = argparse.ArgumentParser(prog=f"vol {plugin_name(plugin)}", add_help=True,
                                         exit_on_error=False)
        commandline = cli.CommandLine()
        commandline.populate_requirements_argparse(parser, plugin)
        args = _parse(parser, argv)
        self.runs += 1
        base = f"plugins.run{self.runs}"
        plugin_path = interfaces.configuration.path_join(base, plugin.__name__)
        layers_before = set(self.context.layers)
        modules_before = set(self.context.modules)
        _clear_memory_caches()
        ctx = self.context
        chosen = automagic.choose_automagic(self.automagics, plugin)
        for amagic in chosen:
            if isinstance(amagic, _classes["PyreboxStacking"]):
                try:
                    chosen_stackers = stacker.choose_os_stackers(plugin)
                except IndexError:  # a plugin outside volatility3.plugins: any OS
                    chosen_stackers = None
                ctx.config[interfaces.configuration.path_join(amagic.config_path, "stackers")] \
                    = chosen_stackers
        try:
            commandline.populate_config(ctx, {plugin.__name__: plugin}, args, plugin_path)
        except (FileNotFoundError, TypeError) as e:
            raise VolatilityError(str(e)) from None
        self._prefill(plugin, plugin_path)
        commandline.output_dir = output_dir
        try:
            constructed = plugins.construct_plugin(ctx, chosen, plugin, base, None,
                                                   commandline.file_handler_class_factory())
        except exceptions.UnsatisfiedException as e:
            raise VolatilityError(_unsatisfied(e)) from None
        self._remember_kernel(plugin_path)
        try:
            grid = constructed.run()
            rows = _collect(grid)
        finally:
            # What this run added (process layers, module objects) goes.
            self._drop_new(layers_before, modules_before)
        return grid, rows

    def _drop_new(self, layers_before, modules_before) -> None:
        if self.kernel is None:
            return
        keep, todo = set(), [self.kernel[0]]
        while todo:  # the kernel's layer and the layers under it
            name = todo.pop()
            if name in keep or name not in self.context.layers:
                continue
            keep.add(name)
            todo.extend(self.context.layers[name].dependencies)
        added = [n for n in self.context.layers if n not in layers_before and n not in keep]
        for name in reversed(added):
            try:
                self.context.layers.del_layer(name)
            except Exception:  # noqa: BLE001 - another layer still uses it
                pass
        for name in list(self.context.modules):
            if name not in modules_before:
                try:
                    del self.context.modules[name]
                except Exception:  # noqa: BLE001
                    pass


def _parse(parser: argparse.ArgumentParser, argv: list[str]):
    err = io.StringIO()
    saved = sys.stderr, sys.stdout
    try:
        sys.stderr = err
        sys.stdout = err
        try:
            return parser.parse_args(argv)
        except SystemExit:
            pass
        except argparse.ArgumentError as e:
            err.write(f"{parser.prog}: {e}\n")
    finally:
        sys.stderr, sys.stdout = saved
    raise VolatilityError(err.getvalue().strip() or "bad arguments")


def _unsatisfied(excp) -> str:
    names = ", ".join(sorted(excp.unsatisfied)) if getattr(excp, "unsatisfied", None) else ""
    return ("Volatility could not satisfy the plugin's requirements"
            + (f" ({names})" if names else "")
            + ": the kernel was not found in guest memory with this symbol table "
              "(is the guest's kernel the one the ISF was made for, and has it booted?)")


# -------------------------------------------------------------------- results

def _plain(value):
    from volatility3.framework import interfaces
    from volatility3.framework.renderers import format_hints

    if isinstance(value, interfaces.renderers.BaseAbsentValue):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, format_hints.MultiTypeData) or isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (float, datetime.datetime)):
        return value
    return value


def _collect(grid) -> list[dict]:
    rows: list[dict] = []
    names = [c.name for c in grid.columns]

    def visit(node, acc):
        acc.append({name: _plain(v) for name, v in zip(names, node.values)})
        return acc

    grid.populate(visit, rows)
    return rows


def plugin_name(plugin) -> str:
    module = plugin.__module__
    prefix = "volatility3.plugins."
    if module.startswith(prefix):
        module = module[len(prefix):]
    elif module.startswith("volatility3.framework.plugins."):
        module = module[len("volatility3.framework.plugins."):]
    return f"{module}.{plugin.__name__}"


# ------------------------------------------------------------------------ API

_lock = threading.RLock()
_session: Session | None = None
_plugins: dict[str, Any] | None = None


def plugins() -> dict[str, Any]:
    """Volatility's plugins by name (`linux.pslist.PsList`...)."""
    global _plugins
    if _plugins is None:
        framework = _framework()
        import volatility3.plugins
        framework.import_files(volatility3.plugins, True)
        _plugins = dict(framework.list_plugins())
    return _plugins


def list_commands() -> list[tuple[str, str]]:
    """(name, first line of its description) of every installed plugin."""
    out = []
    for name, plugin in sorted(plugins().items()):
        doc = (plugin.__doc__ or "").strip().split("\n")[0].strip()
        out.append((name, doc))
    return out


def _find_plugin(name: str):
    table = plugins()
    if name in table:
        return table[name]
    lowered = {k.lower(): v for k, v in table.items()}
    if name.lower() in lowered:
        return lowered[name.lower()]
    ends = [k for k in table if k.lower().endswith("." + name.lower())]
    if len(ends) == 1:
        return table[ends[0]]
    import difflib
    close = difflib.get_close_matches(name, list(table), n=3, cutoff=0.5) or ends[:3]
    raise VolatilityError(f"no Volatility plugin '{name}'"
                          + (f"; did you mean: {', '.join(close)}?" if close else
                             "; list_vol_commands lists them"))


def _get_session() -> Session:
    global _session
    isf = isf_path()
    if _session is not None and (_session.isf != isf or not _session.still_valid()):
        _session = None
    if _session is None:
        _session = Session(isf)
    return _session


def run_plugin(plugin: str, *args: str, output_dir: str | None = None):
    """Runs a Volatility plugin on the live VM: (TreeGrid, rows, seconds)."""
    if not isinstance(plugin, str) or not plugin:
        raise VolatilityError(f"plugin must be a plugin name, got {plugin!r}")
    argv = []
    for a in args:
        if not isinstance(a, (str, int)):
            raise VolatilityError(f"plugin arguments must be str or int, got {a!r}")
        argv.append(str(a))
    with _lock:
        started = time.perf_counter()
        plugin_class = _find_plugin(plugin)
        session = _get_session()
        try:
            grid, rows = session.run(plugin_class, argv, output_dir or os.getcwd())
        except VolatilityError:
            raise
        except Exception as e:  # noqa: BLE001 - the plugin's own failure
            raise VolatilityError(f"{plugin_name(plugin_class)} failed: "
                                  f"{type(e).__name__}: {e}") from e
        return grid, rows, time.perf_counter() - started


def vol(plugin: str, *args) -> list[dict]:
    """Runs the Volatility 3 plugin `plugin` (e.g. "linux.pslist.PsList",
    arguments as on vol's command line: vol("linux.proc.Maps", "--pid", 42))
    on the running VM; returns its rows as dicts, column name -> value.
    Raises VolatilityError (a message) for an unknown plugin, bad
    arguments, no kernel symbol table, or a plugin that fails. Called from
    a callback, the guest's clock stops while the plugin runs
    (machine.guest_clock_stopped): the guest sees no time pass."""
    with machine.guest_clock_stopped():
        return run_plugin(plugin, *args)[1]


def render(grid, out=None) -> None:
    """Prints a TreeGrid the way vol's `pretty` renderer does."""
    from volatility3.cli import text_renderer
    saved = sys.stdout
    try:
        if out is not None:
            sys.stdout = out
        text_renderer.PrettyTextRenderer().render(grid)
    finally:
        sys.stdout = saved


# --------------------------------------------------------------- memory image

def write_image(path: str) -> dict:
    """Writes a raw physical memory image of the guest (offset = physical
    address; holes between memory ranges are zeros) that `vol -f` reads.
    Returns {path, size, ranges}."""
    ranges = memory_ranges()
    if not ranges:
        raise VolatilityError("the guest has no memory to save")
    chunk = 1 << 22
    with paths.open_private(path) as f:
        for start, end in ranges:
            f.seek(start)
            for pos in range(start, end, chunk):
                f.write(_pyrebox.read_physical(pos, min(chunk, end - pos)))
        f.truncate(ranges[-1][1])
    return {"path": os.path.abspath(path), "size": ranges[-1][1], "ranges": ranges}


def save_memory(path: str) -> dict:
    """api.save_memory: see write_image."""
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a file name, got {path!r}")
    with _lock:
        return write_image(path)


__all__ = ["vol", "save_memory", "VolatilityError"]
