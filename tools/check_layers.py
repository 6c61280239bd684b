#!/usr/bin/env python3
"""Refuses a wrong-way #include between PyREBox's C++ layers.

Every file under src/ belongs to the layer named by its first directory
(src/<layer>/...). A layer may include its own headers and those of the
layers listed for it in ALLOWED, nothing above or beside it. Only quoted
includes ("...") are checked; one is attributed to a layer by its first
path component, or, when it names a file next to the includer, to the
includer's layer (a relative path leaving it counts as the layer it reaches).
A quoted include that names no file of src/ (the trigger SDK's headers,
generated headers) is not a layer dependency.

Usage: check_layers.py [--root SRC_DIR] [--stamp FILE]
Exit status 0 when the tree keeps the rules (the stamp file is then
touched), 1 with one line per violation, naming file, line and rule.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

# Layer -> the layers its files may include (its own included). The C++
# targets: base <- vmi, engine <- app <- triggers <- python <- qemu.
ALLOWED: dict[str, tuple[str, ...]] = {
    "base": ("base",),
    "vmi": ("base", "vmi"),
    "engine": ("base", "engine"),
    "app": ("base", "vmi", "engine", "app"),
    "triggers": ("base", "vmi", "engine", "app", "triggers"),
    "python": ("base", "vmi", "engine", "app", "triggers", "python"),
    "qemu": ("base", "vmi", "engine", "app", "triggers", "python", "qemu"),
}

SOURCE_SUFFIXES = (".h", ".hpp", ".c", ".cc", ".cpp", ".inc")
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')


def included_layer(root: str, includer: str, target: str) -> str | None:
    """The layer `target` (as written in `includer`) belongs to, or None."""
    beside = os.path.normpath(os.path.join(os.path.dirname(includer), target))
    if os.path.isfile(beside):
        rel = os.path.relpath(beside, root)
        if not rel.startswith(".."):
            return rel.split(os.sep)[0]
    first = target.split("/")[0]
    if first in ALLOWED:
        return first
    return None


def check(root: str) -> list[str]:
    """Every violation under `root` (the src directory), one message each."""
    problems: list[str] = []
    shown_root = os.path.basename(os.path.normpath(root))
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if not name.endswith(SOURCE_SUFFIXES):
                continue
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            shown = os.path.join(shown_root, rel)
            layer = rel.split(os.sep)[0]
            if layer not in ALLOWED or os.sep not in rel:
                problems.append(f"{shown}: is in no layer (the layers are src/"
                                + ", src/".join(ALLOWED) + ")")
                continue
            with open(path, encoding="utf-8", errors="replace") as f:
                for lineno, line in enumerate(f, 1):
                    m = INCLUDE.match(line)
                    if not m:
                        continue
                    to = included_layer(root, path, m.group(1))
                    if to is None or to in ALLOWED[layer]:
                        continue
                    problems.append(
                        f'{shown}:{lineno}: includes "{m.group(1)}" ({to}): '
                        f"rule: {layer} may include only {', '.join(ALLOWED[layer])}")
    return problems


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--root", default=os.path.join(here, "..", "src"))
    parser.add_argument("--stamp", help="touched when the check passes")
    args = parser.parse_args(argv)
    problems = check(args.root)
    if problems:
        for p in problems:
            print(f"layer check: {p}", file=sys.stderr)
        print(f"layer check: {len(problems)} wrong-way include(s); "
              "see the target graph at the top of CMakeLists.txt", file=sys.stderr)
        return 1
    if args.stamp:
        with open(args.stamp, "w", encoding="utf-8") as f:
            f.write("ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
