"""api.BP on static_loop (addresses from its symbol table, given by the test
in bp_facts.json) and on dyn_libc's libc getpid ("libc.so.6!getpid"):
execution at one address and over a range, memory reads and writes over the
buffer, physical reads and writes of the buffer's page, disable from inside
a hit. Breakpoints are placed at the programs' CREATEPROC and removed at
their REMOVEPROC. On fork_getpid, a breakpoint on libc's getpid that follows
the process's children counts the hits of each pid. Writes one RESULT
line."""

import json
import os

import api
from api import BP, CallbackManager

cm = None
printer = None
facts = {}
r = {"exec": 0, "exec_until_disabled": 0, "range_pcs": [], "writes": [], "reads": 0,
     "phys_writes": 0, "phys_reads": 0, "getpid_hits": [], "listed": [], "errors": [],
     "pending_hits": [], "load_hits": [], "follow_hits": {}, "follow_rips": {},
     "follow_children": {},
     "bad": {}}
bps = []
follow = None
pids_by_pgd = {}


def guarded(fn):
    def wrapper(*args):
        try:
            fn(*args)
        except Exception as e:  # noqa: BLE001 - reported to the test
            r["errors"].append(f"{fn.__name__}: {type(e).__name__}: {e}")
    wrapper.__name__ = fn.__name__
    return wrapper


def place(bp):
    bp.enable()
    bps.append(bp)
    return bp


@guarded
def on_create(pid, pgd, name):
    global follow
    pids_by_pgd[pgd] = pid
    if name == "fork_getpid" and follow is None:
        # At its exec: libc is not mapped yet, the breakpoint waits for it.
        follow = BP("libc.so.6!getpid", pgd, func=on_follow, new_style=True, children=True)
        follow.enable()
        r["follow_root"] = [pid, follow.pending(), str(follow)]
    if name == "static_loop" and not bps:
        func, buf = facts["pyrebox_step"], facts["pyrebox_buffer"]

        def on_exec(cpu_index, cpu):
            r["exec"] += 1
            if r["exec"] == 2:  # the buffer's page exists after the first store
                pa = api.va_to_pa(pgd, buf)
                place(BP(pa, None, 4096, BP.MEM_WRITE_PHYS, func=on_phys_write))
                place(BP(pa, None, 4096, BP.MEM_READ_PHYS, func=on_phys_read))

        def until_disabled(cpu_index, cpu):
            r["exec_until_disabled"] += 1
            if r["exec_until_disabled"] == 5:
                stop.disable()

        place(BP(func, pgd, func=on_exec))
        stop = place(BP(func, pgd, func=until_disabled))
        place(BP(func, pgd, size=facts["pyrebox_step_size"], func=on_range))
        place(BP(buf, pgd, 4096, BP.MEM_WRITE, func=on_write))
        place(BP(buf, pgd, 4096, BP.MEM_READ, func=on_read))
    elif name == "dyn_libc":
        r["dyn_libc_pgd"] = pgd
        bad_inputs()  # once the kernel is located: a missing symbol is then an error
        r["lookups"] = [list(api.symbol_lookup(0, "no_such_module", "x")),
                        list(api.symbol_lookup(0, "vmlinux", "no_such_symbol_here")),
                        api.symbol_lookup(0, "vmlinux", "init_task")[1]]
        # libc's symbols can be read once the loader has relocated it: wait
        # for the program's first write(2), then break on libc's getpid.
        write_syscall = api.sym_to_va(0, "vmlinux", "ksys_write")

        @guarded
        def on_first_write(cpu_index, cpu):
            cm.rm_callback("first_write")
            place(BP("libc.so.6!getpid", pgd, func=on_getpid, new_style=True))

        cm.add_callback(CallbackManager.INSN_BEGIN_CB, on_first_write, name="first_write",
                        addr=write_syscall, pgd=pgd)


def on_range(cpu_index, cpu):
    r["range_pcs"].append(cpu.RIP)


def on_write(cpu_index, vaddr, size, haddr, data):
    r["writes"].append([vaddr - facts["pyrebox_buffer"], size, data])


def on_read(cpu_index, vaddr, size, haddr):
    r["reads"] += 1


def on_phys_write(cpu_index, vaddr, size, haddr, data):
    r["phys_writes"] += 1


def on_phys_read(cpu_index, vaddr, size, haddr):
    r["phys_reads"] += 1


def on_getpid(params):
    r["getpid_hits"].append(params["cpu"].RIP)


def on_pending_getpid(params):
    r["pending_hits"].append([params["cpu"].RIP, api.get_running_process(params["cpu_index"])])


@guarded
def on_follow(params):
    pgd = api.get_running_process(params["cpu_index"])
    pid = str(pids_by_pgd.get(pgd))
    r["follow_hits"][pid] = r["follow_hits"].get(pid, 0) + 1
    r["follow_rips"].setdefault(pid, [])
    if params["cpu"].RIP not in r["follow_rips"][pid]:
        r["follow_rips"][pid].append(params["cpu"].RIP)
    for child in follow.children():
        if child.get_pgd() == pgd:
            r["follow_children"][pid] = [child.parent(), child.get_addr(), str(child)]


def on_load_getpid(params):
    r["load_hits"].append(params["cpu"].RIP)


@guarded
def on_load(params):
    """At libc's LOADMODULE in dyn_libc (its first mmap by the loader, the
    process has touched none of it yet): a breakpoint on its getpid."""
    if params["name"] == "libc.so.6" and params["pgd"] == r.get("dyn_libc_pgd"):
        bp = place(BP("libc.so.6!getpid", params["pgd"], func=on_load_getpid, new_style=True))
        r["at_load"] = bp.get_addr()


@guarded
def on_remove(pid, pgd, name):
    if follow is not None and pgd == follow.get_pgd():
        # The children exited before: their breakpoints went with them.
        r["follow_end"] = [len(follow.children()),
                           [b.id for b in BP.list() if b.parent() == follow.id]]
        follow.remove()
    if name in ("static_loop", "dyn_libc"):
        if name == "dyn_libc":  # a later process may get its pgd
            r["dyn_libc_gone"] = r.pop("dyn_libc_pgd", None)
        r["listed"] += [str(b) for b in BP.list() if b.enabled()]
        for b in list(bps):
            b.remove()
        bps.clear()


def bad_inputs():
    for label, make in (
            ("type", lambda: BP(0x1000, 0, typ=9)),
            ("size", lambda: BP(0x1000, 0, size=-1)),
            ("addr", lambda: BP(3.5, 0)),
            ("func", lambda: BP(0x1000, 0, func=42)),
            ("symbol", lambda: BP("vmlinux!no_such_function", 0)),
            ("children", lambda: BP(0x1000, 0x1000, children=True))):
        try:
            make()
            r["bad"][label] = "accepted"
        except Exception as e:  # noqa: BLE001
            r["bad"][label] = f"{type(e).__name__}: {e}"


def initialize_callbacks(module_hdl, printer_fn):
    global cm, printer
    printer = printer_fn
    with open(os.path.join(os.getcwd(), "bp_facts.json")) as f:
        facts.update(json.load(f))
    cm = CallbackManager(module_hdl)
    global new_cm
    new_cm = CallbackManager(module_hdl, new_style=True)
    cm.add_callback(CallbackManager.CREATEPROC_CB, on_create, name="create")
    cm.add_callback(CallbackManager.REMOVEPROC_CB, on_remove, name="remove")
    new_cm.add_callback(CallbackManager.LOADMODULE_CB, on_load, name="load")
    # Before any program maps libc: a pending breakpoint, and lookups' reasons.
    pending = BP("libc.so.6!getpid", None, func=on_pending_getpid, new_style=True)
    pending.enable()
    r["pending_initial"] = [pending.pending(), pending.get_addr(), pending.enabled()]



def clean():
    printer("RESULT " + json.dumps(r))
    cm.clean()
    new_cm.clean()
