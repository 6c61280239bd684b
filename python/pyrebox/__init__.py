"""PyREBox: a Python-scriptable reverse-engineering sandbox on stock QEMU.

Inside QEMU (the plugin's embedded interpreter) this package is the scripting
surface; outside it, `pyrebox.cli` is the launcher.
"""

__version__ = "0.1.0"
