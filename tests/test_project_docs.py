"""A bake's README, .env.example and layout tree describe the files, options and settings the
project really has. These keep the template consistent; they are not in the baked suite, which
must keep passing when the user adds apps, folders, settings or README sections of their own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env

# The options' names as the server defines them (options.py, tls.py and project.py use the
# standard library only, so the template's Python can import them from the bake).
PROBE = """
import json
from pathlib import Path
from tornado_wsgi_server import tls, tornado_check
from tornado_wsgi_server.options import options_for
from tornado_wsgi_server.project import load_project
options = options_for(load_project(Path.cwd()))
print(json.dumps({"options": [[o.cli_name, o.env_name] for o in options],
                  "env_only": [tls.PASSWORD_VARIABLE, tornado_check.ALLOW_UNTESTED]}))
"""

VARIANTS = [None, {"database": "postgresql", "cache": "redis", "open_source_license": "Not open source"}]


@pytest.fixture(scope="module", params=VARIANTS, ids=["default", "postgresql-redis-unlicensed"])
def project(request, cookies_session) -> Path:
    result = cookies_session.bake(extra_context=request.param)
    assert result.exit_code == 0, result.exception
    return result.project_path


def server_options(project: Path) -> tuple[list[tuple[str, str]], list[str]]:
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=project, env=clean_env(),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    answer = json.loads(probe.stdout)
    return [tuple(pair) for pair in answer["options"]], answer["env_only"]


def read(project: Path, name: str) -> str:
    return (project / name).read_text(encoding="utf-8")


def test_readme_documents_every_server_option(project):
    readme = read(project, "README.md")
    options, _ = server_options(project)
    for cli_name, env_name in options:
        assert f"`{cli_name}`" in readme or f"`{cli_name} /" in readme, cli_name
        assert f"`{env_name}`" in readme, env_name


def test_readme_lists_no_option_the_server_lacks(project):
    options, env_only = server_options(project)
    # The PFX password is an environment variable only, never a flag (tls.py); so is the
    # unsupported start on another Tornado (tornado_check.py).
    known = {env_name for _, env_name in options} | set(env_only)
    documented = set(re.findall(r"`(SERVER_[A-Z_]+)`", read(project, "README.md")))
    assert documented <= known, documented - known


def test_env_example_mentions_every_server_variable(project):
    example = read(project, ".env.example")
    options, _ = server_options(project)
    for _, env_name in options:
        if env_name.startswith("SERVER_"):
            assert re.search(rf"^#? ?{env_name}=", example, re.M), env_name


def test_settings_variables_are_documented(project):
    settings = (project / project.name / "settings.py").read_text(encoding="utf-8")
    readme = read(project, "README.md")
    example = read(project, ".env.example")
    for name in set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings)):
        assert f"`{name}`" in readme, f"{name} missing from README.md"
        assert name in example, f"{name} missing from .env.example"


# Made when the site first runs, or by tools; git ignores them.
GENERATED = {".venv", "db.sqlite3", "staticfiles", "logs", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".git", "media", ".hypothesis", "backups", "wheelhouse", "data",
             "pytest-report.xml"}


def layout_tree(project: Path) -> set[Path]:
    """Paths (relative to the project) that README's "Project layout" tree lists."""
    readme = read(project, "README.md")
    block = readme.split("<!-- layout -->", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    listed, parents = set(), []
    for line in block.splitlines()[1:]:
        match = re.match(r"^((?:[│ ]   )*)[├└]── ([^\s,]+(?:, [^\s,]+)*)", line)
        assert match, f"not a tree line: {line!r}"
        depth = len(match.group(1)) // 4
        del parents[depth:]
        names = [name.rstrip("/") for name in match.group(2).split(", ")]
        for name in names:
            listed.add(Path(*parents, name))
        parents.append(names[0])
    return listed


def test_readme_layout_lists_only_what_exists(project):
    for path in layout_tree(project):
        assert (project / path).exists(), f"README lists {path}, which does not exist"


def test_readme_layout_lists_every_top_level_file_and_server_module(project):
    listed = layout_tree(project)
    for entry in project.iterdir():
        if entry.name not in GENERATED and not entry.name.endswith((".sqlite3", ".log", ".control")):
            assert Path(entry.name) in listed, f"{entry.name} is missing from README's layout"
    for module in (project / "tornado_wsgi_server").glob("*.py"):
        assert Path("tornado_wsgi_server", module.name) in listed, f"{module.name} is missing"
