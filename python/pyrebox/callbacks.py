"""CallbackManager: PyREBox's way for scripts to receive guest events.

Each registered function is wrapped in an adapter that turns the engine's
raw values into PyREBox's arguments (positional, or one dict for new_style
managers), builds the lazy `cpu` object, and reports the function's
exceptions (any BaseException: SystemExit and KeyboardInterrupt too): the
first few distinct errors of a callback are printed with their traceback,
repeats are counted, and beyond those one line per interval says how many
came (ErrorReporter). The callback stays registered and the VM continues.
"""

from __future__ import annotations

import contextlib
import itertools
import sys
import time
import traceback
import weakref

from . import event_kinds, output
from . import cpu as cpu_module
from .cpu import Cpu
from .native import pyrebox as _pyrebox

# The type constants, from the event-kind table (CallbackManager.<NAME> too).
for _kind in event_kinds.KINDS:
    globals()[_kind.name] = _kind.number
del _kind

TYPE_NAMES = {kind.number: kind.name for kind in event_kinds.KINDS}
PROCESS_EVENT_TYPES = {k.number for k in event_kinds.KINDS if k.origin == event_kinds.PROCESS}
# Types the engine delivers (the process events through its hooks).
ENGINE_TYPES = {k.number for k in event_kinds.KINDS if k.origin != event_kinds.DEVICE}
DEVICE_TYPES = {k.number for k in event_kinds.KINDS if k.origin == event_kinds.DEVICE}
NIC_TYPES = {NIC_SEND_CB, NIC_REC_CB}  # noqa: F821 - defined from the table above


class ErrorReporter:
    """Reports callback errors without flooding: per callback, the first
    FULL distinct errors (type and message) are printed with their
    traceback; an error seen before is counted, not printed; beyond FULL,
    errors are counted and one line per INTERVAL seconds says how many came
    (with the last one's type and message). Nothing per error but a count
    and a clock read, so a callback failing on every event does not slow
    the guest down with printing."""

    FULL = 3
    INTERVAL = 10.0

    class _Callback:
        __slots__ = ("distinct", "total", "unprinted", "since", "counting")

        def __init__(self, now: float):
            self.distinct: dict[tuple[str, str], int] = {}
            self.total = 0
            self.unprinted = 0  # errors since the last line printed
            self.since = now
            self.counting = False  # said that further errors are counted

    def __init__(self, clock=None):
        self._clock = clock or time.monotonic
        self._callbacks: dict[tuple[str, str], ErrorReporter._Callback] = {}

    @property
    def seen(self) -> dict[tuple, int]:
        """(owner, callback, type, message) -> count, for the errors printed
        in full and their repeats."""
        return {(owner, name, *key): n for (owner, name), c in self._callbacks.items()
                for key, n in c.distinct.items()}

    def report(self, owner: str, name: str, type_name: str, exc: BaseException) -> None:
        now = self._clock()
        c = self._callbacks.get((owner, name))
        if c is None:
            c = self._callbacks[(owner, name)] = ErrorReporter._Callback(now)
        c.total += 1
        if len(c.distinct) < self.FULL:
            key = (type(exc).__name__, str(exc))
            count = c.distinct.get(key, 0)
            c.distinct[key] = count + 1
            if count == 0:
                text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                output.error(f"callback {name!r} ({type_name}) of {owner} raised; it stays "
                             f"registered and identical errors are counted, not printed:\n"
                             f"{text.rstrip()}")
                c.since = now
            return
        c.unprinted += 1
        if now - c.since >= self.INTERVAL or not c.counting:
            c.counting = True
            output.error(f"callback {name!r} ({type_name}) of {owner}: {c.unprinted} more "
                         f"error(s) ({c.total} in all; {self.FULL} different ones were "
                         f"printed, the rest are counted, a line every "
                         f"{self.INTERVAL:g} s); the last: {type(exc).__name__}: {exc}")
            c.unprinted = 0
            c.since = now


errors = ErrorReporter()


# module handle -> who owns it ("script NAME"), or None when unknown; the
# runtime installs the script manager's (set_owner_resolver).
_owner_resolver = None


def set_owner_resolver(resolver) -> None:
    """`resolver(module_hdl)` names the owner of a module handle in messages
    ("script NAME"), or returns None; None removes it."""
    global _owner_resolver
    _owner_resolver = resolver


def _owner(module_hdl: int) -> str:
    owner = _owner_resolver(module_hdl) if _owner_resolver is not None else None
    return owner if owner is not None else f"module handle {module_hdl}"


def _raw_name(member: str) -> str:
    """The adapter's parameter for an Event member (tb.pc -> tb_pc)."""
    return member.replace(".", "_")


def _adapter_source(kind: event_kinds.Kind, new_style: bool) -> str:
    """Python source of a factory `make(func, report, Cpu, getrefcount, derive, new)`
    returning the adapter of `kind`: a function of the kind's raw arguments
    (event_kinds.raw_arguments, in the order PythonHandler passes them) that
    calls `func` with PyREBox's arguments (positional, or one dict for
    new-style managers) and reports its exceptions."""
    raw = [_raw_name(member) for member in event_kinds.raw_arguments(kind)]
    body = []
    positional, entries = [], []
    has_cpu = False
    lazy: list[str] = []
    for field in kind.fields:
        if field.type == event_kinds.CPU:
            has_cpu = True
            body += cpu_module.construction("cpu", "cpu_index",
                                            _raw_name(field.event) if field.event else None)
            value = "cpu"
        elif field.type == event_kinds.TB:
            value = "(tb_pc, tb_size, tb_icount)"
        elif field.type == event_kinds.ZERO:
            value = "0"
        elif field.type == event_kinds.DERIVED:
            value = f"derive[{field.event!r}]({', '.join(_raw_name(m) for m in field.inputs)})"
            if field.none_when:
                value = f"(None if {field.none_when} else {value})"
            if field.lazy:
                lazy.append(f"lazy_{field.name}")
                body.append(f"{lazy[-1]} = {value}")
                value = lazy[-1]
        else:
            value = _raw_name(field.event)
        if field.positional:
            positional.append(value)
        for key in (field.name, *field.aliases):
            entries.append(f"{key!r}: {value}")
    call = ("func({" + ", ".join(entries) + "})") if new_style else \
        f"func({', '.join(positional)})"
    lines = [f"def make(func, report, Cpu, getrefcount, derive, new):",
             f"    def adapter({', '.join(raw)}):"]
    lines += [f"        {line}" for line in body]
    lines += ["        try:",
              f"            {call}",
              "        except BaseException as e:",
              "            report(e)"]
    # After the call, `cpu` (and each lazy derived value) has two references:
    # the adapter's local and getrefcount's argument. More means the script
    # kept the object: it is then frozen (every register, every argument
    # read) while the state is current.
    for name in (["cpu"] if has_cpu else []) + lazy:
        kept = f"getrefcount({name}) > 2" if name == "cpu" else \
            f"{name} is not None and getrefcount({name}) > 2"
        freeze = [f"            {name}.freeze()"] if name == "cpu" else [
            "            try:", f"                {name}.freeze()",
            "            except Exception as e:", "                report(e)"]
        lines += [f"        if {kept}:", *freeze]
    lines += ["    return adapter", ""]
    return "\n".join(lines)


_factories: dict[tuple[int, bool], object] = {}

# The functions of derived fields (event_kinds.DERIVED), by derivation name.
# They read the guest, so the runtime gives them (runtime.wire); until then
# a derived field is None.
DERIVATIONS: dict[str, object] = {}


def set_derivation(name: str, function) -> None:
    DERIVATIONS[name] = function


for _field in (f for k in event_kinds.KINDS for f in k.fields):
    if _field.type == event_kinds.DERIVED:
        DERIVATIONS.setdefault(_field.event, lambda *inputs: None)


def _make_adapter(callback_type: int, func, new_style: bool, report):
    """The function the engine calls for one callback: built from the
    kind's row of the event-kind table, compiled once per kind and style."""
    key = (callback_type, new_style)
    make = _factories.get(key)
    if make is None:
        kind = event_kinds.BY_NUMBER.get(callback_type)
        if kind is None:
            raise ValueError(f"no adapter for callback type {callback_type}")
        namespace: dict = {}
        exec(compile(_adapter_source(kind, new_style),  # noqa: S102 - source built from the table
                     f"<adapter of {kind.name}{' (new style)' if new_style else ''}>", "exec"),
             namespace)
        make = _factories[key] = namespace["make"]
    adapter = make(func, report, Cpu, sys.getrefcount, DERIVATIONS, object.__new__)
    _adapter_codes[adapter.__code__] = key
    return adapter


# The code of each kind's adapter (shared by all its adapters) -> (callback
# type, new_style): how running_callback recognises an adapter's frame.
_adapter_codes: dict[object, tuple[int, bool]] = {}


def running_callback():
    """The innermost callback this thread is running, as (callback type,
    new_style, frame of its adapter), or None when no callback's adapter is
    on this thread's Python stack (script start-up, the console, a thread of
    the script's own). The frame object is one per execution of a callback:
    while a caller holds it, no other execution has the same one. Costs a
    walk up the Python stack, so it is for calls made once per event, not
    per register read."""
    frame = sys._getframe(1)
    while frame is not None:
        found = _adapter_codes.get(frame.f_code)
        if found is not None:
            return found[0], found[1], frame
        frame = frame.f_back
    return None


# module handle -> the CallbackManagers created for it (weakly held): lets
# unloading a script remove callbacks its clean() forgot.
_managers: dict[int, "weakref.WeakSet[CallbackManager]"] = {}


@contextlib.contextmanager
def batch():
    """Registration batch (see CallbackManager.batch): every add and remove
    inside it, by any manager, is published as one plan change."""
    _pyrebox.begin_batch()
    try:
        yield
    finally:
        _pyrebox.end_batch()


def remove_callbacks_of(module_hdl: int) -> int:
    """Removes every callback still registered by managers of `module_hdl`;
    returns how many there were."""
    count = 0
    with batch():
        for manager in list(_managers.get(module_hdl, ())):
            count += len(manager.callbacks)
            manager.clean()
    return count


class CallbackManager:
    """Registers callbacks for one script (module handle) and removes them
    all with clean(). See the scripting document for each type's arguments."""

    # The scripting document's spelling of the process-creation constant.
    VMI_CREATEPROC_CB = CREATEPROC_CB  # noqa: F821 - defined from the table above

    _counter = itertools.count(1)

    def __init__(self, module_hdl: int, new_style: bool = False):
        self.module_hdl = module_hdl
        self.new_style = new_style
        self.callbacks: dict[str, int] = {}  # name -> engine id
        # name -> what registered it (to re-register with or without a trigger)
        self._specs: dict[str, dict] = {}
        self._triggers: dict[str, int] = {}  # name -> trigger handle
        _managers.setdefault(module_hdl, weakref.WeakSet()).add(self)

    def get_module_handle(self) -> int:
        return self.module_hdl

    def _unique_name(self, name: str) -> str:
        if name not in self.callbacks:
            return name
        for n in itertools.count(1):
            candidate = f"{name}_{n}"
            if candidate not in self.callbacks:
                return candidate
        raise AssertionError("unreachable")

    def add_callback(self, callback_type, func, name=None, addr=None, pgd=None,
                     start_opcode=None, end_opcode=None, monitored_only=False) -> str:
        """Registers `func` for events of `callback_type`; returns the
        callback's unique name (a _N suffix is added when `name` is taken).
        TLB_EXEC_CB fires in every process, as in PyREBox;
        `monitored_only=True` keeps it to the monitored processes (the other
        execution and memory types always are)."""
        type_name = TYPE_NAMES.get(callback_type) if isinstance(callback_type, int) else None
        if type_name is None:
            raise ValueError(f"unknown callback type {callback_type!r}; use one of "
                             f"{', '.join('CallbackManager.' + n for n in TYPE_NAMES.values())}")
        if callback_type not in ENGINE_TYPES and callback_type not in DEVICE_TYPES:
            raise ValueError(f"{type_name} is not available in this version of PyREBox")
        if not callable(func):
            raise TypeError(f"callback function must be callable, got {type(func).__name__}")
        for label, value in (("addr", addr), ("pgd", pgd), ("start_opcode", start_opcode),
                             ("end_opcode", end_opcode)):
            if value is not None and (not isinstance(value, int) or value < 0):
                raise ValueError(f"{label} must be a non-negative int, got {value!r}")
        if (start_opcode is None) != (end_opcode is None):
            raise ValueError("give both start_opcode and end_opcode")
        if callback_type == OPCODE_RANGE_CB and start_opcode is None:
            raise ValueError("OPCODE_RANGE_CB needs start_opcode and end_opcode")
        if not isinstance(monitored_only, bool):
            raise ValueError(f"monitored_only must be True or False, got {monitored_only!r}")
        if monitored_only and callback_type != TLB_EXEC_CB:
            raise ValueError(f"monitored_only applies to TLB_EXEC_CB; {type_name} callbacks "
                             f"already fire for monitored processes only")
        name = self._unique_name(name if name is not None
                                 else f"{type_name[:-3].lower()}_{next(self._counter)}")
        owner = _owner(self.module_hdl)

        def report(exc, _name=name):
            errors.report(owner, _name, type_name, exc)

        adapter = _make_adapter(callback_type, func, self.new_style, report)
        spec = dict(type=callback_type, adapter=adapter, addr=addr, pgd=pgd,
                    start_opcode=start_opcode or 0, end_opcode=end_opcode or 0,
                    all_processes=callback_type == TLB_EXEC_CB and not monitored_only)
        self.callbacks[name], _ = _pyrebox.register_callback(**spec)
        self._specs[name] = spec
        if (callback_type in PROCESS_EVENT_TYPES and not _pyrebox.linux_enabled()
                and not _pyrebox.linux_table_pending()):
            output.warning(f"{owner}: {type_name} {name!r} is registered but will not fire: "
                           f"{_pyrebox.linux_off_reason()}")
        if callback_type in NIC_TYPES and not _pyrebox.nic_observed():
            output.warning(f"{type_name} callback {name!r} of {owner} is registered, but this VM "
                           f"has no NIC PyREBox observes, so it will never fire: start the VM "
                           f"with `pyrebox run --nic MODEL` (ne2k_pci, e1000 or virtio-net-pci)")
        return name

    def rm_callback(self, name: str) -> None:
        """Removes the callback `name`; safe from inside any callback,
        including itself."""
        if name not in self.callbacks:
            raise ValueError(f"CallbackManager: no callback named {name!r} to remove "
                             f"(registered: {', '.join(self.callbacks) or 'none'})")
        _pyrebox.unregister_callback(self.callbacks.pop(name))
        self._specs.pop(name, None)
        self._triggers.pop(name, None)

    def callback_exists(self, name: str) -> bool:
        return name in self.callbacks

    def batch(self):
        """Context manager: the callbacks added and removed inside
        `with cm.batch():` (by this or any manager) change the engine's plan
        once, when the outermost batch ends, so translated code is flushed
        at most once instead of once per call. Batches nest (inner ones fold
        into the outermost). Callbacks added inside fire only after the
        batch ends; removed ones stop at once. An exception inside the batch
        undoes nothing: what was registered before it is applied when the
        batch ends, and the exception propagates."""
        return batch()

    def clean(self) -> None:
        """Removes every callback this manager registered (one plan change)."""
        with batch():
            for name in list(self.callbacks):
                self.rm_callback(name)

    # --- Triggers ---

    def _require(self, name: str) -> None:
        if name not in self.callbacks:
            raise ValueError(f"CallbackManager: no callback named {name!r} "
                             f"(registered: {', '.join(self.callbacks) or 'none'})")

    def _trigger_handle(self, name: str) -> int:
        self._require(name)
        if name not in self._triggers:
            raise ValueError(f"callback {name!r} has no trigger (add one with add_trigger)")
        return self._triggers[name]

    def add_trigger(self, name: str, trigger_path: str) -> None:
        """Puts the native trigger `trigger_path` (with or without `.so`;
        built on demand from its .cpp/.c) in front of callback `name`. The
        trigger then sees every event of the callback in every process and
        decides which reach the Python function. A trigger that does not
        build, or whose get_type() is another callback type, is refused and
        the callback stays as it was."""
        from . import triggers
        self._require(name)
        obj, needs_gil = triggers.build(trigger_path, _pyrebox.is_64bit())
        spec = self._specs[name]
        # The replacement and the removal make one plan change.
        with batch():
            new_id, handle = _pyrebox.register_callback(**spec, trigger_path=obj,
                                                        trigger_needs_gil=needs_gil)
            _pyrebox.unregister_callback(self.callbacks[name])
        self.callbacks[name] = new_id
        self._triggers[name] = handle

    def rm_trigger(self, name: str) -> None:
        """Removes the trigger of callback `name` (its clean() runs); the
        callback stays, for monitored processes again."""
        self._trigger_handle(name)
        with batch():
            new_id, _ = _pyrebox.register_callback(**self._specs[name])
            _pyrebox.unregister_callback(self.callbacks[name])
        self.callbacks[name] = new_id
        del self._triggers[name]

    def set_trigger_var(self, name: str, var_name: str, val) -> None:
        """Sets a trigger variable: a str, or an unsigned int stored in the
        target's word size."""
        handle = self._trigger_handle(name)
        if isinstance(val, str):
            _pyrebox.trigger_set_str(handle, var_name, val)
        elif isinstance(val, int) and not isinstance(val, bool):
            if val < 0 or val >= 1 << (64 if _pyrebox.is_64bit() else 32):
                raise ValueError(f"trigger variable {var_name!r}: {val} is not an unsigned "
                                 f"int of the target's word size")
            _pyrebox.trigger_set_uint(handle, var_name, val)
        else:
            raise ValueError(f"trigger variable {var_name!r}: unsupported type "
                             f"{type(val).__name__} (use str or unsigned int)")

    def get_trigger_var(self, name: str, var_name: str):
        """The variable's value (int, str, or the Python object the trigger
        stored), or None when it does not exist."""
        return _pyrebox.trigger_get(self._trigger_handle(name), var_name)

    def call_trigger_function(self, name: str, function_name: str) -> None:
        """Calls a function the trigger declared with declare_function."""
        _pyrebox.trigger_call_function(self._trigger_handle(name), function_name)


for _kind in event_kinds.KINDS:
    setattr(CallbackManager, _kind.name, _kind.number)
del _kind
