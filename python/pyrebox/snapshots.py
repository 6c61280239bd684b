"""api.save_vm / api.load_vm: QEMU snapshots (savevm/loadvm) of the running
VM, kept in the run's qcow2 disk (`pyrebox run --disk FILE` keeps them across
runs).

From the shell, the console or a script thread they complete before
returning. Inside a callback the vCPU is in the middle of an instruction
and QEMU can only stop the VM once the callback has returned: the request
is then queued, the call returns at once, and the snapshot is taken (or
loaded) right after the callback returns, a few instructions later; errors
are printed on the console. A loadvm of a name the disk does not hold raises
at once, and a loadvm that fails leaves the VM as it was (running or not). After a loadvm PyREBox re-reads the vCPUs'
address spaces and the process and module tables, stops monitoring pgds no
process has in the restored machine, and drops the pending function returns
(api.on_return).
"""

from __future__ import annotations

import threading

from . import output, qmp, returns, syscall_meta, syscall_names
from .native import pyrebox as _pyrebox
from .qmp import QmpError
from .qmp_client import check_snapshot_name, snapshot

_queue_lock = threading.Lock()  # queued requests run one at a time, in order
_pending_lock = threading.Lock()
_pending = 0  # requests queued from callbacks and not finished yet


def _run(verb: str, name: str) -> None:
    """Runs the request on the plugin's own QMP connection. QEMU's loadvm
    stops the VM before it looks for the snapshot and, when loading fails,
    leaves it stopped; a VM that was running is continued then, so a failed
    loadvm leaves the VM as it was."""
    if verb != "loadvm":
        snapshot(qmp, verb, name)
        return
    try:
        snapshot(qmp, verb, name)
        # The calls whose returns were pending are not in the restored
        # machine, whose kernel may be another one.
        returns.forget_all()
        syscall_names.forget()
        syscall_meta.forget()
    except QmpError:
        # "restore-vm" is the run state QEMU's loadvm stops a running VM
        # with; a VM that was paused stays "paused" and is left so.
        try:
            if qmp.command("query-status").get("status") == "restore-vm":
                qmp.command("cont")
        except QmpError as e:
            output.error(f"loadvm {name} failed and the VM could not be continued: {e}")
        raise


def snapshot_names() -> set[str]:
    """The names of the snapshots in the VM's disks, as QEMU lists them."""
    names = set()
    for device in qmp.command("query-block") or []:
        image = (device.get("inserted") or {}).get("image") or {}
        names.update(s["name"] for s in image.get("snapshots") or [])
    return names


def _check_loadable(name: str) -> None:
    """From a callback, an unknown snapshot is refused before the request is
    queued, so the script gets the error. Not when requests are still queued
    (a savevm among them may create the name); the queued load then reports
    its failure, and the VM goes on either way."""
    with _pending_lock:
        if _pending:
            return
    try:
        names = snapshot_names()
    except QmpError:
        return  # not known here: QEMU's own load reports it
    if name not in names:
        have = ", ".join(sorted(names)) or "none"
        raise RuntimeError(f"loadvm {name}: no snapshot named {name!r} in this VM's disk "
                           f"(snapshots: {have}); the VM goes on")


def _request(verb: str, name: str) -> None:
    global _pending
    check_snapshot_name(name)
    if not _pyrebox.vm_started():
        raise RuntimeError(f"{verb} {name}: the VM has not started yet (call it from a "
                           f"callback or the shell once the guest runs)")
    if _pyrebox.in_callback():
        if verb == "loadvm":
            _check_loadable(name)

        def later():
            global _pending
            try:
                with _queue_lock:
                    try:
                        _run(verb, name)
                        output.message(f"{verb} {name} done")
                    except (QmpError, RuntimeError, OSError) as e:
                        goes_on = "; the VM goes on" if verb == "loadvm" else ""
                        output.error(f"{verb} {name} failed: {e}{goes_on}")
            finally:
                with _pending_lock:
                    _pending -= 1

        with _pending_lock:
            _pending += 1
        threading.Thread(target=later, name=f"pyrebox-{verb}", daemon=True).start()
        return
    try:
        _run(verb, name)
    except QmpError as e:
        raise RuntimeError(str(e)) from None


def save_vm(name: str) -> None:
    """Saves the VM as snapshot `name` (replacing one of that name)."""
    _request("savevm", name)


def load_vm(name: str) -> None:
    """Restores snapshot `name`; the VM continues from there. Inside a
    callback, an unknown name raises RuntimeError at once; a load that fails
    later leaves the VM running."""
    _request("loadvm", name)
