"""A baked project installs, passes its own tests and is deployable, on every supported Python."""

from __future__ import annotations

import pytest

from helpers import (
    MAIN_PYTHON,
    SUPPORTED_PYTHONS,
    clean_env,
    main_python,
    python_or_skip,
    python_version,
    read_env_file,
    run,
    run_baked_suite,
    venv_python,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tested_default(cookies_session):
    """A default bake whose full test suite has run in its .venv (main Python)."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    return project, run_baked_suite(project, main_python())


def test_baked_project_passes_its_own_tests(tested_default):
    """Every collected test ran and passed. Skips are allowed only for a missing outside
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


@pytest.mark.parametrize("version", [v for v in SUPPORTED_PYTHONS if v != MAIN_PYTHON])
def test_baked_project_smoke_on_python(cookies, version):
    python = python_or_skip(version)
    result = cookies.bake()
    assert result.exit_code == 0, result.exception
    suite = run_baked_suite(result.project_path, python,
                            args=("tests/test_concurrency.py", "tests/test_site.py"))
    suite.assert_clean()
    assert suite.passed >= 3, suite.output[-20000:]
    assert python_version(str(venv_python(result.project_path / ".venv"))) == version
