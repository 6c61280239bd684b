"""api.backtrace and the shell's `k` on bt_chain (tests/guest/programs):
at the process's first write(2), inside the kernel (an INSN_BEGIN on
ksys_write in its address space), then at a breakpoint on bt_leaf's first
instruction in the second round, with the shell's `k` and `ln` (its address: the module's base plus
bt_leaf's value, given by the test in bt_facts.json). Writes one RESULT
line."""

import contextlib
import io
import json
import os

import api
from api import BP, CallbackManager

cm = None
printer = None
facts = {}
r = {"kernel": None, "kernel_stop": None, "user": None, "user_stop": None, "k": None,
     "ln": None, "errors": []}
bps = []


def frames(trace):
    return [{"text": f.text, "module": f.module, "symbol": f.symbol, "how": f.how,
             "kernel": f.kernel, "pc": f.pc, "sp": f.sp} for f in trace]


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported to the test
            import traceback
            r["errors"].append(f"{fn.__name__}: {type(e).__name__}: {e}\n"
                               f"{traceback.format_exc()}")
    wrapper.__name__ = fn.__name__
    return wrapper


@guarded
def on_create(pid, pgd, name):
    if name != "bt_chain":
        return

    @guarded
    def on_first_write(cpu_index, cpu):
        cm.rm_callback("first_write")
        trace = api.backtrace(cpu_index, cpu=cpu)
        r["kernel"], r["kernel_stop"] = frames(trace), trace.stop
        base = [m["base"] for m in api.get_module_list(pgd) if m["name"] == "bt_chain"][0]
        bp = BP(base + facts["bt_leaf"], pgd, func=on_leaf)
        bp.enable()
        bps.append(bp)

    cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_first_write, name="first_write",
                    addr=api.sym_to_va(0, "vmlinux", "ksys_write"), pgd=pgd)


@guarded
def on_leaf(cpu_index, cpu):
    bps[0].disable()
    trace = api.backtrace(cpu_index, cpu=cpu)
    r["user"], r["user_stop"] = frames(trace), trace.stop
    from pyrebox.shell import Shell
    shell = Shell(cpu_index, origin="script")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        shell.run_line("k")
    r["k"] = out.getvalue()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        shell.run_line(f"ln {trace[1].pc:x}")
    r["ln"] = out.getvalue()


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    with open(os.path.join(os.getcwd(), "bt_facts.json")) as f:
        facts.update(json.load(f))
    cm = CallbackManager(module_hdl)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")


def clean():
    printer("RESULT " + json.dumps(r))
    for bp in bps:
        bp.remove()
    cm.clean()
