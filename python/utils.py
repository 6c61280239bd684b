"""PyREBox's `utils` module for scripts: printing on the PyREBox console."""

from pyrebox import output as _output


def pp_print(text=""):
    _output.write("[pyrebox] ", text)


def pp_debug(text=""):
    _output.write("[pyrebox] debug: ", text)


def pp_warning(text=""):
    _output.write("[pyrebox] warning: ", text)


def pp_error(text=""):
    _output.write("[pyrebox] error: ", text)
