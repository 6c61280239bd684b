"""api.on_return and BP(..., on_return=f) on the `returns` test program
(addresses from its symbol table, given by the test in returns_facts.json):
pyrebox_square through an INSN_BEGIN callback that calls api.on_return
(new style), pyrebox_fact, pyrebox_dive and the kernel's ksys_write (in the program's
address space) through breakpoints with on_return (old style). Placed at the program's CREATEPROC, removed at its
REMOVEPROC. Writes one RESULT line."""

import json
import os

import api
from api import BP, CallbackManager
from pyrebox import returns

cm = None
cm_new = None  # new style: square's entry callback
printer = None
facts = {}
r = {"writes": [], "write_returns": [], "square": [], "fact_entries": [], "fact_returns": [], "dive_entries": [],
     "dive_returns": [], "errors": [], "outside": None, "not_callable": None,
     "at_remove": None}
bps = []


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported to the test
            r["errors"].append(f"{fn.__name__}: {type(e).__name__}: {e}")
    wrapper.__name__ = fn.__name__
    return wrapper


@guarded
def on_create(pid, pgd, name):
    if name != "returns" or bps:
        return

    @guarded
    def square_entry(params):
        api.on_return(params["cpu_index"], square_return, new_style=True)

    @guarded
    def square_return(d):
        r["square"].append({"retval": d["retval"], "return_address": d["return_address"],
                            "sp": d["sp"], "entry_pc": d["entry_pc"], "pgd_ok": d["pgd"] == pgd,
                            "pc": d["cpu"].PC, "cpu_index": d["cpu_index"]})

    cm_new.add_callback(CallbackManager.INSN_BEGIN_CB, square_entry, name="square",
                    addr=facts["pyrebox_square"], pgd=pgd)

    @guarded
    def fact_entry(cpu_index, cpu):
        r["fact_entries"].append([cpu.RDI, cpu.RSP])
        if r["not_callable"] is None:
            try:
                api.on_return(cpu_index, 5)
            except Exception as e:  # noqa: BLE001 - reported to the test
                r["not_callable"] = f"{type(e).__name__}: {e}"

    @guarded
    def fact_return(cpu_index, cpu, retval):
        r["fact_returns"].append([retval, cpu.PC, cpu.RSP])

    @guarded
    def dive_entry(cpu_index, cpu):
        # The hit arranged this call's return already.
        r["dive_entries"].append([cpu.RDI, len(api.pending_returns())])

    @guarded
    def dive_return(cpu_index, cpu, retval):
        r["dive_returns"].append(retval)

    @guarded
    def write_entry(cpu_index, cpu):
        r["writes"].append([cpu.RDX, api.pending_returns()[-1]["kernel"]])

    @guarded
    def write_return(cpu_index, cpu, retval):
        r["write_returns"].append(retval)

    ksys_write = api.sym_to_va(0, "vmlinux", "ksys_write")
    for bp in (BP(facts["pyrebox_fact"], pgd, func=fact_entry, on_return=fact_return),
               BP(facts["pyrebox_dive"], pgd, func=dive_entry, on_return=dive_return),
               BP(ksys_write, pgd, func=write_entry, on_return=write_return)):
        bp.enable()
        bps.append(bp)


@guarded
def on_remove(pid, pgd, name):
    if name == "returns" and bps:
        r["at_remove"] = {"stats": returns.stats(), "pending": api.pending_returns(),
                          "site_callbacks": len(returns._sites)}
        for bp in bps:
            bp.remove()
        bps.clear()
        cm_new.rm_callback("square")


def initialize_callbacks(module_hdl, printer_fn):
    global cm, cm_new, printer
    printer = printer_fn
    with open(os.path.join(os.getcwd(), "returns_facts.json")) as f:
        facts.update(json.load(f))
    try:
        api.on_return(0, print)
        r["outside"] = "accepted"
    except Exception as e:  # noqa: BLE001 - reported to the test
        r["outside"] = f"{type(e).__name__}: {e}"
    cm = CallbackManager(module_hdl)
    cm_new = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
    cm_new.clean()
