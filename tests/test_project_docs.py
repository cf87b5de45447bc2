"""A bake's manual (README.md and docs/), .env.example and layout tree describe the files,
options and settings the project really has, with the defaults `tornado_server.py --help`
prints. These keep the template consistent; they are not in the baked suite, which must keep
passing when the user adds apps, folders, settings or README sections of their own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import clean_env

# The options as the server defines them and the text of --help (options.py, tls.py,
# tornado_check.py and project.py use the standard library only, so the template's Python can
# import them from the bake).
PROBE = """
import json
from pathlib import Path
from tornado_wsgi_server import tls, tornado_check
from tornado_wsgi_server.options import build_arg_parser, options_for
from tornado_wsgi_server.project import load_project
project = load_project(Path.cwd())
options = options_for(project)
print(json.dumps({"options": [[o.cli_name, o.env_name, o.flag] for o in options],
                  "env_only": [tls.PASSWORD_VARIABLE, tornado_check.ALLOW_UNTESTED],
                  "help": build_arg_parser(project).format_help()}))
"""

VARIANTS = [None, {"database": "postgresql", "cache": "redis", "open_source_license": "Not open source"}]


@pytest.fixture(scope="module", params=VARIANTS, ids=["default", "postgresql-redis-unlicensed"])
def project(request, cookies_session) -> Path:
    result = cookies_session.bake(extra_context=request.param)
    assert result.exit_code == 0, result.exception
    return result.project_path


@pytest.fixture(scope="module")
def server(project) -> dict:
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=project, env=clean_env(COLUMNS="100"),
                           capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0, probe.stderr
    return json.loads(probe.stdout)


def read(project: Path, name: str) -> str:
    return (project / name).read_text(encoding="utf-8")


def manual(project: Path) -> str:
    """README.md and every page of docs/."""
    pages = [project / "README.md", *sorted((project / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def help_options(help_text: str) -> dict[str, tuple[str, str]]:
    """``--flag: (variable, default)`` for every option --help lists with a variable."""
    found = {}
    for chunk in re.split(r"\n  (?=--)", help_text)[1:]:
        text = " ".join(chunk.split())
        if match := re.search(r"\[env (\S+); default (.+?)\]$", text):
            found[re.match(r"--[\w-]+", text).group()] = match.groups()
    return found


def table_options(project: Path) -> dict[str, tuple[str, str]]:
    """``--flag: (variable, default)`` for every row of docs/configuration.md's option table."""
    rows = {}
    for line in read(project, "docs/configuration.md").splitlines():
        if line.startswith("| `--"):
            flag, variable, default = (cell.strip() for cell in line.strip("|").split("|")[:3])
            rows[re.match(r"`(--[\w-]+)`", flag).group(1)] = (variable.strip("`"), default)
    return rows


def same_default(printed: str, documented: str) -> bool:
    documented = documented.replace("`", "")
    if printed == "(none)":
        return documented.startswith(("(none", "(off", "half of"))
    if printed in ("true", "false"):
        return documented.split()[0] == {"true": "on", "false": "off"}[printed]
    # "1000 (500 on Windows)": the value --help prints on this machine is one of those named.
    return re.search(rf"(?<![\w.]){re.escape(printed)}(?![\w.])", documented) is not None


def test_option_table_matches_help(project, server):
    printed, documented = help_options(server["help"]), table_options(project)
    assert len(printed) == len(server["options"])
    assert sorted(documented) == sorted(printed), "docs/configuration.md's server options"
    for flag, (variable, default) in printed.items():
        assert documented[flag][0] == variable, flag
        assert same_default(default, documented[flag][1]), (flag, default, documented[flag][1])


def test_manual_names_no_option_the_server_lacks(project, server):
    # The PFX password and the unsupported start on another Tornado are environment
    # variables only, never flags (tls.py, tornado_check.py).
    known = {env_name for _, env_name, _ in server["options"]} | set(server["env_only"])
    documented = set(re.findall(r"`(SERVER_[A-Z_]+)", manual(project)))
    assert documented <= known, documented - known
    flags = {cli_name for cli_name, _, _ in server["options"]}
    flags |= {"--no-" + cli_name[2:] for cli_name, _, flag in server["options"] if flag}
    named = set(re.findall(r"`(--[a-z][a-z-]+)", manual(project)))
    assert {flag for flag in named if flag.startswith(tuple(flags))} <= flags


def test_env_example_mentions_every_server_variable(project, server):
    example = read(project, ".env.example")
    for _, env_name, _ in server["options"]:
        if env_name.startswith("SERVER_"):
            assert re.search(rf"^#? ?{env_name}=", example, re.M), env_name


def test_settings_variables_are_documented(project):
    settings = (project / project.name / "settings.py").read_text(encoding="utf-8")
    configuration = read(project, "docs/configuration.md")
    example = read(project, ".env.example")
    for name in set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings)):
        assert f"`{name}`" in configuration, f"{name} missing from docs/configuration.md"
        assert name in example, f"{name} missing from .env.example"


# Made when the site first runs, or by tools; git ignores them.
GENERATED = {".venv", "db.sqlite3", "staticfiles", "logs", "data", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".git", "media", ".hypothesis", "backups", "wheelhouse",
             "pytest-report.xml"}


def layout_tree(project: Path) -> set[Path]:
    """Paths (relative to the project) that docs/development.md's "Project layout" tree lists."""
    page = read(project, "docs/development.md")
    block = page.split("<!-- layout -->", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
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


def test_layout_lists_only_what_exists(project):
    for path in layout_tree(project):
        assert (project / path).exists(), f"docs/development.md lists {path}, which does not exist"


def test_layout_lists_every_top_level_file_and_server_module(project):
    listed = layout_tree(project)
    for entry in project.iterdir():
        if entry.name not in GENERATED and not entry.name.endswith((".sqlite3", ".log", ".control")):
            assert Path(entry.name) in listed, f"{entry.name} is missing from docs/development.md's layout"
    for module in (project / "tornado_wsgi_server").glob("*.py"):
        assert Path("tornado_wsgi_server", module.name) in listed, f"{module.name} is missing"
