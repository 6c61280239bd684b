"""api.save_vm / api.load_vm: QEMU snapshots (savevm/loadvm) of the running
VM, kept in the run's qcow2 disk (`pyrebox run --disk FILE` keeps them across
runs).

From the shell, the console or a script thread they complete before
returning. Inside a callback the vCPU is in the middle of an instruction
and QEMU can only stop the VM once the callback has returned: the request
is then queued, the call returns at once, and the snapshot is taken (or
loaded) right after the callback returns, a few instructions later; errors
are printed on the console. After a loadvm PyREBox re-reads the vCPUs'
address spaces and the process and module tables, and stops monitoring
pgds no process has in the restored machine.
"""

from __future__ import annotations

import threading

import _pyrebox

from . import qmp
from .qmp import QmpError
from .qmp_client import check_snapshot_name, snapshot

_queue_lock = threading.Lock()


def _run(verb: str, name: str) -> None:
    snapshot(qmp, verb, name)  # the plugin's own QMP connection


def _request(verb: str, name: str) -> None:
    check_snapshot_name(name)
    if not _pyrebox.vm_started():
        raise RuntimeError(f"{verb} {name}: the VM has not started yet (call it from a "
                           f"callback or the shell once the guest runs)")
    if _pyrebox.in_callback():
        def later():
            with _queue_lock:
                try:
                    _run(verb, name)
                    print(f"[pyrebox] {verb} {name} done")
                except (QmpError, RuntimeError, OSError) as e:
                    print(f"[pyrebox] error: {verb} {name} failed: {e}")
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
    """Restores snapshot `name`; the VM continues from there."""
    _request("loadvm", name)
