"""PyREBox's `ipython_shell` module for scripts: start_shell().

    import ipython_shell
    ipython_shell.start_shell()          # e.g. inside a callback

Opens the PyREBox shell on the console and returns when the user leaves it.
Inside a callback, the vCPU running it stays stopped at that point (other
vCPUs are kept out of guest code too) and the shell's commands see the state
of the event; leaving resumes exactly there. With no console client attached,
a message says how to attach (`pyrebox attach`, or the escape key of
`pyrebox run`) and the VM stays frozen until someone does.
"""

from __future__ import annotations

import threading


def start_shell(cpu_index: int = 0, reason: str | None = None) -> None:
    """Opens the shell on vCPU `cpu_index`; `reason`, if given, is shown in
    its banner (e.g. which breakpoint was hit)."""
    import _pyrebox

    from pyrebox import console, output, shell

    server = console.server()
    if server is None:
        output.error("start_shell: this QEMU has no PyREBox console (the plugin argument "
                     "console=PATH, which pyrebox run passes); the shell is not opened")
        return
    if shell.in_shell():
        print("start_shell: already in the PyREBox shell")
        return
    num = _pyrebox.num_cpus()
    if not isinstance(cpu_index, int) or not 0 <= cpu_index < num:
        raise ValueError(f"start_shell: no vCPU {cpu_index!r} (this VM has {num})")
    request = console.ShellRequest(cpu_index, reason)
    in_callback = _pyrebox.callback_vcpu() >= 0
    frozen = num > 1 and in_callback and _pyrebox.freeze_other_vcpus()
    # The guest's clock stops too, so the time spent in the shell does not
    # reach the guest as a jump (timers firing at once, stall warnings).
    clock_stopped = in_callback and _pyrebox.stop_guest_clock()
    try:
        server.request_shell(request)
        if not request.taken.wait(0.3):
            where = server.path.rsplit("/", 1)[0] if "/" in server.path else server.path
            output.message(
                f"{console.WAITING_SHELL_MARKER}: a script opened the shell on vCPU "
                f"{cpu_index} ({threading.current_thread().name}); the VM is frozen until "
                f"you attach: pyrebox attach {where} (or Ctrl-] in the pyrebox run terminal)")
        request.serve()
    finally:
        if clock_stopped:
            _pyrebox.start_guest_clock()
        if frozen:
            _pyrebox.thaw_other_vcpus()


__all__ = ["start_shell"]
