"""tools/mutation_check.py's list of mutations fits the code a fresh bake has: each change
applies exactly once and leaves a file that still parses, and names tests that exist. Fast:
one bake, no virtual environment, nothing run."""

from __future__ import annotations

import ast
import importlib.util
import re
import sys

import pytest

from helpers import ROOT


def load_tool():
    spec = importlib.util.spec_from_file_location("mutation_check", ROOT / "tools" / "mutation_check.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look themselves up there
    spec.loader.exec_module(module)
    return module


TOOL = load_tool()


def test_names_are_unique():
    names = [mutation.name for mutation in TOOL.MUTATIONS]
    assert len(names) == len(set(names)), sorted(name for name in names if names.count(name) > 1)


@pytest.mark.parametrize("mutation", TOOL.MUTATIONS, ids=lambda mutation: mutation.name)
def test_mutation_applies_once_to_a_fresh_bake(default_project, mutation):
    try:
        original, mutated = TOOL.mutated_bytes(default_project, mutation)
    except TOOL.CheckError as exc:
        pytest.fail(str(exc))
    assert mutated != original, f"{mutation.name} changes nothing"
    path = TOOL.target(default_project, mutation)
    if path.suffix == ".py":
        try:
            ast.parse(mutated, filename=str(path))
        except SyntaxError as exc:
            pytest.fail(f"{mutation.name} leaves {mutation.file} unparsable: {exc}")
    assert mutation.tests, f"{mutation.name} names no tests"
    for test in mutation.tests:
        file, _, name = test.partition("::")
        test_file = default_project / file
        assert test_file.is_file(), f"{mutation.name}: no test file {file}"
        if name:
            function = name.split("[")[0].split("::")[-1]
            assert re.search(rf"^\s*def {re.escape(function)}\(", test_file.read_text(encoding="utf-8"),
                             re.M), f"{mutation.name}: no test {function} in {file}"


def test_last_catchers_are_read_from_the_committed_table():
    """The test each entry's last full run named is tried first: the table must parse."""
    rows = TOOL.table_rows((ROOT / "tools" / "results" / "mutation-latest.md").read_text(encoding="utf-8"))
    caught = {row["name"]: row["caught by"] for row in rows if row.get("result") == "caught"}
    assert len(caught) >= 100, rows[:3]
    assert all(test.startswith("tests/") and "::" in test for test in caught.values()), caught


def test_a_last_catcher_is_tried_only_while_the_entry_names_it():
    entry = TOOL.Mutation("X", "a promise", "f.py", "old", "new", ("tests/a.py", "tests/b.py::test_b"))
    for last, tried in (("tests/a.py::test_a[1]", True), ("tests/b.py::test_b", True),
                        ("tests/b.py::test_b[case]", True), ("tests/b.py::test_bb", False),
                        ("tests/c.py::test_a", False), ("tests/ab.py::test_a", False)):
        assert TOOL.catcher_for(entry, {"X": last}) == (last if tried else ""), last
    assert TOOL.catcher_for(entry, {}) == ""
