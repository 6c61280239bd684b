"""Test files are modules of one namespace (pytest's rootdir-relative
imports without packages): two files with the same name in different
folders make the whole run fail at collection. Caught here, in the fast
tests, rather than at the end of the full suite."""

import collections
import os

TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_test_file_names_are_unique_across_folders():
    found = collections.defaultdict(list)
    for folder, dirs, files in os.walk(TESTS):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for name in files:
            if name.startswith("test_") and name.endswith(".py"):
                found[name].append(os.path.relpath(os.path.join(folder, name), TESTS))
    assert {n: p for n, p in found.items() if len(p) > 1} == {}
