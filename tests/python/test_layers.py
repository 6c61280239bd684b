"""The C++ layer check (tools/check_layers.py, run by every build) refuses a
wrong-way include, naming file, line and rule, and accepts the real tree."""

import os
import shutil
import subprocess
import sys

from conftest import ROOT

CHECKER = os.path.join(ROOT, "tools", "check_layers.py")
SRC = os.path.join(ROOT, "src")


def run(root, stamp=None):
    cmd = [sys.executable, CHECKER, "--root", str(root)]
    if stamp:
        cmd += ["--stamp", str(stamp)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60)


def test_the_real_tree_keeps_the_layers(tmp_path):
    stamp = tmp_path / "layers.stamp"
    result = run(SRC, stamp)
    assert result.returncode == 0, result.stderr
    assert stamp.exists()


def copy_of_src(tmp_path):
    root = tmp_path / "src"
    shutil.copytree(SRC, root)
    return root


def test_vmi_including_the_engine_is_refused(tmp_path):
    root = copy_of_src(tmp_path)
    paging = root / "vmi" / "paging.h"
    lines = paging.read_text().splitlines(keepends=True)
    at = next(i for i, line in enumerate(lines) if line.startswith("#include")) + 1
    lines.insert(at, '#include "engine/engine.h"\n')
    paging.write_text("".join(lines))
    stamp = tmp_path / "layers.stamp"
    result = run(root, stamp)
    assert result.returncode == 1
    assert (f'src/vmi/paging.h:{at + 1}: includes "engine/engine.h" (engine): '
            "rule: vmi may include only base, vmi") in result.stderr
    assert not stamp.exists()


def test_base_reaching_up_by_a_relative_path_is_refused(tmp_path):
    root = copy_of_src(tmp_path)
    (root / "base" / "sneaky.h").write_text('#pragma once\n#include "../app/session.h"\n')
    result = run(root)
    assert result.returncode == 1
    assert ('src/base/sneaky.h:2: includes "../app/session.h" (app): '
            "rule: base may include only base") in result.stderr


def test_engine_and_vmi_do_not_see_each_other(tmp_path):
    root = copy_of_src(tmp_path)
    (root / "engine" / "uses_vmi.cpp").write_text('#include "vmi/paging.h"\n')
    result = run(root)
    assert result.returncode == 1
    assert "src/engine/uses_vmi.cpp:1: " in result.stderr
    assert "rule: engine may include only base, engine" in result.stderr


def test_a_file_outside_every_layer_is_refused(tmp_path):
    root = copy_of_src(tmp_path)
    (root / "core").mkdir(exist_ok=True)
    (root / "core" / "old.h").write_text("#pragma once\n")
    result = run(root)
    assert result.returncode == 1
    assert "src/core/old.h: is in no layer" in result.stderr


def test_headers_outside_src_are_not_layer_dependencies(tmp_path):
    root = copy_of_src(tmp_path)
    (root / "base" / "generated_user.h").write_text(
        '#pragma once\n#include "event_kinds.h"\n#include "callbacks.h"\n')
    assert run(root).returncode == 0
