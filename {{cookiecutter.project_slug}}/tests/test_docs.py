"""The README and .env.example describe the server options the code really has."""

import re
from pathlib import Path

from tornado_wsgi_server import tls, tornado_check
from tornado_wsgi_server.options import options_for
from tornado_wsgi_server.project import load_project

from .conftest import PROJECT_DIR

OPTIONS = options_for(load_project(PROJECT_DIR))


def test_readme_documents_every_server_option():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.cli_name}`" in readme or f"`{option.cli_name} /" in readme, option.cli_name
        assert f"`{option.env_name}`" in readme, option.env_name


def test_readme_lists_no_option_the_server_lacks():
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    # The PFX password is an environment variable only, never a flag (tls.py); so is the
    # unsupported start on another Tornado (tornado_check.py).
    known = {option.env_name for option in OPTIONS} | {tls.PASSWORD_VARIABLE, tornado_check.ALLOW_UNTESTED}
    documented = set(re.findall(r"`(SERVER_[A-Z_]+)`", readme))
    assert documented <= known, documented - known


def test_env_example_mentions_every_server_variable():
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for option in OPTIONS:
        if option.env_name.startswith("SERVER_"):
            assert re.search(rf"^#? ?{option.env_name}=", example, re.M), option.env_name


def test_settings_variables_are_documented():
    settings = (PROJECT_DIR / "{{ cookiecutter.project_slug }}" / "settings.py").read_text(encoding="utf-8")
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
    example = (PROJECT_DIR / ".env.example").read_text(encoding="utf-8")
    for name in set(re.findall(r'env\.\w+\(\s*"([A-Z_]+)"', settings)):
        assert f"`{name}`" in readme, f"{name} missing from README.md"
        assert name in example, f"{name} missing from .env.example"


# Made when the site first runs, or by tools; git ignores them.
GENERATED = {".venv", "db.sqlite3", "staticfiles", "logs", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".git", "media", ".hypothesis", "backups", "wheelhouse", "data",
             "pytest-report.xml"}


def layout_tree() -> set[Path]:
    """Paths (relative to the project) that README's "Project layout" tree lists."""
    readme = (PROJECT_DIR / "README.md").read_text(encoding="utf-8")
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
        assert (PROJECT_DIR / path).exists(), f"README lists {path}, which does not exist"


def test_readme_layout_lists_every_top_level_file_and_server_module():
    listed = layout_tree()
    for entry in PROJECT_DIR.iterdir():
        if entry.name not in GENERATED and not entry.name.endswith((".sqlite3", ".log", ".control")):
            assert Path(entry.name) in listed, f"{entry.name} is missing from README's layout"
    for module in (PROJECT_DIR / "tornado_wsgi_server").glob("*.py"):
        assert Path("tornado_wsgi_server", module.name) in listed, f"{module.name} is missing"
