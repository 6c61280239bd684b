"""The PyREBox shell: IPython inside QEMU with PyREBox's commands.

A Shell runs on the thread that serves it (the console session after the
VM was stopped, or the vCPU thread of a script that called
ipython_shell.start_shell()); the console relays lines typed by the client
to run_line() and its output back. Every command is also an IPython line
magic, so it works with and without `%`; anything that is not a command is
Python, run by one IPython InteractiveShell shared by every shell of the run
(variables survive between shells).

Conventions (docs/shell.md): numbers are hex by default (`10` is 0x10;
pids are decimal), `p` before an address makes it physical (`p0x1000`),
`mod!sym[+off]` and register names are accepted wherever an address is,
`{python expr}` is expanded first, `addr:n` gives a length in bytes (hex),
`cmd?` shows a command's help.
"""

from __future__ import annotations

import ast
import difflib
import fnmatch
import inspect
import keyword
import os
import re
import shlex
import string
import struct

import api
from . import interactive, machine, output, paths, script_api, symbol_files, symbolize
from .interactive import in_shell  # noqa: F401 - part of this module's API
from .native import pyrebox as _pyrebox
from .unwind.frames import location

LEAVE_WORDS = ("q", "c", "continue", "quit", "exit")
X_LIMIT = 200  # symbols `x` prints at most (vmlinux!* has ~90,000)
COMPLETION_LIMIT = 100  # completions offered at most for one Tab
# The commands whose argument starts with an address (or, for x, MOD!SYM):
# Tab completes module and symbol names there.
ADDRESS_COMMANDS = ("bp", "bpr", "bpw", "x", "ln", "dis", "u", "db", "dw", "dd", "dq", "eb",
                    "ew", "ed", "eq", "write", "dump", "strings", "s")
INVALID = (machine.InvalidAddress, machine.IntrospectionError, ValueError, TypeError,
           RuntimeError, OSError, KeyError, IndexError)


class CommandError(Exception):
    """Bad input to a shell command; the message says what is wrong."""


_ipython = None
_active: "Shell | None" = None
# Breakpoint id -> the MOD!SYM[+off] text the shell made it from: breakpoints
# live as long as the run, and api.BP keeps only the resolved address.
_bp_labels: dict[int, str] = {}


def _interactive_shell():
    """The one IPython InteractiveShell of the run (created on first use)."""
    global _ipython
    if _ipython is None:
        from IPython.core.interactiveshell import InteractiveShell
        from traitlets.config import Config
        cfg = Config()
        cfg.HistoryManager.enabled = False
        cfg.InteractiveShell.colors = "nocolor"
        cfg.InteractiveShell.autocall = 0
        cfg.InteractiveShell.automagic = True
        # IPython's own completer: jedi's static analysis is slow and would
        # run inside QEMU with the VM frozen.
        cfg.IPCompleter.use_jedi = False
        _ipython = InteractiveShell.instance(config=cfg)
        for name in COMMANDS:
            _ipython.register_magic_function(_magic_for(name), "line", name)
        _ipython.user_ns.update({"api": api})
    return _ipython


def _magic_for(name):
    def magic(line):
        if _active is None:
            print(f"{name}: no PyREBox shell is active")
            return
        _active.dispatch(name, line)  # IPython has expanded {expr} already
    magic.__doc__ = getattr(Shell, "cmd_" + name).__doc__
    magic.__name__ = name
    return magic


def _terms(text: str) -> list[tuple[int, str]]:
    """`a+b-c` -> [(1, a), (1, b), (-1, c)]. A module name may hold '-'
    (`ld-linux-x86-64.so.2!_dl_start+10`): the part before a '!' is one
    term up to the previous '+' (or the start)."""
    out: list[tuple[int, str]] = []
    for chunk in text.split("+"):
        chunk = chunk.strip()
        if not chunk:
            raise CommandError(f"'{text}': a term is missing around '+'")
        sign = 1
        if "!" in chunk:
            mod, _, rest = chunk.partition("!")
            sym, *minus = rest.split("-")
            if not mod.strip() or not sym.strip():
                raise CommandError(f"'{chunk}': give MODULE!SYMBOL")
            out.append((1, f"{mod.strip()}!{sym.strip()}"))
            pieces = minus
            sign = -1
        else:
            pieces = chunk.split("-")
            if pieces[0].strip() == "" and len(pieces) > 1:
                pieces = pieces[1:]
                sign = -1
        for i, piece in enumerate(pieces):
            piece = piece.strip()
            if not piece:
                raise CommandError(f"'{text}': a term is missing around '-'")
            out.append((sign if i == 0 else -1, piece))
    return out


# After a command word, what makes the line a Python assignment: `=` (not
# `==`), an augmented assignment (`+=`, `//=`, `>>=`, ...) or an annotation
# with a value (`x: int = 3`).
_ASSIGNMENT = re.compile(r"(=(?!=)|(\*\*|//|>>|<<|[-+*/%&|^@])=|:[^=]*=(?!=))")


# A direct branch's operand as capstone writes it.
_IMMEDIATE = re.compile(r"0x[0-9a-f]+")


def _assigns(args: str) -> bool:
    """True when `WORD ARGS` assigns WORD in Python (ARGS starts with the
    operator): `x = 3`, `r += 1`; `x == 3` and `r RAX=1` do not."""
    return _ASSIGNMENT.match(args) is not None


def _assigns_command(text: str) -> bool:
    """True when a line assigns to a command's name (`x = 3`, `db=7`,
    `bp: int = 1`)."""
    match = re.match(r"([A-Za-z_]\w*)\s*(.*)", text, re.S)
    return bool(match) and match.group(1) in COMMANDS and _assigns(match.group(2))


def _hex(text: str) -> int:
    t = text.strip().lower()
    if t.startswith("0x"):
        t = t[2:]
    if not t or any(c not in string.hexdigits for c in t):
        raise CommandError(f"'{text}' is not a hex number")
    return int(t, 16)


class Shell:
    prompt = "pyrebox-shell> "

    def __init__(self, cpu_index: int = 0, origin: str = "console", reason: str | None = None):
        num = api.get_num_cpus()
        if not 0 <= cpu_index < num:
            raise CommandError(f"no vCPU {cpu_index} (this VM has {num})")
        self.cpu_index = cpu_index
        self.origin = origin
        self.reason = reason
        self.ip = _interactive_shell()
        self.pgd = self._running_pgd()
        self._refresh_cpu()

    # --- session ---

    @property
    def symbols(self) -> symbolize.Symbolizer:
        """This session's symbolizer (its caches hold while the VM is frozen;
        loadvm starts a new one)."""
        if getattr(self, "_symbols", None) is None:
            self._symbols = symbolize.Symbolizer()
        return self._symbols

    def _running_pgd(self) -> int:
        try:
            return api.get_running_process(self.cpu_index)
        except INVALID:
            return 0

    def _restored_pgd(self) -> int:
        """The vCPU's process right after a loadvm. PyREBox re-reads the
        vCPUs' address spaces when the VM resumes; while it is still stopped
        the process is found from CR3 (a KPTI user half, pgd | 0x1000, is
        reported as its kernel half)."""
        cr3 = getattr(self.cpu, "CR3", None)
        if isinstance(cr3, int):
            base = cr3 & 0x000FFFFFFFFFF000
            try:
                pgds = {p["pgd"] for p in api.get_process_list()}
            except INVALID:
                pgds = set()
            for pgd in (base, base & ~0x1000):
                if pgd in pgds:
                    return pgd
        return self._running_pgd()

    def _refresh_cpu(self) -> None:
        try:
            self.cpu = api.r_cpu(self.cpu_index)
        except INVALID as e:
            self.cpu = None
            print(f"warning: the registers of vCPU {self.cpu_index} cannot be read: {e}")
        self.ip.user_ns["cpu"] = self.cpu
        self.ip.user_ns["cpu_index"] = self.cpu_index

    def banner(self) -> str:
        pc = f"{self.cpu.PC:#x}" if self.cpu is not None else "?"
        hit = self._breakpoint_hit()
        if hit is not None:
            why, frozen = hit + "\n", "this vCPU is stopped at the breakpoint, the VM with it"
        else:
            why = f"{self.reason}\n" if self.reason else ""
            frozen = ("opened by a script; this vCPU is stopped in its callback"
                      if self.origin == "script" else "the VM is stopped")
        return (f"{why}PyREBox shell ({frozen}): vCPU {self.cpu_index}, PC {pc}, process pgd "
                f"{self.pgd:#x}.\n'help' lists the commands, 'cmd?' explains one; "
                f"q, c, continue, quit or Ctrl-D leave the shell and resume the VM.\n")

    def _breakpoint_hit(self) -> str | None:
        """The banner's first line for a shell a breakpoint opened (its
        reason is api.BP's "breakpoint N: what"): "breakpoint N (mod!sym)
        hit on vCPU C: what"; None for any other shell."""
        match = re.fullmatch(r"breakpoint (\d+): (.*)", self.reason or "", re.S)
        if match is None:
            return None
        number, what = int(match.group(1)), match.group(2)
        try:
            bp = next((b for b in self._bp_class().list() if b.id == number), None)
            symbol = self._bp_symbol(bp) if bp is not None else None
        except (AttributeError, *INVALID):  # a build without api.BP, a failed lookup
            symbol = None
        return (f"breakpoint {number}" + (f" ({symbol})" if symbol else "")
                + f" hit on vCPU {self.cpu_index}: {what}")

    def farewell(self) -> str:
        return "left the shell; the VM continues\n"

    def run_line(self, line: str) -> bool:
        """Runs one line; True when it asks to leave the shell."""
        global _active
        _active = self
        interactive.set_in_shell(True)
        try:
            return self._run_line(line)
        finally:
            interactive.set_in_shell(False)

    def _run_line(self, line: str) -> bool:
        self._refresh_cpu()
        text = line.strip()
        if not text:
            return False
        bare = text[1:] if text.startswith("%") and not text.startswith("%%") else text
        word, _, args = bare.partition(" ")
        args = args.strip()
        if word in LEAVE_WORDS and not args:
            return True
        if bare.endswith("?") and bare.rstrip("?") in COMMANDS:
            self.cmd_help(bare.rstrip("?"))
            return False
        if not text.startswith("%") and _assigns_command(text):
            self._run_python(line)  # `x = 3`, `r += 1`: Python, as in IPython
            return False
        if word in COMMANDS and (text.startswith("%") or not self._shadowed(word)):
            try:
                args = self.expand(args)
            except Exception as e:  # noqa: BLE001 - the user's expression
                print(f"{word}: cannot expand {{...}}: {type(e).__name__}: {e}")
                return False
            self.dispatch(word, args)
            return False
        if self._unknown_command(text, word):
            close = difflib.get_close_matches(word, list(COMMANDS) + list(self._custom()), n=4,
                                              cutoff=0.5)
            hint = f"; did you mean: {', '.join(close)}?" if close else \
                "; 'help' lists the commands"
            print(f"unknown command '{word}'{hint}")
            return False
        self.ip.run_cell(line, store_history=False)
        return False

    def _run_python(self, line: str) -> None:
        """Runs an assignment to a command's name as Python: IPython's
        automagic would take `bp: int = 1` for the magic `bp`."""
        automagic, self.ip.automagic = self.ip.automagic, False
        try:
            self.ip.run_cell(line, store_history=False)
        finally:
            self.ip.automagic = automagic

    def expand(self, args: str) -> str:
        """Replaces each {python expression} by its value (ints in hex)."""
        def value(match):
            result = eval(match.group(1), self.ip.user_ns)  # noqa: S307 - the user's shell
            return hex(result) if isinstance(result, int) and not isinstance(result, bool) \
                else str(result)
        return re.sub(r"\{([^{}]+)\}", value, args)

    def _shadowed(self, word: str) -> bool:
        return word in self.ip.user_ns

    def _unknown_command(self, text: str, word: str) -> bool:
        if text.startswith("%") or not word.isidentifier() or keyword.iskeyword(word):
            return False
        if word in self.ip.user_ns or word in self.ip.user_global_ns or \
                word in _builtin_names():
            return False
        if self.ip.find_magic(word) is not None:
            return False
        try:
            tree = ast.parse(text)
        except SyntaxError:
            return True
        # `name` or `name(...)`/`name.attr` of an undefined name: a mistyped command.
        return not any(isinstance(n, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Import,
                                      ast.ImportFrom, ast.FunctionDef, ast.ClassDef, ast.For,
                                      ast.With, ast.If, ast.While, ast.Try))
                       for n in ast.walk(tree))

    def dispatch(self, name: str, args: str) -> None:
        try:
            getattr(self, "cmd_" + name)(args.strip())
        except CommandError as e:
            print(f"{name}: {e}")
        except INVALID as e:
            print(f"{name}: {type(e).__name__}: {e}")

    def complete(self, text: str) -> tuple[list[str], int]:
        """(completions, -length of the text they replace) for the text
        before the cursor: command names (and Python names) for the first
        word; after a command, what its argument is: plugin names after
        `vol`, custom command names after `custom`, MOD! and MOD!SYM after
        the commands that take an address; else IPython's completions."""
        stripped = text.lstrip()
        if " " not in stripped:
            return self._complete_first_word(stripped)
        word, _, rest = stripped.partition(" ")
        word = word.lstrip("%")
        if word in COMMANDS and " " not in rest.lstrip():
            rest = rest.lstrip()
            if word == "custom":
                return sorted(c for c in self._custom() if c.startswith(rest)), -len(rest)
            if word in ("vol", "list_vol_commands"):
                return self._complete_plugin(rest), -len(rest)
            if word in ADDRESS_COMMANDS:
                return self._complete_symbol(rest), -len(rest)
        try:
            matched, matches = self.ip.complete("", stripped, len(stripped))
            return list(matches), -len(matched)
        except Exception:
            return [], 0

    def _complete_first_word(self, stripped: str) -> tuple[list[str], int]:
        token = stripped.lstrip("%")
        items = [c for c in COMMANDS if c.startswith(token)]
        try:
            matched, matches = self.ip.complete("", token, len(token))
            head = token[:len(token) - len(matched)]
            items += [head + m for m in matches if not m.startswith("%")]
        except Exception:
            pass
        return sorted(set(items)), -len(token)

    def _complete_plugin(self, prefix: str) -> list[str]:
        from . import volatility
        try:
            names = [n for n, _ in volatility.list_commands()]
        except Exception:  # noqa: BLE001 - Volatility missing or broken: no completions
            return []
        low = prefix.lower()
        return [n for n in names if n.lower().startswith(low)][:COMPLETION_LIMIT]

    def _complete_symbol(self, prefix: str) -> list[str]:
        """MOD! for a module name being typed (the context process's
        modules, the kernel's), then MOD!SYM once `!` is typed; at most
        COMPLETION_LIMIT of them."""
        if "!" not in prefix:
            names = self._module_names(self.pgd) if self.pgd else set()
            names |= self._module_names(0) | {"vmlinux"}
            return sorted(n + "!" for n in names if n.startswith(prefix))[:COMPLETION_LIMIT]
        mod, _, sym = prefix.partition("!")
        space = 0 if mod in self._module_names(0) | {"vmlinux"} else self.pgd
        try:
            listed = self.symbols.symbols(space)
        except INVALID:
            return []
        found = sorted({s["name"] for s in listed
                        if s["mod"] == mod and s["name"].startswith(sym)})
        return [f"{mod}!{name}" for name in found[:COMPLETION_LIMIT]]

    # --- argument helpers ---

    def _registers(self) -> dict[str, int]:
        if self.cpu is None:
            return {}
        out = {}
        for name in api.register_names():
            value = getattr(self.cpu, name, None)
            if isinstance(value, int):
                out[name] = value
        return out

    def address(self, text: str) -> tuple[int, bool]:
        """[p]addr, mod!sym, a register, or sums of them -> (address, physical)."""
        t = text.strip()
        if not t:
            raise CommandError("an address is missing")
        # p + hex digits is physical, unless the word is a register's name
        # (`pc` is the program counter, not physical 0xc).
        if (re.fullmatch(r"[pP](0[xX])?[0-9a-fA-F]+", t)
                and t.upper() not in api.register_names()):
            return _hex(t[1:]), True
        total = 0
        for sign, term in _terms(t):
            total += sign * self._term(term)
        return total & 0xFFFFFFFFFFFFFFFF, False

    def _term(self, part: str) -> int:
        if "!" in part:
            mod, _, sym = part.partition("!")
            return self._sym_to_va(mod, sym)
        regs = self._registers()
        if part.upper() in regs:
            return regs[part.upper()]
        return _hex(part)

    def _sym_to_va(self, mod: str, sym: str) -> int:
        try:
            addr = api.sym_to_va(self.pgd, mod, sym)
        except INVALID as e:
            raise CommandError(f"unknown symbol {mod}!{sym}: {e}") from None
        if addr is None:
            raise CommandError(f"unknown symbol {mod}!{sym}")
        return addr

    def range(self, text: str, default: int) -> tuple[int, int, bool]:
        """addr[:n] -> (address, length, physical)."""
        t = text.strip()
        length = default
        match = re.fullmatch(r"(.*):((?:0[xX])?[0-9a-fA-F]+)", t)
        if match and not match.group(1).endswith(":"):
            t, length = match.group(1), _hex(match.group(2))
        addr, physical = self.address(t)
        if length <= 0:
            raise CommandError("the length must be positive")
        return addr, length, physical

    def read(self, addr: int, length: int, physical: bool) -> bytes:
        if physical:
            return api.r_pa(addr, length)
        return api.r_va(self.pgd, addr, length)

    def write(self, addr: int, data: bytes, physical: bool) -> None:
        if physical:
            api.w_pa(addr, data)
        else:
            api.w_va(self.pgd, addr, data)

    def _process(self, text: str) -> dict:
        """A process by decimal pid, 0x pgd or name."""
        procs = api.get_process_list()
        t = text.strip()
        if t.lower().startswith("0x"):
            pgd = _hex(t)
            found = [p for p in procs if p["pgd"] == pgd]
            if not found:
                return {"pid": None, "pgd": pgd, "name": "?"}
        elif t.isdigit():
            found = [p for p in procs if p["pid"] == int(t)]
        else:
            found = [p for p in procs if p["name"] == t]
        if not found:
            raise CommandError(f"no process '{t}' (give a decimal pid, a 0x pgd or a name; "
                               f"ps lists them)")
        if len(found) > 1:
            raise CommandError(f"{len(found)} processes are named '{t}': "
                               f"{', '.join(_process_text(p) for p in found)}; give a pid")
        return found[0]

    def _custom(self) -> dict:
        out = {}
        scripts = script_api.manager()
        if scripts is None:
            return out
        for script in scripts.loaded():
            for attr, fn in vars(script.module).items():
                if attr.startswith("do_") and callable(fn):
                    out[attr[3:]] = (script.name, fn)
        return out

    # --- commands (each docstring's first line is its summary) ---

    def cmd_help(self, args: str) -> None:
        """help [CMD]: the commands by group; with CMD, explain that one (also CMD?)."""
        name = args.strip().lstrip("%")
        if not name:
            self._help_groups()
        elif name in COMMANDS:
            print(inspect.cleandoc(getattr(self, "cmd_" + name).__doc__))
        elif name in self._custom():
            script, fn = self._custom()[name]
            print(inspect.cleandoc(fn.__doc__ or f"custom command of {script}"))
        else:
            print(f"no command '{name}'; 'help' lists them")

    def _help_groups(self) -> None:
        for group, names in command_groups():
            print(f"{group}:")
            for name in names:
                print(f"  {name:<18} {_summary(name)}")
        print("Leave the shell (the VM resumes): q, c, continue, quit or Ctrl-D. "
              "'help CMD' or 'CMD?' explains a command; anything else is Python.")
        custom = self._custom()
        if custom:
            print(f"Custom commands of the loaded scripts (custom NAME ARGS): "
                  f"{', '.join(sorted(custom))}")

    def cmd_list_commands(self, args: str) -> None:
        """list_commands: list the shell's commands, then the scripts' custom ones."""
        for name in COMMANDS:
            print(f"  {name:<18} {_summary(name)}")
        print("  q c continue quit  leave the shell (also Ctrl-D); the VM resumes")
        custom = self._custom()
        if custom:
            print("Custom commands of the loaded scripts (custom NAME ARGS):")
            for name, (script, fn) in sorted(custom.items()):
                doc = inspect.cleandoc(fn.__doc__ or "").split("\n")[0]
                print(f"  {name:<18} {doc} [{script}]")

    def cmd_list_vol_commands(self, args: str) -> None:
        """list_vol_commands [TEXT]: the installed Volatility 3 plugins (those whose name contains TEXT)."""
        from . import volatility
        try:
            found = [(n, d) for n, d in volatility.list_commands()
                     if args.strip().lower() in n.lower()]
        except volatility.VolatilityError as e:
            raise CommandError(str(e)) from None
        for name, doc in found:
            print(f"  {name:<40} {doc}")
        print(f"{len(found)} plugin(s); run one with: vol PLUGIN [ARGS] (vol PLUGIN -h: its options)")

    def cmd_vol(self, args: str) -> None:
        """vol PLUGIN [ARGS]: run a Volatility 3 plugin on the live VM and print its table.

        PLUGIN is a name as list_vol_commands shows it (linux.pslist.PsList;
        a unique ending such as pslist.PsList works too); ARGS are the
        plugin's options as on vol's command line (vol linux.proc.Maps --pid 1).
        The scan that finds the kernel runs on the first use (a few seconds);
        later runs reuse it and read memory as it is now.
        """
        from . import volatility
        try:
            argv = shlex.split(args)
        except ValueError as e:
            raise CommandError(f"vol: {e}") from None
        if not argv:
            raise CommandError("usage: vol PLUGIN [ARGS] (list_vol_commands lists the plugins)")
        try:
            grid, rows, seconds = volatility.run_plugin(argv[0], *argv[1:])
        except volatility.VolatilityError as e:
            print(f"vol: {e}")
            return
        volatility.render(grid)
        print(f"({len(rows)} row(s), {seconds:.2f} s)")

    def cmd_savemem(self, args: str) -> None:
        """savemem FILE: write a raw image of the guest's physical memory (for vol -f FILE)."""
        from . import volatility
        path = args.strip()
        if not path:
            raise CommandError("usage: savemem FILE")
        info = volatility.save_memory(path)
        print(f"saved {info['size']:#x} bytes of physical memory to {info['path']} "
              f"(memory ranges: {', '.join(f'{a:#x}-{b:#x}' for a, b in info['ranges'])}; "
              f"the rest is zeros)")

    def cmd_custom(self, args: str) -> None:
        """custom NAME [ARGS]: run a script's do_NAME(line) command."""
        name, _, line = args.partition(" ")
        custom = self._custom()
        if not name:
            print("custom commands: " + (", ".join(sorted(custom)) or "none (no loaded script "
                                         "defines a do_<name>(line) function)"))
            return
        if name not in custom:
            close = difflib.get_close_matches(name, list(custom), n=3)
            raise CommandError(f"no custom command '{name}'"
                               + (f"; did you mean: {', '.join(close)}?" if close else
                                  f" (available: {', '.join(sorted(custom)) or 'none'})"))
        script, fn = custom[name]
        try:
            params = [p for p in inspect.signature(fn).parameters.values()
                      if p.default is inspect.Parameter.empty
                      and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        except (TypeError, ValueError):
            params = [None]
        try:
            if len(params) >= 2:  # PyREBox's documented do_command(self, line)
                fn(None, line.strip())
            else:
                fn(line.strip())
        except Exception as e:
            import traceback
            print(f"custom {name} ({script}) raised:\n{traceback.format_exc().rstrip()}")
            del e

    def cmd_proc(self, args: str) -> None:
        """proc [PID|NAME|0xPGD]: show or change the process whose memory commands read."""
        if args:
            p = self._process(args)
            self.pgd = p["pgd"]
            if not self.pgd:
                raise CommandError(f"process {p['pid']} ({p['name']}) is a kernel thread "
                                   f"(no address space of its own)")
        names = {}
        try:
            names = {p["pgd"]: p for p in api.get_process_list() if p["pgd"]}
        except INVALID:
            pass
        p = names.get(self.pgd)
        desc = f"pid {p['pid']} ({p['name']})" if p else "process not in the list"
        print(f"process context: pgd {self.pgd:#x}, {desc}")

    def cmd_set_cpu(self, args: str) -> None:
        """set_cpu N: use vCPU N (decimal) for registers, PC and the process context."""
        if not args.isdigit():
            raise CommandError("usage: set_cpu N (a vCPU index)")
        n = int(args)
        if n >= api.get_num_cpus():
            raise CommandError(f"no vCPU {n} (this VM has {api.get_num_cpus()})")
        self.cpu_index = n
        self.pgd = self._running_pgd()
        self._refresh_cpu()
        print(f"vCPU {n}: PC {self.cpu.PC:#x}, process pgd {self.pgd:#x}")

    def cmd_mon(self, args: str) -> None:
        """mon [PID|NAME|0xPGD]: start monitoring a process (its callbacks fire); default the context."""
        p = self._monitor_target(args)
        if not p["pgd"]:
            who = (f"pid {p['pid']} ({p['name']}) is a kernel thread" if p.get("pid") is not None
                   else "the context is the kernel (pgd 0), not a process")
            raise CommandError(
                f"{who}: kernel threads have no address space of their own (they run in "
                f"the kernel's, which every process maps), so there is nothing to monitor. "
                f"Use a breakpoint on a kernel address (bp ADDR fires in any process) or "
                f"mon the user process it works for")
        if api.is_monitored_process(p["pgd"]):
            print(f"{_process_text(p)} was already monitored; nothing changed")
            return
        api.start_monitoring_process(p["pgd"])
        print(f"now monitoring {_process_text(p)}")

    def cmd_unmon(self, args: str) -> None:
        """unmon [PID|NAME|0xPGD]: stop monitoring a process; default the context."""
        p = self._monitor_target(args)
        if not p["pgd"] or not api.is_monitored_process(p["pgd"]):
            print(f"{_process_text(p)} was not monitored; nothing changed (ps marks the "
                  f"monitored ones with *)")
            return
        api.stop_monitoring_process(p["pgd"])
        print(f"stopped monitoring {_process_text(p)}")

    def _monitor_target(self, args: str) -> dict:
        """The process mon/unmon act on: the one named, else the context."""
        if args.strip():
            return self._process(args)
        try:
            procs = api.get_process_list()
        except INVALID:
            procs = []
        found = [p for p in procs if p["pgd"] and p["pgd"] == self.pgd]
        return found[0] if found else {"pgd": self.pgd, "pid": None, "name": "?"}

    def cmd_ps(self, args: str) -> None:
        """ps: list the guest's processes (* monitored, > the shell's context)."""
        procs = api.get_process_list()
        print(f"  {'PID':>6} {'PPID':>6}  {'PGD':<18}  NAME")
        for p in procs:
            mark = ">" if p["pgd"] and p["pgd"] == self.pgd else \
                ("*" if p["pgd"] and api.is_monitored_process(p["pgd"]) else " ")
            print(f"{mark} {p['pid']:>6} {p.get('ppid', 0):>6}  {p['pgd']:#018x}  {p['name']}")

    def cmd_lm(self, args: str) -> None:
        """lm [PID|NAME|0xPGD|0|kernel]: list the modules of a process (default: the context); 0 or kernel: kernel modules."""
        if args in ("0", "kernel"):
            pgd = 0
        elif args:
            pgd = self._process(args)["pgd"]
        else:
            pgd = self.pgd
        mods = api.get_module_list(pgd)
        print(f"{'BASE':<18}  {'SIZE':<10}  {'NAME':<24}  FULLNAME")
        for m in mods:
            print(f"{m['base']:#018x}  {m['size']:#010x}  {m['name']:<24}  {m['fullname']}")

    def cmd_x(self, args: str) -> None:
        """x MOD!SYM: list the symbols matching (wildcards * ? allowed) with their addresses.
        Kernel ones (vmlinux!..., a kernel module's name) are found from any process."""
        if "!" not in args:
            raise CommandError("usage: x MOD!SYM (wildcards allowed, e.g. libc*!mem*, "
                               "vmlinux!sys_*)")
        mod_pat, _, sym_pat = args.strip().partition("!")
        hits = [s for space in self._spaces_for(mod_pat)
                for s in self.symbols.symbols(space)
                if fnmatch.fnmatch(s["mod"], mod_pat) and fnmatch.fnmatch(s["name"], sym_pat)]
        for s in hits[:X_LIMIT]:
            print(f"{s['addr']:#018x}  {s['mod']}!{s['name']}")
        if not hits:
            print(f"no symbol matches {args.strip()} (lm lists the modules; "
                  f"lm kernel the kernel's)")
        elif len(hits) > X_LIMIT:
            print(f"{len(hits)} symbols match; the first {X_LIMIT} are shown "
                  f"(narrow the pattern)")
        else:
            print(f"{len(hits)} symbol(s) match")

    def _spaces_for(self, mod_pat: str) -> list[int]:
        """The address spaces whose symbol lists `x` searches for a module
        pattern: the kernel's (0) when it matches vmlinux or a kernel
        module, the context process's when it matches one of its modules
        (both for `*`). The context's list alone when nothing matches, so
        its message speaks of the context."""
        kernel = any(fnmatch.fnmatch(n, mod_pat) for n in self._module_names(0) | {"vmlinux"})
        user = bool(self.pgd) and any(fnmatch.fnmatch(n, mod_pat)
                                      for n in self._module_names(self.pgd))
        spaces = ([0] if kernel else []) + ([self.pgd] if user else [])
        return spaces or [self.pgd]

    def _module_names(self, space: int) -> set[str]:
        return {m["name"] for m in self.symbols.modules(space)}

    def cmd_ln(self, args: str) -> None:
        """ln ADDR: the nearest symbol at or before an address in the module holding it,
        as module!symbol+0xoff, with the symbol's size when the symbol list gives it
        (module+0xoff when the module has no symbol before it)."""
        addr, physical = self.address(args)
        if physical:
            raise CommandError("ln takes a virtual address (symbols are per address space)")
        print(f"{addr:#x}: {_nearest_text(self.symbols.nearest(self.pgd, addr), addr)}")

    def cmd_sympath(self, args: str) -> None:
        """sympath [DIR ...] | sympath + DIR: the host folders searched for guest files'
        full symbol tables by GNU build ID (debug files under DIR/.build-id, as Debian's
        -dbg packages install them, or unstripped copies directly in DIR); show, set,
        or append one. k, ln, dis and bl then name static functions too."""
        words = shlex.split(args)
        if words[:1] == ["+"]:
            if len(words) != 2:
                raise CommandError("usage: sympath + DIR")
            folders = symbol_files.add_path(words[1])
        elif words:
            folders = symbol_files.set_path(words)
        else:
            folders = symbol_files.path()
        if words:
            self._symbols = None  # names found before may change
        for folder in folders:
            note = "" if os.path.isdir(folder) else "  (no such folder)"
            print(f"{folder}{note}")
        if not folders:
            print("(empty: only the guest's own dynamic symbols are used)")

    def cmd_k(self, args: str) -> None:
        """k: the backtrace of the current vCPU's thread (api.backtrace), innermost first.

        Kernel frames, then the user frames from the registers the kernel saved on
        entry. The last column says how each frame was found: regs (registers),
        cfi (DWARF call-frame information), fp (frame pointers), scan (a stack word
        that points after a call: a guess). The last line says where the walk stopped.
        """
        if args:
            raise CommandError("usage: k (no arguments)")
        frames = api.backtrace(self.cpu_index, cpu=self.cpu)
        print(f" #  {'SP':<18}  {'PC':<18}  {'HOW':<4}  CALL SITE")
        for i, frame in enumerate(frames):
            print(f"{i:02x}  {frame.sp:#018x}  {frame.pc:#018x}  {frame.how:<4}  {frame.text}")
        print(f"(stopped: {frames.stop})")

    def cmd_r(self, args: str) -> None:
        """r [REG=VALUE ...]: show the general registers, or set some (values in hex)."""
        if args:
            for assignment in args.split():
                reg, sep, value = assignment.partition("=")
                if not sep:
                    raise CommandError("usage: r REG=VALUE (e.g. r RAX=1f)")
                api.w_r(self.cpu_index, reg.upper(), self.address(value)[0])
                print(f"{reg.upper()} = {self.address(value)[0]:#x}")
            self._refresh_cpu()
            return
        regs = self._registers()
        names = [n for n in regs if n not in ("CPU_INDEX",)]
        for i in range(0, len(names), 4):
            print("  ".join(f"{n:>7}={regs[n]:#018x}" for n in names[i:i + 4]))

    def cmd_print_cpu(self, args: str) -> None:
        """print_cpu: every register of the current vCPU, segments and tables included."""
        for name in api.register_names():
            value = getattr(self.cpu, name, None)
            if isinstance(value, dict):
                print(f"{name:>9} " + " ".join(f"{k}={v:#x}" for k, v in value.items()))
            elif value is not None:
                print(f"{name:>9} {value:#x}")

    def _dump(self, args: str, width: int) -> None:
        addr, length, physical = self.range(args, 0x80)
        data = self.read(addr, length, physical)
        fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
        prefix = "p" if physical else ""
        for off in range(0, len(data), 16):
            chunk = data[off:off + 16]
            words = [struct.unpack_from("<" + fmt, chunk, i)[0]
                     for i in range(0, len(chunk) - len(chunk) % width, width)]
            cells = " ".join(f"{w:0{width * 2}x}" for w in words)
            text = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
            print(f"{prefix}{addr + off:016x}  {cells:<{(16 // width) * (width * 2 + 1)}} {text}")

    def cmd_db(self, args: str) -> None:
        """db [p]ADDR[:N]: show N bytes (hex, default 80) as bytes."""
        self._dump(args, 1)

    def cmd_dw(self, args: str) -> None:
        """dw [p]ADDR[:N]: show N bytes as 16-bit words."""
        self._dump(args, 2)

    def cmd_dd(self, args: str) -> None:
        """dd [p]ADDR[:N]: show N bytes as 32-bit words."""
        self._dump(args, 4)

    def cmd_dq(self, args: str) -> None:
        """dq [p]ADDR[:N]: show N bytes as 64-bit words."""
        self._dump(args, 8)

    def _edit(self, args: str, width: int) -> None:
        parts = args.split()
        if len(parts) < 2:
            raise CommandError(f"usage: ADDR VALUE [VALUE...] (values in hex)")
        addr, physical = self.address(parts[0])
        data = b""
        for v in parts[1:]:
            value = self.address(v)[0]
            if value >= 1 << (8 * width):
                raise CommandError(f"{v} does not fit in {width} byte(s)")
            data += value.to_bytes(width, "little")
        self.write(addr, data, physical)
        print(f"wrote {len(data)} byte(s) at {'p' if physical else ''}{addr:#x}")

    def cmd_eb(self, args: str) -> None:
        """eb [p]ADDR VALUE...: write bytes (hex values)."""
        self._edit(args, 1)

    def cmd_ew(self, args: str) -> None:
        """ew [p]ADDR VALUE...: write 16-bit words."""
        self._edit(args, 2)

    def cmd_ed(self, args: str) -> None:
        """ed [p]ADDR VALUE...: write 32-bit words."""
        self._edit(args, 4)

    def cmd_eq(self, args: str) -> None:
        """eq [p]ADDR VALUE...: write 64-bit words."""
        self._edit(args, 8)

    def cmd_write(self, args: str) -> None:
        """write [p]ADDR TEXT: write text ("..." is a Python string literal, escapes allowed)."""
        target, _, text = args.partition(" ")
        if not text:
            raise CommandError('usage: write ADDR TEXT or write ADDR "text\\x00"')
        text = text.strip()
        if text[:1] in "'\"" and text[-1:] == text[:1]:
            try:
                value = ast.literal_eval(text)
            except (SyntaxError, ValueError) as e:
                raise CommandError(f"bad string literal: {e}") from None
            data = value if isinstance(value, bytes) else value.encode("latin-1")
        else:
            data = text.encode("latin-1")
        addr, physical = self.address(target)
        self.write(addr, data, physical)
        print(f"wrote {len(data)} byte(s) at {'p' if physical else ''}{addr:#x}")

    def cmd_dump(self, args: str) -> None:
        """dump [p]ADDR:N FILE: save N bytes of guest memory to a host file."""
        target, _, path = args.partition(" ")
        if not path or ":" not in target:
            raise CommandError("usage: dump ADDR:N FILE")
        addr, length, physical = self.range(target, 0)
        data = self.read(addr, length, physical)
        with paths.open_private(path.strip()) as f:
            f.write(data)
        print(f"saved {len(data)} byte(s) to {path.strip()}")

    def cmd_strings(self, args: str) -> None:
        """strings [p]ADDR:N [MIN]: ASCII and UTF-16LE strings of at least MIN (default 4) chars."""
        parts = args.split()
        if not parts:
            raise CommandError("usage: strings ADDR:N [MIN]")
        minimum = int(parts[1], 10) if len(parts) > 1 else 4
        addr, length, physical = self.range(parts[0], 0x1000)
        data = self.read(addr, length, physical)
        printable = rb"[\x20-\x7e]"
        for m in re.finditer(printable + b"{%d,}" % minimum, data):
            print(f"{addr + m.start():#018x}  a  {m.group().decode()}")
        for m in re.finditer(b"(?:" + printable + b"\x00){%d,}" % minimum, data):
            print(f"{addr + m.start():#018x}  u  {m.group().decode('utf-16le')}")

    def cmd_s(self, args: str) -> None:
        """s [p]ADDR:N PATTERN: search memory; "text" finds ASCII and UTF-16LE, otherwise hex bytes (41 42 or 4142)."""
        target, _, pattern = args.partition(" ")
        pattern = pattern.strip()
        if not pattern:
            raise CommandError('usage: s ADDR:N "text" | s ADDR:N 41 42 43')
        addr, length, physical = self.range(target, 0x1000)
        if pattern[:1] in "'\"" and pattern[-1:] == pattern[:1]:
            text = ast.literal_eval(pattern)
            needles = [("ascii", text.encode("latin-1")), ("utf16", text.encode("utf-16le"))]
        else:
            hexdigits = pattern.replace(" ", "")
            try:
                needles = [("hex", bytes.fromhex(hexdigits))]
            except ValueError:
                raise CommandError(f"'{pattern}' is neither \"text\" nor hex bytes") from None
        data = self.read(addr, length, physical)
        hits = 0
        for kind, needle in needles:
            start = data.find(needle)
            while start >= 0:
                hits += 1
                print(f"{'p' if physical else ''}{addr + start:#018x}  {kind}")
                start = data.find(needle, start + 1)
        if not hits:
            print("not found")

    def _ior(self, args: str, size: int) -> None:
        port = self.address(args)[0]
        print(f"port {port:#x}: {api.r_ioport(port, size):#0{size * 2 + 2}x}")

    def _iow(self, args: str, size: int) -> None:
        parts = args.split()
        if len(parts) != 2:
            raise CommandError("usage: PORT VALUE (hex)")
        api.w_ioport(_hex(parts[0]), size, _hex(parts[1]))
        print(f"port {_hex(parts[0]):#x} <- {_hex(parts[1]):#x}")

    def cmd_ior(self, args: str) -> None:
        """ior PORT: read a byte from an I/O port (iorb, iorw, iord: 1, 2, 4 bytes)."""
        self._ior(args, 1)

    def cmd_iorb(self, args: str) -> None:
        """iorb PORT: read a byte from an I/O port."""
        self._ior(args, 1)

    def cmd_iorw(self, args: str) -> None:
        """iorw PORT: read 2 bytes from an I/O port."""
        self._ior(args, 2)

    def cmd_iord(self, args: str) -> None:
        """iord PORT: read 4 bytes from an I/O port."""
        self._ior(args, 4)

    def cmd_iow(self, args: str) -> None:
        """iow PORT VALUE: write a byte to an I/O port (iowb, ioww, iowd: 1, 2, 4 bytes)."""
        self._iow(args, 1)

    def cmd_iowb(self, args: str) -> None:
        """iowb PORT VALUE: write a byte to an I/O port."""
        self._iow(args, 1)

    def cmd_ioww(self, args: str) -> None:
        """ioww PORT VALUE: write 2 bytes to an I/O port."""
        self._iow(args, 2)

    def cmd_iowd(self, args: str) -> None:
        """iowd PORT VALUE: write 4 bytes to an I/O port."""
        self._iow(args, 4)

    def cpu_mode(self) -> int:
        """16, 32 or 64: the current vCPU's execution mode."""
        cpu = self.cpu
        if cpu is None or not cpu.CR0 & 1:
            return 16
        cs_flags = cpu.CS["flags"]
        if getattr(cpu, "EFER", 0) & (1 << 10) and cs_flags & (1 << 21):
            return 64
        return 32 if cs_flags & (1 << 22) else 16

    def _disassemble(self, addr: int, data: bytes, physical: bool, count: int | None) -> None:
        import capstone
        mode = {16: capstone.CS_MODE_16, 32: capstone.CS_MODE_32,
                64: capstone.CS_MODE_64}[self.cpu_mode()]
        md = capstone.Cs(capstone.CS_ARCH_X86, mode)
        shown = 0
        for insn in md.disasm(data, addr):
            raw = insn.bytes.hex()
            target = None if physical else self._branch_name(insn.mnemonic, insn.op_str)
            print(f"{'p' if physical else ''}{insn.address:016x}  {raw:<20}  "
                  f"{insn.mnemonic} {insn.op_str}".rstrip() + (f" <{target}>" if target else ""))
            shown += 1
            if count is not None and shown >= count:
                break
        if shown == 0:
            print(f"{addr:#x}: no valid instruction")

    def _branch_name(self, mnemonic: str, op_str: str) -> str | None:
        """The symbol a direct call or jump goes to (`call 0x401136` ->
        prog!helper), as gdb shows it; None for other instructions and
        for targets no module holds."""
        if not (mnemonic.startswith(("call", "j", "loop")) and _IMMEDIATE.fullmatch(op_str)):
            return None
        target = int(op_str, 16)
        found = self.symbols.nearest(self.pgd, target)
        if found.module is None:
            return None
        return location(found.module, found.symbol, found.offset, target)

    def _read_code(self, addr: int, length: int, physical: bool) -> bytes:
        # The end of the range may be unmapped: read what is there.
        while length > 0:
            try:
                return self.read(addr, length, physical)
            except machine.InvalidAddress:
                if length <= 1:
                    raise
                page_end = (addr | 0xFFF) + 1
                length = page_end - addr if addr + length > page_end else length // 2
        return b""

    def cmd_dis(self, args: str) -> None:
        """dis [ADDR[:N]]: disassemble N instructions (hex, default a) at ADDR (default PC)."""
        count = 10
        if args:
            match = re.fullmatch(r"(.*):((?:0[xX])?[0-9a-fA-F]+)", args.strip())
            if match:
                args, count = match.group(1), _hex(match.group(2))
            addr, physical = self.address(args)
        else:
            addr, physical = self.cpu.PC, False
        self._disassemble(addr, self._read_code(addr, 16 * count, physical), physical, count)

    def cmd_u(self, args: str) -> None:
        """u ADDR[:N]: disassemble N bytes (hex, default 40) at ADDR."""
        if not args:
            args = f"{self.cpu.PC:x}"
        addr, length, physical = self.range(args, 0x40)
        self._disassemble(addr, self._read_code(addr, length, physical), physical, None)

    # --- breakpoints (api.BP) ---

    def _bp_class(self):
        return api.BP

    def _add_bp(self, args: str, kind: str) -> None:
        BP = self._bp_class()
        usage = "bp ADDR[:N]" if kind == "x" else f"bp{kind} [p]ADDR[:N]"
        t = args.strip()
        if not t or len(t.split()) != 1:
            raise CommandError(f"usage: {usage}")
        size = 0 if kind == "x" else 1
        match = re.fullmatch(r"(.*):((?:0[xX])?[0-9a-fA-F]+)", t)
        if match:
            t, size = match.group(1), _hex(match.group(2))
            if size <= 0:
                raise CommandError("the length must be positive")
        try:
            addr, physical = self.address(t)
        except CommandError:
            if kind == "x" and re.fullmatch(r"[^\s!:+]+![^\s!:+]+", t) and self._pending_bp(BP, t):
                return
            raise
        if kind == "x":
            if physical:
                raise CommandError("execution breakpoints take a virtual address")
            typ = BP.EXECUTION
        elif kind == "r":
            typ = BP.MEM_READ_PHYS if physical else BP.MEM_READ
        else:
            typ = BP.MEM_WRITE_PHYS if physical else BP.MEM_WRITE
        # Kernel addresses are the same in every address space.
        pgd = None if physical or addr >= machine.KERNEL_BOTTOM or not self.pgd else self.pgd
        try:
            bp = BP(addr, pgd, size=size, typ=typ)
        except (ValueError, TypeError) as e:
            raise CommandError(str(e)) from None
        try:
            bp.enable()
        except Exception as e:  # noqa: BLE001 - a trigger that cannot be built, ...
            bp.remove()
            raise CommandError(f"the breakpoint could not be placed: {e}") from None
        if "!" in t:
            _bp_labels[bp.id] = t
        span = f":{size:#x}" if size > 1 or kind != "x" else ""
        where = "physical memory" if physical else (
            "any process" if pgd is None else f"pgd {pgd:#x}")
        print(f"breakpoint {bp.id}: {BP.TYPE_NAMES.get(typ, typ)} at "
              f"{'p' if physical else ''}{addr:#x}{span} ({where})")

    def _pending_bp(self, BP, text: str) -> bool:
        """bp MOD!SYM whose module is not mapped in the context process (or
        not readable yet): a pending breakpoint, as gdb's, that arms itself
        in the first process that maps MOD (api.BP with pgd None). False
        when the symbol resolves nowhere for another reason."""
        module, symbol = text.split("!", 1)
        try:
            _, why = api.symbol_lookup(self.pgd, module, symbol)
        except INVALID:
            return False
        # (The context may be no process's: a kernel thread running on an
        # exited process's page tables.)
        if why not in ("unknown module", "not readable yet", "unknown process"):
            return False  # the module is there and lacks it: a typo, not pending
        try:
            bp = BP(text, None)
        except (ValueError, TypeError):
            return False
        if bp.pending() is None:  # a kernel module's symbol: placed at once
            bp.remove()
            return False
        bp.enable()
        _bp_labels[bp.id] = text
        print(f"breakpoint {bp.id}: EXECUTION at {text} pending ({bp.pending()}): it arms "
              f"itself in the first process that maps {module}")
        return True

    def _bp_symbol(self, bp) -> str | None:
        """What a breakpoint is on: the mod!sym it was made from, else its
        address's nearest symbol (None when no symbol names it, or for a
        physical one)."""
        if bp.id in _bp_labels:
            return _bp_labels[bp.id]
        made_from = getattr(bp, "get_symbol", lambda: None)()  # api.BP("mod!sym", ...)
        if made_from:
            return "!".join(made_from)
        BP = self._bp_class()
        if bp.get_type() in (getattr(BP, "MEM_READ_PHYS", None),
                             getattr(BP, "MEM_WRITE_PHYS", None)):
            return None
        pgd, addr = bp.get_pgd(), bp.get_addr()
        if addr is None:
            return None
        found = self.symbols.nearest(self.pgd if pgd is None else pgd, addr)
        if found.symbol is None:
            return None
        return location(found.module, found.symbol, found.offset, addr)

    def cmd_bp(self, args: str) -> None:
        """bp ADDR[:N]: execution breakpoint in the context process (on N bytes of code
        with :N); a hit opens the shell. ADDR may be MOD!SYM, e.g. bp libc.so.6!getpid."""
        self._add_bp(args, "x")

    def cmd_bpr(self, args: str) -> None:
        """bpr [p]ADDR[:N]: memory read breakpoint on N bytes (default 1); a hit opens the shell.
        Virtual ones are in the context process, which they have monitored."""
        self._add_bp(args, "r")

    def cmd_bpw(self, args: str) -> None:
        """bpw [p]ADDR[:N]: memory write breakpoint on N bytes (default 1); a hit opens the shell.
        Virtual ones are in the context process, which they have monitored."""
        self._add_bp(args, "w")

    def cmd_bc(self, args: str) -> None:
        """bc N [N...] | bc *: clear (delete) breakpoints N, or all of them."""
        BP = self._bp_class()
        words = args.split()
        if not words:
            raise CommandError("usage: bc N [N...] or bc * (bl lists them)")
        bps = BP.list() if words == ["*"] else [self._find_bp(w) for w in words]
        if not bps:
            print("no breakpoints to clear")
            return
        for bp in bps:
            what = self._bp_text(bp)
            bp.remove()
            _bp_labels.pop(bp.id, None)
            print(f"breakpoint {bp.id} cleared ({what})")

    def _bp_text(self, bp) -> str:
        """TYPE at ADDRESS (SYMBOL) of a breakpoint, for messages."""
        BP = self._bp_class()
        symbol = self._bp_symbol(bp)
        return (f"{BP.TYPE_NAMES.get(bp.get_type(), bp.get_type())} at {_bp_address(bp)}"
                + (f" {symbol}" if symbol else ""))

    def _find_bp(self, args: str):
        BP = self._bp_class()
        if not args.strip().isdigit():
            raise CommandError("give a breakpoint number (bl lists them)")
        for bp in BP.list():
            if bp.id == int(args):
                return bp
        raise CommandError(f"no breakpoint {args} (bl lists them)")

    def cmd_bl(self, args: str) -> None:
        """bl: list the breakpoints: number, state, type, address, size, address space,
        hits, then the symbol it is on (the MOD!SYM it was made from, else the nearest one)."""
        BP = self._bp_class()
        names = {getattr(BP, n): n for n in ("EXECUTION", "MEM_READ", "MEM_WRITE",
                                            "MEM_READ_PHYS", "MEM_WRITE_PHYS") if hasattr(BP, n)}
        bps = BP.list()
        if not bps:
            print("no breakpoints")
        for bp in bps:
            pgd = bp.get_pgd()
            where = "physical" if bp.get_type() in (getattr(BP, "MEM_READ_PHYS", None),
                                                    getattr(BP, "MEM_WRITE_PHYS", None)) \
                else ("any" if pgd is None else f"pgd {pgd:#x}")
            symbol = self._bp_symbol(bp)
            hits = bp.hits() if hasattr(bp, "hits") else None
            print(f"{bp.id:>3} {'enabled ' if bp.enabled() else 'disabled'} "
                  f"{names.get(bp.get_type(), bp.get_type())!s:<14} {_bp_address(bp, 18)} "
                  f"size {bp.get_size():#x} {where}"
                  + (f" hits {hits}" if hits is not None else "")
                  + (f"  {symbol}" if symbol else ""))

    def cmd_bd(self, args: str) -> None:
        """bd N: disable breakpoint N."""
        self._find_bp(args).disable()
        print(f"breakpoint {args.strip()} disabled")

    def cmd_be(self, args: str) -> None:
        """be N: enable breakpoint N."""
        self._find_bp(args).enable()
        print(f"breakpoint {args.strip()} enabled")

    # --- snapshots ---

    def _snapshot(self, verb: str, args: str) -> None:
        fn = api.save_vm if verb == "savevm" else api.load_vm
        name = args.strip()
        if not name or len(name.split()) != 1:
            raise CommandError(f"usage: {verb} NAME")
        queued = _pyrebox.in_callback()
        fn(name)
        if queued:
            print(f"{verb} {name}: queued; the vCPU is inside a callback, so it happens when "
                  f"you leave the shell (the result is printed then)")
            return
        if verb == "savevm":
            print(f"saved snapshot {name}")
            return
        self._refresh_cpu()
        self._symbols = None  # another machine: its modules and symbols
        self.pgd = self._restored_pgd()
        pc = f"{self.cpu.PC:#x}" if self.cpu is not None else "?"
        print(f"restored snapshot {name}: vCPU {self.cpu_index} at PC {pc}, process pgd "
              f"{self.pgd:#x}")

    def cmd_savevm(self, args: str) -> None:
        """savevm NAME: save a snapshot of the VM (api.save_vm); replaces one of that name.
        From a shell opened by a callback (e.g. a breakpoint) it is taken on leaving."""
        self._snapshot("savevm", args)

    def cmd_loadvm(self, args: str) -> None:
        """loadvm NAME: restore a snapshot of the VM (api.load_vm).
        From a shell opened by a callback (e.g. a breakpoint) it is loaded on leaving."""
        self._snapshot("loadvm", args)


def _bp_address(bp, width: int = 0) -> str:
    """A breakpoint's address in hex, or why it has none yet (a pending
    MOD!SYM breakpoint of a module not mapped yet)."""
    addr = bp.get_addr()
    if addr is None:
        why = getattr(bp, "pending", lambda: None)()
        return f"{'pending' + (f' ({why})' if why else ''):<{width}}"
    return f"{addr:#0{width}x}" if width else f"{addr:#x}"


def _process_text(p: dict) -> str:
    """pid 42 (name, pgd 0x...), or pgd 0x... for a process not listed."""
    if p.get("pid") is None:
        return f"pgd {p['pgd']:#x}" if p["pgd"] else "the kernel's context (pgd 0)"
    return f"pid {p['pid']} ({p['name']}, pgd {p['pgd']:#x})"


def _nearest_text(found: symbolize.Nearest, addr: int) -> str:
    """ln's answer: module!symbol+0xoff (size 0x..), saying so when the
    address lies past the symbol's end (code no symbol names, such as a
    static function); "no symbol" outside every module."""
    if found.module is None:
        return "no symbol (no module of this address space holds it)"
    text = location(found.module, found.symbol, found.offset, addr)
    if found.symbol is None or not found.size:
        return text
    if found.offset is not None and found.offset >= found.size:
        return f"{text} (size {found.size:#x}: past its end, in code no symbol names)"
    return f"{text} (size {found.size:#x})"


def _builtin_names() -> set[str]:
    import builtins
    return set(dir(builtins))


COMMANDS = [name[4:] for name in vars(Shell) if name.startswith("cmd_")]

# `help`'s groups, in the order shown. A command not named here is listed
# under "other", so a new command is never left out.
GROUPS: dict[str, tuple[str, ...]] = {
    "inspection": ("r", "print_cpu", "k", "dis", "u", "ln", "x", "sympath"),
    "memory": ("db", "dw", "dd", "dq", "eb", "ew", "ed", "eq", "write", "dump", "strings",
               "s"),
    "breakpoints": ("bp", "bpr", "bpw", "bl", "bc", "bd", "be"),
    "processes and modules": ("ps", "proc", "lm", "mon", "unmon"),
    "VM": ("set_cpu", "savevm", "loadvm", "ior", "iorb", "iorw", "iord", "iow", "iowb",
           "ioww", "iowd"),
    "volatility": ("vol", "list_vol_commands", "savemem"),
    "other": ("help", "list_commands", "custom"),
}


def command_groups() -> list[tuple[str, list[str]]]:
    """(group, its commands) for every command, each in exactly one group."""
    grouped = {name for names in GROUPS.values() for name in names}
    out = []
    for group, names in GROUPS.items():
        names = [n for n in names if n in COMMANDS]
        if group == "other":
            names += [n for n in COMMANDS if n not in grouped]
        out.append((group, names))
    return out


def _summary(name: str) -> str:
    """The first line of a command's docstring."""
    return inspect.cleandoc(getattr(Shell, "cmd_" + name).__doc__).split("\n")[0]


def active() -> Shell | None:
    return _active


__all__ = ["Shell", "CommandError", "COMMANDS", "output"]
