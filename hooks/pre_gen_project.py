"""Validate the answers before anything is written.

Each problem prints one ``ERROR: ...`` line and exits non-zero; cookiecutter then
removes the half-made project directory.
"""

import keyword
import re
import sys

PROJECT_NAME = {{ cookiecutter.project_name | jsonify }}
SLUG = {{ cookiecutter.project_slug | jsonify }}
EMAIL = {{ cookiecutter.email | jsonify }}
PORT = {{ cookiecutter.port | jsonify }}
THREADS = {{ cookiecutter.threads | jsonify }}
TIME_ZONE = {{ cookiecutter.time_zone | jsonify }}

MAX_THREADS = 256

# Modules the generated project imports or creates at its top level: a package
# named like one of them would be imported instead (or would hide it).
TAKEN_NAMES = {
    "django", "tornado", "whitenoise", "environ", "psycopg", "redis", "waitress",
    "concurrent_log_handler", "portalocker", "dotenv", "pytest", "pytest_django",
    "httpx", "win32serviceutil", "win32service", "win32event", "servicemanager",
    "pywin32", "tzdata",
    "test", "tests", "site", "manage", "tornado_server", "tornado_wsgi_server",
    "bootstrap", "update", "config", "static", "staticfiles", "templates", "media",
    "benchmarks",
}


def fail(message):
    print(f"ERROR: {message}")
    sys.exit(1)


def stdlib_names():
    names = set(getattr(sys, "stdlib_module_names", ()))
    names.update(sys.builtin_module_names)
    return names


def check_slug():
    # cookiecutter.json falls back to "-" when the name has nothing to make a slug from
    # (an empty slug would make the output folder itself the project folder).
    if SLUG == "-":
        fail(
            f"project_name {PROJECT_NAME!r} has no letters or digits to make a package "
            "name from; give a project_slug (e.g. my_site)."
        )
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", SLUG):
        fail(
            f"project_slug {SLUG!r} is not a valid Python package name: use lowercase "
            "letters, digits and underscores, not starting with a digit (e.g. my_site)."
        )
    if keyword.iskeyword(SLUG) or keyword.issoftkeyword(SLUG):
        fail(f"project_slug {SLUG!r} is a Python keyword; choose another name.")
    if SLUG in TAKEN_NAMES or SLUG in stdlib_names():
        fail(
            f"project_slug {SLUG!r} would shadow the module {SLUG!r} that the project "
            "imports; choose another name (e.g. my_site)."
        )


def check_int(name, raw, low, high):
    raw = str(raw)
    try:
        value = int(raw.strip())
    except ValueError:
        value = None
    if value is None or str(value) != raw.strip() or not low <= value <= high:
        fail(f"{name} must be a whole number from {low} to {high}, got {raw!r}.")


def check_time_zone():
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(TIME_ZONE)
    except ValueError:
        fail(f"time_zone {TIME_ZONE!r} is not a valid IANA time zone name (e.g. UTC).")
    except zoneinfo.ZoneInfoNotFoundError:
        # Without a time zone database (Windows without tzdata) only UTC is known;
        # the name cannot be checked here; settings.py checks it at start-up.
        if zoneinfo.available_timezones():
            fail(
                f"time_zone {TIME_ZONE!r} is not a known IANA time zone "
                "(e.g. UTC, Europe/Berlin, America/New_York)."
            )


def main():
    if not PROJECT_NAME.strip():
        fail("project_name must not be empty.")
    if any(ch in PROJECT_NAME for ch in "\"\\\r\n{}"):
        fail("project_name must not contain quotes, backslashes, braces or line breaks.")
    check_slug()
    if not re.fullmatch(r"[^@\s\"']+@[^@\s\"']+", EMAIL):
        fail(f"email {EMAIL!r} does not look like an e-mail address (name@example.com).")
    check_int("port", PORT, 1, 65535)
    check_int("threads", THREADS, 1, MAX_THREADS)
    check_time_zone()


main()
