"""The manual (README.md and docs/) and .env.example describe the server options the code
really has, with the defaults `tornado_server.py --help` prints."""

import re
import subprocess
import sys
from pathlib import Path

from tornado_wsgi_server import tls, tornado_check
from tornado_wsgi_server.options import options_for
from tornado_wsgi_server.project import load_project

from .conftest import PROJECT_DIR

OPTIONS = options_for(load_project(PROJECT_DIR))
CONFIGURATION = PROJECT_DIR / "docs" / "configuration.md"


def manual() -> str:
    """README.md and every page of docs/."""
    pages = [PROJECT_DIR / "README.md", *sorted((PROJECT_DIR / "docs").glob("*.md"))]
    return "\n".join(page.read_text(encoding="utf-8") for page in pages)


def help_options() -> dict[str, tuple[str, str]]:
    """``--flag: (variable, default)`` for every option ``tornado_server.py --help`` lists with a variable."""
    result = subprocess.run([sys.executable, "tornado_server.py", "--help"], cwd=PROJECT_DIR,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = {}
    for chunk in re.split(r"\n  (?=--)", result.stdout)[1:]:
        text = " ".join(chunk.split())
        if match := re.search(r"\[env (\S+); default (.+?)\]$", text):
            found[re.match(r"--[\w-]+", text).group()] = match.groups()
    return found


def table_options() -> dict[str, tuple[str, str]]:
    """``--flag: (variable, default)`` for every row of the server options table."""
    rows = {}
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
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


def test_option_table_matches_help():
    printed, documented = help_options(), table_options()
    assert len(printed) == len(OPTIONS)
    assert sorted(documented) == sorted(printed), "docs/configuration.md's server options"
    for flag, (variable, default) in printed.items():
        assert documented[flag][0] == variable, flag
        assert same_default(default, documented[flag][1]), (flag, default, documented[flag][1])


def test_manual_names_no_option_the_server_lacks():
    # The PFX password is an environment variable only, never a flag (tls.py); so is the
    # unsupported start on another Tornado (tornado_check.py).
    known = {option.env_name for option in OPTIONS} | {tls.PASSWORD_VARIABLE, tornado_check.ALLOW_UNTESTED}
    documented = set(re.findall(r"`(SERVER_[A-Z_]+)", manual()))
    assert documented <= known, documented - known
    flags = {option.cli_name for option in OPTIONS}
    flags |= {"--no-" + option.cli_name[2:] for option in OPTIONS if option.flag}
    named = set(re.findall(r"`(--[a-z][a-z-]+)", manual()))
    assert {flag for flag in named if flag.startswith(tuple(flags))} <= flags


def test_env_example_mentions_every_server_variable():
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for option in OPTIONS:
        if option.env_name.startswith("SERVER_"):
            assert re.search(rf"^#? ?{option.env_name}=", example, re.M), option.env_name


def test_settings_variables_are_documented():
    settings = (PROJECT_DIR / "{{ cookiecutter.project_slug }}" / "settings.py").read_text(encoding="utf-8")
    configuration = CONFIGURATION.read_text(encoding="utf-8")
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for name in set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings)):
        assert f"`{name}`" in configuration, f"{name} missing from docs/configuration.md"
        assert name in example, f"{name} missing from .env.example"


# Made when the site first runs, or by tools; git ignores them.
GENERATED = {".venv", "db.sqlite3", "staticfiles", "logs", "data", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".git", "media", ".hypothesis", "backups", "wheelhouse"}


def layout_tree() -> set[Path]:
    """Paths (relative to the project) that docs/development.md's "Project layout" tree lists."""
    readme = (PROJECT_DIR / "docs" / "development.md").read_text(encoding="utf-8")
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


def test_readme_layout_lists_only_what_exists():
    for path in layout_tree():
        assert (PROJECT_DIR / path).exists(), f"docs/development.md lists {path}, which does not exist"


def test_readme_layout_lists_every_top_level_file_and_server_module():
    listed = layout_tree()
    for entry in PROJECT_DIR.iterdir():
        if entry.name not in GENERATED and not entry.name.endswith((".sqlite3", ".log", ".control")):
            assert Path(entry.name) in listed, f"{entry.name} is missing from docs/development.md's layout"
    for module in (PROJECT_DIR / "tornado_wsgi_server").glob("*.py"):
        assert Path("tornado_wsgi_server", module.name) in listed, f"{module.name} is missing"
