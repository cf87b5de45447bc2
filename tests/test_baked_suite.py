"""A baked project installs, passes its own tests and is deployable, on every supported Python."""

from __future__ import annotations

import os
import re

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


# A developer's .env with every documented SERVER_* and DJANGO_* variable set to a valid
# value other than its default (what the README suggests for production, a proxy, a busy
# site): the project's own tests decide their settings and must pass with it all the same.
DEVELOPER_ENV = {
    "SERVER_HOST": "0.0.0.0", "SERVER_PORT": "8765", "SERVER_THREADS": "3", "SERVER_WORKERS": "2",
    "SERVER_STATIC_FROM_LOOP": "false",
    "SERVER_ACCESS_LOG": "false", "SERVER_LOG_FILE": "logs/elsewhere.log", "SERVER_LOG_MAX_BYTES": "1M",
    "SERVER_LOG_BACKUPS": "2", "SERVER_TRUSTED_PROXIES": "127.0.0.1", "SERVER_MAX_CONNECTIONS": "40",
    "SERVER_MAX_CONNECTIONS_PER_IP": "4", "SERVER_MAX_QUEUE": "5", "SERVER_MAX_QUEUE_WAIT": "1",
    "SERVER_MAX_BODY_SIZE": "2K", "SERVER_MAX_HEADER_SIZE": "2K", "SERVER_IDLE_TIMEOUT": "2",
    "SERVER_BODY_TIMEOUT": "2", "SERVER_MIN_BODY_RATE": "100K", "SERVER_BODY_RATE_WINDOW": "1",
    "SERVER_WRITE_TIMEOUT": "1", "SERVER_MIN_SEND_RATE": "100K", "SERVER_DRAIN_TIMEOUT": "1", "SERVER_REQUEST_TIMEOUT": "1",
    "SERVER_MAX_REQUESTS": "20", "SERVER_MAX_REQUESTS_JITTER": "3", "SERVER_MAX_WEBSOCKETS": "1",
    "SERVER_WEBSOCKET_MAX_MESSAGE_SIZE": "1K", "SERVER_WEBSOCKET_PING_INTERVAL": "1",
    "SERVER_WEBSOCKET_PING_TIMEOUT": "1", "SERVER_METRICS": "9464", "SERVER_METRICS_PUBLIC": "true",
    "SERVER_CERTFILE": "missing-cert.pem", "SERVER_KEYFILE": "missing-key.pem",
    "SERVER_CERT_PASSWORD": "not-the-password",
    "DJANGO_DEBUG": "true", "DJANGO_HTTPS": "true", "DJANGO_ALLOWED_HOSTS": "example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://example.com", "DJANGO_LOG_LEVEL": "DEBUG",
    "DJANGO_TIME_ZONE": "Asia/Tokyo", "DJANGO_ADMINS": "Ops <ops@example.com>",
    "DJANGO_DEFAULT_FROM_EMAIL": "site@example.com", "DJANGO_SERVER_EMAIL": "errors@example.com",
    "DJANGO_SECURE_SSL_REDIRECT": "true", "DJANGO_SECURE_HSTS_SECONDS": "60",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true", "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "DJANGO_SESSION_COOKIE_AGE": "60", "DJANGO_SESSION_EXPIRE_AT_BROWSER_CLOSE": "true",
    "DJANGO_STATIC_ROOT": "elsewhere/static", "DJANGO_MEDIA_ROOT": "elsewhere/media",
    "DJANGO_EMAIL_FILE_PATH": "elsewhere/mail",
}


def documented_variables(project) -> set[str]:
    """The SERVER_* and DJANGO_* names .env.example shows (set or commented out)."""
    text = (project / ".env.example").read_text(encoding="utf-8")
    return set(re.findall(r"^#? ?((?:SERVER|DJANGO)_[A-Z0-9_]+)=", text, re.MULTILINE))


@pytest.fixture(scope="module")
def tested_default(cookies_session):
    """A default bake whose full test suite has run in its .venv (main Python), with
    DEVELOPER_ENV added to its .env for that run."""
    result = cookies_session.bake()
    assert result.exit_code == 0, result.exception
    project = result.project_path
    env_file = project / ".env"
    original = env_file.read_text(encoding="utf-8")
    extra = "".join(f"{name}={value}\n" for name, value in DEVELOPER_ENV.items())
    env_file.write_text(original + "\n# A developer's own settings\n" + extra, encoding="utf-8")
    try:
        return project, run_baked_suite(project, main_python())
    finally:
        env_file.write_text(original, encoding="utf-8")


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
    suite = run_baked_suite(result.project_path, python,
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
