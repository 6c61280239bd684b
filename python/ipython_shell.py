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

from pyrebox.interactive import start_shell  # noqa: F401

__all__ = ["start_shell"]
