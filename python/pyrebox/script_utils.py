"""The helpers of PyREBox's `utils` module beyond printing, for Linux guests.

- pp_print / pp_debug / pp_warning / pp_error(f, *args): PyREBox's printf
  style (`pp_print("%d processes\\n", n)`); with no args the text is printed
  as it is (a lone `%` is no format error).
- ConfigurationManager: the run's settings as class attributes (PyREBox's
  names): `config` (pyrebox.conf as a ConfigParser; empty without one),
  `platform` ("x86_64-softmmu" or "i386-softmmu"), `vol_profile` ([VOL]
  profile, or None), `agent_filename` ([AGENT] name, or None).
- find_procs(param): processes whose pid or pgd is `param` read as hex, or
  whose name matches it (a shell wildcard, or a substring): [(pid, pgd,
  name)], as PyREBox's shell commands find them.

What does not apply: Volatility 2's address space (`get_addr_space`,
`ConfigurationManager.addr_space`, `vol_conf`, `volatility_path`) — PyREBox
runs Volatility 3, whose plugins scripts call with api.vol; and PyREBox's
opcode agent's buffer (`agent_buffer_offset`, `agent_buffer_size`: None) —
the guest agent plugin speaks to qemu-guest-agent. get_addr_space raises
NotImplementedError saying so.
"""

from __future__ import annotations

import configparser
import fnmatch

from . import machine, output


def _formatted(f, args) -> str:
    return f % args if args else f"{f}"


def pp_print(f="", *args) -> None:
    output.pp_print(_formatted(f, args))


def pp_debug(f="", *args) -> None:
    output.pp_debug(_formatted(f, args))


def pp_warning(f="", *args) -> None:
    output.pp_warning(_formatted(f, args))


def pp_error(f="", *args) -> None:
    output.pp_error(_formatted(f, args))


class ConfigurationManager:
    """The run's settings (set by `configure` when PyREBox starts)."""
    config: configparser.ConfigParser = configparser.ConfigParser(interpolation=None)
    platform: str | None = None
    vol_profile: str | None = None
    agent_filename: str | None = None
    # PyREBox's opcode agent and Volatility 2: not applicable (always None).
    agent_buffer_offset = None
    agent_buffer_size = None
    volatility_path = None
    vol_conf = None
    addr_space = None


def configure(sections: dict[str, dict[str, str]], target: str) -> None:
    """Fills ConfigurationManager from pyrebox.conf's sections and the QEMU
    target ("x86_64" or "i386")."""
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # module names keep their case, as written
    parser.read_dict(sections)
    ConfigurationManager.config = parser
    ConfigurationManager.platform = f"{target}-softmmu"
    ConfigurationManager.vol_profile = sections.get("VOL", {}).get("profile")
    ConfigurationManager.agent_filename = sections.get("AGENT", {}).get("name")


def get_addr_space(pgd=None):
    raise NotImplementedError(
        "utils.get_addr_space() returns a Volatility 2 address space, which this PyREBox "
        "does not have (it runs Volatility 3): read guest memory with api.r_va(pgd, addr, "
        "size) or api.r_pa(addr, size), and run Volatility 3 plugins with api.vol(...)")


def find_procs(param: str) -> list[tuple[int, int, str]]:
    """[(pid, pgd, name)] of the processes whose pid or pgd is `param` as a
    hex number, or whose name matches `param` (wildcard or substring)."""
    number = None
    name = None
    try:
        number = int(param, 16)
    except (TypeError, ValueError):
        name = str(param)
    found = []
    for proc in machine.get_process_list():
        pid, pgd, pname = proc["pid"], proc["pgd"], proc["name"]
        if (number is not None and number in (pid, pgd)) or (
                name is not None and (fnmatch.fnmatch(pname, name) or name in pname)):
            found.append((pid, pgd, pname))
    return found
