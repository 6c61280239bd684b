"""PyREBox's `utils` module for scripts: printing on the PyREBox console
(printf style), the run's settings, finding processes (pyrebox.script_utils
says which of PyREBox's helpers do not apply)."""

from pyrebox.script_utils import (ConfigurationManager, find_procs, get_addr_space,  # noqa: F401
                                  pp_debug, pp_error, pp_print, pp_warning)

__all__ = ["pp_print", "pp_debug", "pp_warning", "pp_error", "ConfigurationManager",
           "find_procs", "get_addr_space"]
