"""Load the project: Django's settings and WSGI application, and the project's own Tornado
handlers (named by the ``TORNADO_ROUTES`` setting). Errors a user can fix end the start-up
with one ``ERROR:`` line instead of a traceback.
"""

from __future__ import annotations

import os
import re

from tornado import web

from .logs import setup_logging
from .options import ServerOptions


def setup_django(options: ServerOptions):
    """Load settings and the WSGI application (settings.WSGI_APPLICATION)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
        from django.core.servers.basehttp import get_internal_wsgi_application

        application = get_internal_wsgi_application()
    except ImproperlyConfigured as exc:
        raise SystemExit(f"ERROR: Django settings {options.settings!r}: {exc}") from None
    except ModuleNotFoundError as exc:
        raise SystemExit(f"ERROR: cannot import Django settings {options.settings!r}: {exc}") from None
    setup_logging(options)
    return application


def tornado_routes() -> tuple[web.Application | None, re.Pattern | None]:
    """The Tornado application for the project's own handlers, and the paths it owns.

    ``settings.TORNADO_ROUTES`` is the dotted path of a list of Tornado routes,
    ``(path regex, handler class[, kwargs])``; paths that match go to Tornado, all others
    to Django. Unset or empty: Django serves every path. Call after ``setup_django()``.
    """
    from django.conf import settings
    from django.utils.module_loading import import_string

    dotted = getattr(settings, "TORNADO_ROUTES", None)
    if not dotted:
        return None, None
    try:
        routes = import_string(dotted) if isinstance(dotted, str) else dotted
        routes = list(routes)
        pattern = re.compile("|".join(f"(?:{route[0]})$" for route in routes)) if routes else None
    except (ImportError, TypeError, IndexError, re.error) as exc:
        raise SystemExit(
            f"ERROR: settings.TORNADO_ROUTES = {dotted!r} must name a list of "
            f"(path regex, handler class) routes: {exc}"
        ) from None
    if pattern is None:
        return None, None
    return web.Application(routes), pattern
