"""The Python package's import graph: no cycles, and layers import only
downwards.

Every module under python/ is parsed with `ast`; each `import` / `from`
between project modules is an edge, wherever it is written (module level,
inside a function, under `if TYPE_CHECKING`): a function-level import is
still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import functools
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = os.path.join(ROOT, "python")

# The plugin's layers, lowest first. A module may import its own layer or
# lower ones, never a higher one. `launcher` is the command line outside
# QEMU; nothing of the plugin imports it. A module of python/ missing here
# fails test_every_module_has_a_layer.
LAYERS: dict[str, set[str]] = {
    # The native module's one gateway, and what needs nothing of PyREBox.
    "foundation": {"pyrebox", "pyrebox.native", "pyrebox.output", "pyrebox.paths",
                   "pyrebox.config", "pyrebox.qmp_client", "pyrebox.event_kinds", "pyrebox.return_frames", "pyrebox.symbols",
                   "pyrebox.symbols.*", "pyrebox.guest_agent", "pyrebox.syscall_flags",
                   "pyrebox.syscall_values", "pyrebox.trace_filter", "pyrebox.syscall_switch", "pyrebox.unwind", "pyrebox.symbol_files",
                   "pyrebox.unwind.*"},
    # The guest machine and its events; what they need is given to them.
    "domain": {"pyrebox.cpu", "pyrebox.machine", "pyrebox.callbacks", "pyrebox.breakpoints",
               "pyrebox.pending_breakpoints", "pyrebox.following_breakpoints",
               "pyrebox.triggers", "pyrebox.returns"},
    "services": {"pyrebox.scripts", "pyrebox.script_api", "pyrebox.volatility",
                 "pyrebox.snapshots", "pyrebox.ui", "pyrebox.qmp", "pyrebox.interactive",
                 "pyrebox.kernel_tables", "pyrebox.agent_commands", "pyrebox.syscall_names",
                 "pyrebox.syscall_meta", "pyrebox.syscall_args", "pyrebox.strace_format",
                 "pyrebox.backtrace", "pyrebox.symbolize", "pyrebox.agent_plugin",
                 "pyrebox.script_utils"},
    # PyREBox's modules for scripts: re-exports only.
    "facades": {"api", "utils", "ipython_shell", "plugins", "plugins.guest_agent"},
    "interface": {"pyrebox.shell", "pyrebox.console"},
    # Creates and wires everything; the plugin calls it.
    "composition": {"pyrebox.runtime", "pyrebox.trace_script"},
    "launcher": {"pyrebox.run", "pyrebox.cli", "pyrebox.client", "pyrebox.qemu",
                 "pyrebox.cpio", "pyrebox.own_vm", "pyrebox.agent_batch"},
}
ORDER = list(LAYERS)


@functools.lru_cache(maxsize=None)
def parsed(path: str) -> ast.Module:
    with open(path, encoding="utf-8") as f:
        return ast.parse(f.read(), filename=path)


def module_files() -> dict[str, str]:
    """Module name -> file, for every .py under python/."""
    out = {}
    for folder, dirs, files in os.walk(PYTHON):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if not f.endswith(".py"):
                continue
            rel = os.path.relpath(os.path.join(folder, f), PYTHON)[:-3].split(os.sep)
            if rel[-1] == "__init__":
                rel = rel[:-1]
            out[".".join(rel)] = os.path.join(folder, f)
    return out


def imports_of(name: str, path: str, modules: set[str]) -> set[str]:
    """The project modules `name` imports anywhere in its source."""
    tree = parsed(path)
    is_package = os.path.basename(path) == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()

    def add(target: str) -> None:
        # `import a.b.c` runs a, a.b and a.b.c: the deepest project module counts.
        parts = target.split(".")
        for i in range(len(parts), 0, -1):
            candidate = ".".join(parts[:i])
            if candidate in modules:
                found.add(candidate)
                return

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[:len(base) - (node.level - 1)] if node.level > 1 else base
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}" if source else alias.name
                if sub in modules:  # `from . import shell`: the submodule
                    found.add(sub)
                else:
                    add(source)
    found.discard(name)
    return found


def graph() -> dict[str, set[str]]:
    files = module_files()
    names = set(files)
    return {name: imports_of(name, path, names) for name, path in files.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (its modules, the first repeated at the end), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def layer_of(module: str) -> str | None:
    for layer, members in LAYERS.items():
        for pattern in members:
            if module == pattern or (pattern.endswith(".*")
                                     and module.startswith(pattern[:-1])):
                return layer
    return None


def test_the_graph_sees_module_and_function_level_imports():
    edges = graph()
    # Module level, `from . import x`, `from .x import y`, function level.
    assert "pyrebox.cpu" in edges["pyrebox.machine"]
    assert "pyrebox.native" in edges["pyrebox.machine"]
    assert "pyrebox.triggers" in edges["pyrebox.callbacks"]  # inside add_trigger
    assert "pyrebox.shell" in edges["pyrebox.console"]  # inside console_shell
    assert "pyrebox.symbols.cli" in edges["pyrebox.cli"]
    assert "pyrebox.interactive" in edges["ipython_shell"]


def test_find_cycle_reports_the_modules_of_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_no_import_cycle():
    cycle = find_cycle(graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_every_module_has_a_layer():
    missing = sorted(m for m in module_files() if layer_of(m) is None)
    assert missing == [], f"modules of no layer (add them to LAYERS): {missing}"


def test_layers_import_only_downwards():
    wrong = []
    for module, targets in sorted(graph().items()):
        here = layer_of(module)
        for target in sorted(targets):
            there = layer_of(target)
            if here and there and ORDER.index(there) > ORDER.index(here):
                wrong.append(f"{module} ({here}) imports {target} ({there})")
    assert wrong == [], "imports of a higher layer:\n" + "\n".join(wrong)


def test_only_native_imports_the_native_module():
    importers = []
    for name, path in module_files().items():
        for node in ast.walk(parsed(path)):
            if isinstance(node, ast.Import) and any(a.name == "_pyrebox" for a in node.names):
                importers.append(name)
            elif isinstance(node, ast.ImportFrom) and node.module == "_pyrebox":
                importers.append(name)
    assert importers == [], f"import _pyrebox outside pyrebox.native: {importers}"


@pytest.mark.parametrize("module", sorted(LAYERS["facades"]))
def test_facades_only_re_export(module):
    """api, utils and ipython_shell hold no logic: imports, __all__ and
    their docstring."""
    for node in parsed(module_files()[module]).body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] \
                == ["__all__"]:
            continue
        pytest.fail(f"{module} line {node.lineno}: {ast.dump(node)[:80]}... is not a re-export")
