"""A baked project installs, passes its own tests and is deployable, on every supported Python."""

from __future__ import annotations

import os
import re

import pytest

from background import DEVELOPER_ENV, default_suite
from helpers import (
    MAIN_PYTHON,
    SUPPORTED_PYTHONS,
    clean_env,
    python_or_skip,
    python_version,
    read_env_file,
    run,
    run_baked_suite,
    venv_python,
)

# Above run_baked_suite's own limits (venv and pip 900 s each, the suite 1500 s), which kill what
# they started.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(3600)]

# The Pythons of the smoke runs: every other supported one, or those TEMPLATE_SMOKE_PYTHONS
# lists ("3.10,3.14"; empty: none), for a run that has little time (.ci/run). The others only
# compile the bake (seconds, nothing installed).
_SMOKE = os.environ.get("TEMPLATE_SMOKE_PYTHONS")
SMOKE_PYTHONS = tuple(v for v in SUPPORTED_PYTHONS if v != MAIN_PYTHON and
                      (_SMOKE is None or v in _SMOKE.replace(" ", "").split(",")))
COMPILE_PYTHONS = tuple(v for v in SUPPORTED_PYTHONS if v != MAIN_PYTHON and v not in SMOKE_PYTHONS)


def documented_variables(project) -> set[str]:
    """The SERVER_* and DJANGO_* names .env.example shows (set or commented out)."""
    text = (project / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#? ?((?:SERVER|DJANGO)_[A-Z0-9_]+)=", text, re.MULTILINE))


@pytest.fixture(scope="module")
def tested_default(request):
    """A default bake whose full test suite has run in its .venv (main Python), with
    DEVELOPER_ENV added to its .env for that run: started at collection (background.py)."""
    return default_suite(request.config).result()


def test_developer_env_covers_every_documented_variable(tested_default):
    project, _ = tested_default
    assert documented_variables(project) - {"DJANGO_SECRET_KEY"} <= set(DEVELOPER_ENV)


def test_baked_project_passes_its_own_tests(tested_default):
    """Every collected test ran and passed, whatever the developer's .env says. Skips are allowed only for a missing outside
    service (nginx, openssl, a second loopback address) and only without REQUIRE_SERVICES=1,
    and on Windows for a test whose reason starts with "not on Windows: "."""
    _, suite = tested_default
    suite.assert_clean()
    assert suite.passed >= 50, suite.output[-20000:]


def test_baked_project_passes_check_deploy(tested_default):
    project, _ = tested_default
    key = read_env_file(project / ".env")["DJANGO_SECRET_KEY"]
    env = clean_env(DJANGO_DEBUG="false", DJANGO_HTTPS="true", DJANGO_ALLOWED_HOSTS="example.com",
                    DJANGO_SECRET_KEY=key)
    checked = run([venv_python(project / ".venv"), "manage.py", "check", "--deploy",
                   "--fail-level", "WARNING"], cwd=project, env=env, timeout=120)
    assert checked.returncode == 0, checked.stdout
    assert "System check identified no issues" in checked.stdout, checked.stdout


def test_check_deploy_catches_debug(tested_default):
    """The check above is meaningful: the same command fails when DEBUG is on."""
    project, _ = tested_default
    env = clean_env(DJANGO_DEBUG="true", DJANGO_HTTPS="true", DJANGO_ALLOWED_HOSTS="example.com")
    checked = run([venv_python(project / ".venv"), "manage.py", "check", "--deploy",
                   "--fail-level", "WARNING"], cwd=project, env=env, timeout=120)
    assert checked.returncode != 0, checked.stdout
    assert "security.W018" in checked.stdout, checked.stdout


@pytest.mark.parametrize("version", SMOKE_PYTHONS)
def test_baked_project_smoke_on_python(cookies, version):
    python = python_or_skip(version)
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    # No Kerberos test among these: requirements-dev.txt spares building python-gssapi and
    # krb5 (no Linux wheels) for one more Python.
    suite = run_baked_suite(result.project_path, python, requirements="requirements-dev.txt",
                            args=("tests/test_concurrency.py", "tests/test_site.py"))
    suite.assert_clean()
    assert suite.passed >= 3, suite.output[-20000:]
    assert python_version(str(venv_python(result.project_path / ".venv"))) == version


@pytest.mark.parametrize("version", COMPILE_PYTHONS)
def test_baked_project_compiles_on_python(default_project, version):
    """Where the smoke run is left to another job (TEMPLATE_SMOKE_PYTHONS), every module
    of the bake, tests included, still compiles on that Python, with its warnings as errors."""
    python = python_or_skip(version)
    # compile(), not compileall: nothing is written into the shared bake.
    source = ("import pathlib; [compile(p.read_bytes(), str(p), 'exec') for p in "
              "sorted(pathlib.Path('.').rglob('*.py')) if '.venv' not in p.parts]")
    compiled = run([python, "-W", "error", "-c", source], cwd=default_project, timeout=300)
    assert compiled.returncode == 0, compiled.stdout
