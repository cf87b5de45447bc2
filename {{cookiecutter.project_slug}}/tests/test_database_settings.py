"""The database settings a PostgreSQL URL gets, read from the project's settings module in a
fresh process (no database needed): a short connect time-out unless the URL sets one."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import PROJECT_DIR

SHOW = (
    "import json, os; os.environ['DJANGO_SETTINGS_MODULE'] = '{{ cookiecutter.project_slug }}.settings';"
    "from django.conf import settings; print(json.dumps(settings.DATABASES['default'].get('OPTIONS', {})))"
)


def database_options(url: str, **extra: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_CONNECT_TIMEOUT"}
    env.update(DATABASE_URL=url, DJANGO_SECRET_KEY="x" * 60, **extra)
    result = subprocess.run([sys.executable, "-c", SHOW], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=60, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("url", "extra", "expected"), [
    ("postgres://site:secret@db.example.com:5432/site", {}, 5),
    ("postgres://site:secret@db.example.com:5432/site", {"DATABASE_CONNECT_TIMEOUT": "12"}, 12),
    ("postgres://site:secret@db.example.com:5432/site?connect_timeout=3", {}, "3"),
])
def test_postgresql_connections_time_out_quickly(url, extra, expected):
    options = database_options(url, **extra)
    assert str(options["connect_timeout"]) == str(expected)
