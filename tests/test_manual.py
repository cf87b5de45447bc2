"""The generated project's manual: a README short enough to read in Notepad that links every
page of docs/, links and anchors that resolve, and one statement of the supported Python
versions that the starters, the package metadata and CI agree with. And this repository's
own README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers import ROOT

README_LIMIT = 300
RANGE = re.compile(r"3\.(\d+)\s*[–-]\s*3\.(\d+)")


@pytest.fixture(scope="module", params=["default", "postgresql-redis"])
def project(request, cookies_session) -> Path:
    extra = {} if request.param == "default" else {
        "project_name": "Other Site", "database": "postgresql", "cache": "redis",
        "open_source_license": "Not open source"}
    result = cookies_session.bake(extra_context=extra)
    assert result.exit_code == 0, result.exception
    return result.project_path


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(text: str) -> set[str]:
    found, seen, fenced = set(), {}, False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            name = slug(match.group(1))
            found.add(f"{name}-{seen[name]}" if name in seen else name)
            seen[name] = seen.get(name, 0) + 1
    return found


def pages(project: Path) -> list[Path]:
    return [project / "README.md", *sorted((project / "docs").glob("*.md"))]


def test_readme_fits_in_the_limit(project):
    lines = (project / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LIMIT, f"README.md has {len(lines)} lines"


def test_every_docs_page_is_linked_from_the_readme(project):
    readme = (project / "README.md").read_text(encoding="utf-8")
    docs = sorted(path.name for path in (project / "docs").glob("*.md"))
    assert len(docs) >= 10
    assert [name for name in docs if f"](docs/{name}" not in readme] == []


def test_every_link_and_anchor_resolves(project):
    broken = []
    for page in pages(project):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, fragment = target.partition("#")
            destination = (page.parent / path) if path else page
            if not destination.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif fragment and fragment not in anchors(destination.read_text(encoding="utf-8")):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert broken == []


def test_the_python_range_is_stated_once_and_agrees(project):
    stated = [(page.name, match) for page in pages(project)
              for match in RANGE.finditer(page.read_text(encoding="utf-8"))]
    assert [name for name, _ in stated] == ["README.md"], stated
    low, high = (int(group) for group in stated[0][1].groups())

    bat = (project / "start_server.bat").read_text(encoding="utf-8")
    tried = [int(minor) for minor in re.findall(r"call :try_python py -3\.(\d+)", bat)]
    assert tried == list(range(high, low - 1, -1)), "start_server.bat tries py -3.X newest first"
    pyproject = (project / "pyproject.toml").read_text(encoding="utf-8")
    assert f'requires-python = ">=3.{low}"' in pyproject
    bootstrap = (project / "tornado_wsgi_server" / "bootstrap.py").read_text(encoding="utf-8")
    assert f"MIN_PYTHON = (3, {low})" in bootstrap and f"TESTED_UP_TO = (3, {high})" in bootstrap
    ci = (project / ".github" / "workflows" / "ci.yml").read_text(encoding="utf-8")
    versions = {int(minor) for minor in re.findall(r'"3\.(\d+)"', ci)}
    assert versions and min(versions) == low and max(versions) == high
    # This repository's README speaks of the same versions wherever it names a range.
    template = (ROOT / "README.md").read_text(encoding="utf-8")
    assert {tuple(map(int, match.groups())) for match in RANGE.finditer(template)} == {(low, high)}


def test_template_readmes_stay_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_LIMIT, f"README.md has {len(lines)} lines"
    readme = "\n".join(lines)
    # The prompts a newcomer answers come before the tests, benchmarks and mutation check.
    assert readme.index("## Options") < readme.index("<!-- test-command -->")
    for target in ("tools/README.md", "benchmarks/README.md"):
        assert f"]({target}" in readme and (ROOT / target).exists()
