"""PyREBox's `utils` module for scripts: printing on the PyREBox console."""

from pyrebox.output import pp_debug, pp_error, pp_print, pp_warning  # noqa: F401

__all__ = ["pp_print", "pp_debug", "pp_warning", "pp_error"]
