"""The demo script of `make demo`: shows the script life-cycle.

A PyREBox script defines initialize_callbacks(module_hdl, printer), called
when the script is loaded, and clean(), called when it is unloaded (here:
when the VM powers off).
"""

import sys

import utils

from pyrebox import runtime

printer = None


def initialize_callbacks(module_hdl, pyrebox_printer):
    global printer
    printer = pyrebox_printer
    printer(f"demo script loaded (module handle {module_hdl})")
    printer(f"QEMU target {runtime.target}, plugin API {runtime.qemu_plugin_api}, "
            f"Python {sys.version.split()[0]} from {sys.prefix}")
    utils.pp_print("utils.pp_print reaches the PyREBox console too")


def clean():
    printer("demo script unloaded: the guest powered off")
