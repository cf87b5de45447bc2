"""Settings for the test suite: the project's settings plus views that only tests reach.

The servers the tests start use these settings (``--settings tests.settings``); production
never imports this package, so the blocking and fault views cannot be reached there.
"""

import os
from pathlib import Path

# Every variable the project's settings read has its test value here, so neither .env nor
# the environment of whoever runs the tests decides anything: DJANGO_DEBUG=true or
# DJANGO_HTTPS=true in .env leaves the suite as it is. (Real environment variables win
# over .env, and these are set before the project's settings read it.) DATABASE_URL and
# REDIS_URL still name the project's own servers; conftest.py gives the servers the tests
# start a throwaway database and a key prefix of their own on them.
TEST_ENVIRONMENT = {
    "DJANGO_SECRET_KEY": "test-only-" + "x" * 60,
    "DJANGO_DEBUG": "false",
    "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1,[::1]",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "",
    "DJANGO_TIME_ZONE": "{{ cookiecutter.time_zone }}",
    "DJANGO_LOG_LEVEL": "INFO",
    "DJANGO_STATIC_ROOT": str(Path(__file__).resolve().parent.parent / "staticfiles"),
    "DJANGO_MEDIA_ROOT": str(Path(__file__).resolve().parent.parent / "data" / "media"),
    "DJANGO_EMAIL_FILE_PATH": str(Path(__file__).resolve().parent.parent / "logs" / "mail"),
    "WHITENOISE_MAX_AGE": "60",
    "DJANGO_HTTPS": "false",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_SECURE_HSTS_SECONDS": "0",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "false",
    "DJANGO_SECURE_HSTS_PRELOAD": "false",
    "DATABASE_CONN_MAX_AGE": "60",
    "SQLITE_TIMEOUT": "20",
    "DJANGO_ADMINS": "Test Admin <admin@example.com>",
    "EMAIL_URL": "",
    "DJANGO_SERVER_EMAIL": "server@example.com",
    "DJANGO_DEFAULT_FROM_EMAIL": "site@example.com",
    "DJANGO_WINDOWS_GROUPS": "",
    "DJANGO_WINDOWS_STAFF_GROUPS": "",
    "DJANGO_WINDOWS_SUPERUSER_GROUPS": "",
}
# The pytest process takes them here. A process the fixtures start already has them in the
# environment they give it (marked by TEST_ENVIRONMENT_SET), with whatever a test changed
# on purpose, which must win. A process started otherwise keeps its own values of the ones
# TEST_ENVIRONMENT_KEEP names (NAME,NAME: ci/windows_signon_check.py's group mapping).
if os.environ.get("TEST_ENVIRONMENT_SET") != "1":
    _keep = {name.strip() for name in os.environ.get("TEST_ENVIRONMENT_KEEP", "").split(",") if name.strip()}
    if _keep - TEST_ENVIRONMENT.keys():
        raise RuntimeError(f"TEST_ENVIRONMENT_KEEP names {', '.join(sorted(_keep - TEST_ENVIRONMENT.keys()))}, "
                           "which tests/settings.py does not set")
    os.environ.update({name: value for name, value in TEST_ENVIRONMENT.items()
                       if name not in _keep or name not in os.environ})
    os.environ["TEST_ENVIRONMENT_SET"] = "1"

from {{ cookiecutter.project_slug }}.settings import *  # noqa: E402,F403

ROOT_URLCONF = "tests.urls"
# Django's own handler, unwrapped, when a test asks (TEST_PLAIN_WSGI=1): only then does the
# server answer static files on its event loop, as in production.
WSGI_APPLICATION = ("{{ cookiecutter.project_slug }}.wsgi.application" if os.environ.get("TEST_PLAIN_WSGI") == "1"
                    else "tests.wsgi.application")
# The example WebSocket, which production settings leave unrouted.
TORNADO_ROUTES = "tests.realtime.TORNADO_ROUTES"

# Servers the tests start where the project's Redis does not answer (conftest.py server_env).
if os.environ.get("TEST_CACHE_LOCAL") == "1":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Tests may share Redis with a running site: their keys get a prefix of their own (each
# test server its own random one, from conftest.py).
CACHES["default"]["KEY_PREFIX"] = os.environ.get("TEST_CACHE_KEY_PREFIX") or "{{ cookiecutter.project_slug }}_test"  # noqa: F405
