"""odd_names' names through introspection: at pyrebox_names_ready (its
address from names_probe.json in the working directory) the process list,
the process's modules and symbols and every process's symbols; the
LOADMODULE and CREATEPROC events of odd_names and its child. Names are
written with ascii() (lone surrogates kept). Writes one RESULT line."""

import json
import os

import api
from api import CallbackManager

cm = None
printer = None
r = {"created": [], "modules_loaded": [], "errors": [], "ready": 0, "extra_loaded": 0}
with open(os.path.join(os.getcwd(), "names_probe.json")) as f:
    READY = json.load(f)["ready"]
pgds = set()


def on_create(params):
    if params["name"] == "odd_names" or \
            params["name"].encode("utf-8", "surrogateescape").startswith(b"\xff\xfe"):
        r["created"].append([params["pid"], ascii(params["name"])])
    if params["name"] == "odd_names":
        pgds.add(params["pgd"])
        api.start_monitoring_process(params["pgd"])


def extra(name):
    """One of the files f0, f1... odd_names maps beside deep.bin."""
    return name[:1] == "f" and name[1:].isdigit()


def on_load(params):
    if params["pgd"] not in pgds:
        return
    if extra(params["name"]):
        r["extra_loaded"] += 1
    elif params["fullname"].startswith(("/tmp/", "/...")):
        r["modules_loaded"].append([params["pid"], ascii(params["name"]),
                                    ascii(params["fullname"])])


def attempt(what, fn):
    try:
        return fn()
    except Exception as e:  # noqa: BLE001 - reported to the test
        r["errors"].append(f"{what}: {type(e).__name__}: {e}")
        return None


def api_error(fn):
    """The exception's type name and message (None: no exception)."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001 - reported to the test
        return [type(e).__name__, str(e)]
    return None


def rss_mib():
    """This process's (QEMU's) resident memory, in MiB."""
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) // 1024 for l in f if l.startswith("VmRSS:"))


def on_ready(cpu_index, cpu):
    r["ready"] += 1
    pgd = api.get_running_process(cpu_index)
    # The module list of thousands of deep files, three times: what one call
    # takes it gives back (nothing kept between calls).
    rss = [rss_mib()]
    for _ in range(3):
        r["module_count"] = len(attempt("get_module_list", lambda: api.get_module_list(pgd)) or [])
        rss.append(rss_mib())
    r["rss_mib"] = rss
    procs = attempt("get_process_list", api.get_process_list) or []
    r["process"] = [ascii(p["name"]) for p in procs if p["pgd"] == pgd]
    modules = attempt("get_module_list", lambda: api.get_module_list(pgd)) or []
    r["modules"] = [[ascii(m["name"]), ascii(m["fullname"]), m["base"], m["size"]]
                    for m in modules if m["fullname"].startswith(("/tmp/", "/..."))
                    and not extra(m["name"])]
    r["extra_files"] = sorted(m["name"] for m in modules
                              if m["fullname"].startswith("/...") and extra(m["name"]))
    symbols = attempt("get_symbol_list", lambda: api.get_symbol_list(pgd))
    r["symbols"] = None if symbols is None else len(symbols)
    everyone = attempt("get_symbol_list(None)", lambda: api.get_symbol_list(None))
    r["symbols_all"] = None if everyone is None else len(everyone)
    # A name that is not UTF-8 goes back to the guest as its own bytes.
    bad = [m for m in modules if m["name"].startswith("bad-")]
    r["va_to_sym_bad"] = attempt("va_to_sym", lambda: ascii(api.va_to_sym(pgd, bad[0]["base"]))
                                 if bad else None)
    # Physical addresses that are device registers, not memory.
    r["device_reads"] = [api_error(lambda a=a: api.r_pa(a, 4)) for a in
                         (0xfee00000, 0xfec00000, 0xfed00000)]
    r["ram_read"] = len(api.r_pa(0x1000, 16))
    r["huge_read"] = api_error(lambda: api.r_va(pgd, bad[0]["base"], 2 ** 32))
    r["sym_to_va_bad"] = attempt("sym_to_va", lambda: api.sym_to_va(pgd, bad[0]["name"], "x")
                                 if bad else "no module")


def initialize_callbacks(module_hdl, p):
    global cm, printer
    printer = p
    cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.LOADMODULE_CB, on_load, name="load")
    old = CallbackManager(module_hdl)
    old.add_callback(CallbackManager.INSN_BEGIN_CB, on_ready, addr=READY, name="ready")
    globals()["old_cm"] = old


def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
    old_cm.clean()
