"""Fail when the test run skipped a test that is not on the list of allowed skips.

    python ci/check_skips.py pytest-report.xml                           # nothing may skip
    python ci/check_skips.py pytest-report.xml --allow ci/windows-skips.txt

The report is pytest's ``--junitxml``. An allow-list has one test per line: its id as pytest
prints it (``tests/server/test_x.py::test_y[param]``), `` | `` and why it may skip there;
lines starting with ``#`` are comments. Exit codes: 0 every skip allowed, 1 a skip that is not
(each printed), 2 a report or list that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
import xml.etree.ElementTree as ET
from pathlib import Path


class BadInput(Exception):
    pass


def read_allowed(path: Path) -> dict[str, str]:
    """{test id: reason} from an allow-list file."""
    allowed = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        test_id, _, reason = (part.strip() for part in line.partition(" | "))
        if "::" not in test_id or not reason:
            raise BadInput(f"{path}:{number}: wanted `tests/file.py::test_name | reason`, got {line!r}")
        allowed[test_id] = reason
    return allowed


def test_id(classname: str, name: str, root: Path) -> str:
    """pytest's id from a junit testcase: ``tests.server.test_x`` (maybe ``.TestClass``)
    and ``test_y[param]`` -> ``tests/server/test_x.py::test_y[param]``."""
    parts = classname.split(".")
    for size in range(len(parts), 0, -1):
        path = "/".join(parts[:size]) + ".py"
        if (root / path).is_file():
            return "::".join([path, *parts[size:], name])
    return "::".join(["/".join(parts) + ".py", name])


def skipped_tests(report: Path, root: Path) -> list[tuple[str, str]]:
    """(test id, skip message) of every skipped test in a junit report."""
    try:
        tree = ET.parse(report)
    except (OSError, ET.ParseError) as exc:
        raise BadInput(f"cannot read {report}: {exc}") from None
    cases = list(tree.iter("testcase"))
    if not cases:
        raise BadInput(f"{report} holds no test cases")
    return [(test_id(case.get("classname", ""), case.get("name", ""), root), skipped.get("message", ""))
            for case in cases for skipped in case.iter("skipped")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, help="pytest --junitxml report")
    parser.add_argument("--allow", type=Path, help="file of test ids that may skip, each with its reason")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="folder the test ids are relative to")
    args = parser.parse_args(argv)
    try:
        allowed = read_allowed(args.allow) if args.allow else {}
        skipped = skipped_tests(args.report, args.root)
        unexpected = [f"{test}: {message}" for test, message in skipped if test not in allowed]
    except BadInput as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    if unexpected:
        print(f"Unexpected skips ({len(unexpected)}; "
              + (f"{len(allowed)} tests listed in {args.allow}" if args.allow else "none may skip") + "):\n"
              + "\n".join(unexpected))
        return 1
    print(f"No unexpected skips ({len(skipped)} skipped" + (f", each listed in {args.allow})." if skipped else ")."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
