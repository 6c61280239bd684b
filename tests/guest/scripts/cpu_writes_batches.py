"""Register writes through the cpu object, and registration batches, on the
probe (guest/programs/probe.c); reports one JSON line at clean(). The test
writes probe_symbols.json and copies triggers/ beside pyrebox.conf.

- At pyrebox_identity (its first instruction, `mov %edi,%eax`) the
  INSN_BEGIN callback sets cpu.RDI = 99: the probe then prints value=99
  instead of value=41. The object holds the written value; writes to an
  unknown or lower-case name, or to a snapshot kept from an earlier
  callback, raise.
- At main, registrations are counted with _pyrebox.registry_stats():
  100 callbacks in one batch, their removal in one batch, 10 without a
  batch, add_trigger, a nested batch, and a batch left by an exception.
- At clean() (no callback running) the kept cpu objects refuse writes.
"""

import json
import os

import _pyrebox

import api
from api import CallbackManager
from pyrebox.cpu import Cpu, CpuWriteError

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.path.join(HERE, "..")
SYMBOLS = json.load(open(os.path.join(WORK, "probe_symbols.json")))
# Data addresses: address callbacks there never fire.
UNUSED = SYMBOLS["step_buffer"]

cm = None
printer = None
kept_from_main = None
kept_from_identity = None
r = {"identity_calls": 0, "errors": {}, "counts": {}}


def error_of(action):
    try:
        action()
    except Exception as e:  # noqa: BLE001 - the report shows the type and message
        return [type(e).__name__, str(e), isinstance(e, AttributeError)]
    return None


def delta(before, after):
    return {k: after[k] - before[k] for k in ("publications", "plan_changes", "flushes")}


def counted(action):
    before = _pyrebox.registry_stats()
    action()
    return delta(before, _pyrebox.registry_stats())


def on_unused(cpu_index, cpu):
    r.setdefault("unused_fired", 0)
    r["unused_fired"] += 1


def on_main(cpu_index, cpu):
    global kept_from_main
    kept_from_main = cpu
    names = []

    def add_100_in_a_batch():
        with cm.batch():
            for i in range(100):
                names.append(cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused,
                                             name=f"batched_{i}", addr=UNUSED + i))
            r["depth_inside"] = _pyrebox.registry_stats()["batch_depth"]
            r["registered_inside"] = sum(cm.callback_exists(n) for n in names)

    def remove_100_in_a_batch():
        with cm.batch():
            for name in names:
                cm.rm_callback(name)

    def add_10_without_a_batch():
        for i in range(10):
            cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused, name=f"single_{i}",
                            addr=UNUSED + 0x200 + i)

    def clean_after_10():
        # clean() removes everything (main included; it is running, which is safe).
        cm.clean()

    def nested():
        with cm.batch():
            cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused, name="outer",
                            addr=UNUSED + 0x300)
            with cm.batch():
                cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused, name="inner",
                                addr=UNUSED + 0x301)
            r["after_inner"] = delta(r["before_nested"], _pyrebox.registry_stats())

    def raising():
        try:
            with cm.batch():
                for i in range(3):
                    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused, name=f"raise_{i}",
                                    addr=UNUSED + 0x400 + i)
                raise RuntimeError("inside the batch")
        except RuntimeError as e:
            r["raised"] = str(e)
        r["after_raise_registered"] = sum(cm.callback_exists(f"raise_{i}") for i in range(3))
        r["depth_after_raise"] = _pyrebox.registry_stats()["batch_depth"]

    trigger_name = cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_unused, name="triggered",
                                   addr=UNUSED + 0x500)

    def add_trigger():
        cm.add_trigger(trigger_name, "triggers/trigger_counter")

    def rm_trigger():
        cm.rm_trigger(trigger_name)

    c = r["counts"]
    c["batch_of_100"] = counted(add_100_in_a_batch)
    c["remove_100_in_a_batch"] = counted(remove_100_in_a_batch)
    c["without_a_batch_10"] = counted(add_10_without_a_batch)
    c["add_trigger"] = counted(add_trigger)
    c["rm_trigger"] = counted(rm_trigger)
    c["clean"] = counted(clean_after_10)
    r["left_after_clean"] = len(cm.callbacks)
    r["before_nested"] = _pyrebox.registry_stats()
    c["nested"] = counted(nested)
    del r["before_nested"]
    c["raising_batch"] = counted(raising)
    # The identity callback again (clean() removed it).
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_identity, name="identity",
                    addr=SYMBOLS["pyrebox_identity"])


def on_identity(cpu_index, cpu):
    global kept_from_identity
    r["identity_calls"] += 1
    r["rdi_before"] = cpu.RDI & 0xFFFFFFFF
    cpu.RDI = 99
    r["rdi_cached"] = cpu.RDI
    r["edi_cached"] = cpu.EDI
    r["rdi_read"] = api.r_cpu(cpu_index).RDI
    cpu.RSI = 0x1234
    cpu.ESI = 0x5678  # a 32-bit write zero-extends
    r["rsi_after_esi"] = api.r_cpu(cpu_index).RSI
    r["errors"]["unknown"] = error_of(lambda: setattr(cpu, "FOO", 1))
    r["errors"]["lower_case"] = error_of(lambda: setattr(cpu, "rdi", 1))
    r["errors"]["cpu_index"] = error_of(lambda: setattr(cpu, "CPU_INDEX", 1))
    r["errors"]["kept_from_main"] = error_of(lambda: setattr(kept_from_main, "RAX", 1))
    r["errors"]["r_cpu"] = error_of(lambda: setattr(api.r_cpu(cpu_index), "RAX", 1))
    r["errors"]["negative"] = error_of(lambda: setattr(cpu, "RAX", -1))
    kept_from_identity = cpu


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_main, name="main", addr=SYMBOLS["main"])


def clean():
    r["errors"]["kept_outside"] = error_of(lambda: setattr(kept_from_identity, "RDI", 1))
    r["kept_rdi"] = kept_from_identity.RDI if kept_from_identity is not None else None
    r["errors"]["fresh_outside"] = error_of(lambda: setattr(Cpu(0), "RAX", 1))
    r["is_write_error"] = {k: v is not None and v[0] == CpuWriteError.__name__
                           for k, v in r["errors"].items()}
    printer("RESULT " + json.dumps(r))
    cm.clean()
