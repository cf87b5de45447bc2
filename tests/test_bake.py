"""Every supported combination of answers bakes a clean, lint-free project."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import IS_WINDOWS, ROOT, read_env_file

CHOICES = json.loads((ROOT / "cookiecutter.json").read_text(encoding="utf-8"))
DATABASES = CHOICES["database"]
CACHES = CHOICES["cache"]
LICENSES = CHOICES["open_source_license"]
TEMPLATE_DIR = ROOT / "{{cookiecutter.project_slug}}"
LICENSE_TITLES = {"MIT": "MIT License", "BSD-3-Clause": "BSD 3-Clause License",
                  "Apache-2.0": "Apache License"}

COMBINATIONS = [None] + [
    {"database": db, "cache": cache, "open_source_license": lic}
    for db, cache, lic in itertools.product(DATABASES, CACHES, LICENSES)
]


def combination_id(context):
    return "default" if context is None else "-".join(context.values())


def ruff_command() -> list[str]:
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    return [ruff] if ruff else [sys.executable, "-m", "ruff"]


def project_files(project: Path):
    for path in sorted(project.rglob("*")):
        if path.is_file() and ".venv" not in path.parts and "__pycache__" not in path.parts:
            yield path


@pytest.mark.parametrize("context", COMBINATIONS, ids=combination_id)
def test_bake(cookies, context):
    result = cookies.bake(extra_context=context)
    assert result.exit_code == 0, result.exception
    assert result.exception is None
    project = result.project_path
    assert project.is_dir()
    chosen = result.context
    slug = chosen["project_slug"]
    assert project.name == slug
    assert (project / slug / "settings.py").is_file()

    # Nothing left for Jinja: only the Django templates (the project's, and the status
    # page's inside the server package) may use {{ }} and {% %}.
    for path in project_files(project):
        if path.suffix == ".png":  # pictures are copied byte for byte
            continue
        text = path.read_bytes().decode("utf-8", "replace")
        relative = path.relative_to(project).as_posix()
        assert not re.search(r"\bcookiecutter\.[a-z_]", text), f"unrendered cookiecutter variable in {relative}"
        assert "{% raw" not in text and "endraw" not in text, f"raw tag left in {relative}"
        if relative.startswith(".github/workflows/"):
            # GitHub expressions are ${{ ... }}; any other {{ is left-over Jinja.
            text = text.replace("${{", "")
        if not (relative.startswith((f"{slug}/templates/", "tornado_wsgi_server/status/templates/"))
                and relative.endswith(".html")):
            assert "{{" not in text and "{%" not in text, f"unrendered Jinja in {relative}"

    lint = subprocess.run([*ruff_command(), "check", "--no-cache", "."], cwd=project,
                          capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr

    for script in sorted(project.glob("*.bat")):  # start_server, service, upgrade
        bat = script.read_bytes()
        lines = bat.split(b"\n")
        assert lines[-1] == b"", f"{script.name} must end with a line break"
        bad = [i + 1 for i, line in enumerate(lines[:-1]) if not line.endswith(b"\r")]
        assert not bad, f"{script.name} lines without CRLF: {bad}"
        assert b"\r" not in bat.replace(b"\r\n", b"")

    sh = project / "start_server.sh"
    assert b"\r" not in sh.read_bytes(), "start_server.sh must have LF line endings"
    assert sh.read_bytes().startswith(b"#!/bin/sh\n")
    if not IS_WINDOWS:
        assert sh.stat().st_mode & stat.S_IXUSR and os.access(sh, os.X_OK)

    env_file = project / ".env"
    assert env_file.is_file(), ".env was not written by the post-generation hook"
    key = read_env_file(env_file)["DJANGO_SECRET_KEY"]
    assert len(key) >= 50 and not key.startswith("django-insecure-"), key
    assert key != read_env_file(project / ".env.example")["DJANGO_SECRET_KEY"]
    ignored = (project / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".env" in [line.strip() for line in ignored]

    license_file = project / "LICENSE"
    if chosen["open_source_license"] == "Not open source":
        assert not license_file.exists()
    else:
        assert license_file.is_file()
        text = license_file.read_text(encoding="utf-8")
        assert LICENSE_TITLES[chosen["open_source_license"]] in text.splitlines()[0]
        # Every license's copyright line names the author (Apache-2.0: in its appendix).
        assert re.search(rf"^\s*Copyright .*{re.escape(chosen['author_name'])}\s*$", text, re.M), text[-600:]

    for relative, option, value in (("tests/test_postgresql.py", "database", "postgresql"),
                                    ("tests/test_redis.py", "cache", "redis")):
        assert (TEMPLATE_DIR / relative).is_file(), f"the template has no {relative}"
        present = (project / relative).exists()
        if chosen[option] != value:
            assert not present, f"{relative} kept although {option}={chosen[option]}"
        else:
            assert present, f"{relative} missing although {option}={value}"

    requirements = (project / "requirements.txt").read_text(encoding="utf-8")
    assert ("psycopg" in requirements) == (chosen["database"] == "postgresql")
    assert ("redis" in requirements) == (chosen["cache"] == "redis")


def test_bake_answers_reach_the_project(cookies):
    result = cookies.bake(extra_context={
        "project_name": "Intranet Portal", "port": "8123", "threads": "16",
        "time_zone": "Europe/Berlin", "author_name": "Ada Example",
    })
    assert result.exit_code == 0, result.exception
    project = result.project_path
    assert project.name == "intranet_portal"
    env = read_env_file(project / ".env")
    assert env["SERVER_PORT"] == "8123"
    assert env["SERVER_THREADS"] == "16"
    assert env["DJANGO_TIME_ZONE"] == "Europe/Berlin"
    assert "Intranet Portal" in (project / "start_server.bat").read_text(encoding="utf-8")


def test_server_package_is_the_same_in_every_project(cookies):
    """Upgrading the server means copying its folder from a newer bake: it holds nothing
    of the answers a project was made with."""
    packages = []
    for context in ({}, {"project_name": "Other Place", "port": "9001", "threads": "3",
                         "database": "postgresql", "cache": "redis"}):
        result = cookies.bake(extra_context=context)
        assert result.exit_code == 0, result.exception
        package = result.project_path / "tornado_wsgi_server"
        packages.append({path.relative_to(package).as_posix(): path.read_bytes()
                         for path in project_files(package)})
    assert "cli.py" in packages[0] and "__init__.py" in packages[0]
    assert packages[0] == packages[1]


def test_layout_keeps_the_server_small_and_apart(cookies):
    """The user's code and the server stay apart, and every file stays readable: nothing at
    the project root over 200 lines but README.md, a thin tornado_server.py, no server
    module over 500 lines, and the Tornado routes in the user's Django package."""
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path

    def lines(path: Path) -> int:
        return len(path.read_text(encoding="utf-8").splitlines())

    root_files = {path.name: lines(path) for path in project.iterdir()
                  if path.is_file() and path.name != "README.md"}
    assert "bootstrap.py" in root_files and "start_server.bat" in root_files
    assert {name: count for name, count in root_files.items() if count > 200} == {}
    assert root_files["tornado_server.py"] < 60
    package = project / "tornado_wsgi_server"
    modules = {path.relative_to(package).as_posix(): lines(path) for path in package.rglob("*.py")}
    assert len(modules) > 20
    assert {name: count for name, count in modules.items() if count > 500} == {}
    defines_routes = re.compile(r"^TORNADO_ROUTES\s*[:=]", re.MULTILINE)
    assert not any(defines_routes.search(path.read_text(encoding="utf-8")) for path in package.rglob("*.py"))
    assert "TORNADO_ROUTES = [" in (project / "my_site" / "realtime.py").read_text(encoding="utf-8")


def test_each_bake_gets_its_own_secret_key(cookies):
    keys = set()
    for _ in range(2):
        result = cookies.bake()
        assert result.exit_code == 0, result.exception
        keys.add(read_env_file(result.project_path / ".env")["DJANGO_SECRET_KEY"])
        if not IS_WINDOWS:  # the secret key is its owner's alone
            assert (result.project_path / ".env").stat().st_mode & 0o777 == 0o600
    assert len(keys) == 2


def test_secrets_and_run_time_files_are_git_ignored(cookies, tmp_path):
    """git's own reading of the project's .gitignore: a `git add -A` commits no key or data."""
    git = shutil.which("git")
    if git is None:
        pytest.skip("git not found")
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    repository = tmp_path / "repository"
    repository.mkdir()
    shutil.copy(result.project_path / ".gitignore", repository)
    subprocess.run([git, "init", "-q", str(repository)], check=True, timeout=60)
    ignored = ["certs/site.pfx", "certs/key.pem", "site.pfx", "deploy/site.p12", ".env", "data/db.sqlite3",
               "data/server-8000.control", "logs/server.log", "backups/my_site-2026.sqlite3", ".venv/bin/python"]
    kept = ["data/.gitkeep", ".env.example", "deploy/my_site.service", "tornado_server.py"]
    checked = subprocess.run([git, "check-ignore", "--no-index", *ignored, *kept], cwd=repository,
                             capture_output=True, text=True, timeout=60)
    assert checked.stdout.splitlines() == ignored, checked.stdout + checked.stderr
