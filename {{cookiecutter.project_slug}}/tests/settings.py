"""Settings for the test suite: the project's settings plus views that only tests reach.

The servers the tests start use these settings (``--settings tests.settings``); production
never imports this package, so the blocking and fault views cannot be reached there.
"""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-only-" + "x" * 60)

from {{ cookiecutter.project_slug }}.settings import *  # noqa: E402,F403

ROOT_URLCONF = "tests.urls"
WSGI_APPLICATION = "tests.wsgi.application"
# The example WebSocket, which production settings leave unrouted.
TORNADO_ROUTES = "tests.realtime.TORNADO_ROUTES"

# Test servers may share Redis with a running site: their keys get a prefix of their own.
if os.environ.get("TEST_CACHE_KEY_PREFIX"):
    CACHES["default"]["KEY_PREFIX"] = os.environ["TEST_CACHE_KEY_PREFIX"]  # noqa: F405
