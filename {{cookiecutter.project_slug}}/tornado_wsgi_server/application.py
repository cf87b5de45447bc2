"""Load the project: Django's settings and WSGI application, and the project's own Tornado
handlers (named by the ``TORNADO_ROUTES`` setting), which get Django's Host check, a
same-origin check, WebSocket pings, a message size limit, a WebSocket cap and a request body
limit per route. Errors a user can fix end the start-up with one ``ERROR:`` line instead of a
traceback.
"""

from __future__ import annotations

import os
import re
from urllib.parse import urlsplit

from tornado import httputil, web, websocket

from .logs import reopen_file_log, setup_logging
from .options import ServerOptions
from .proxies import Proxies, last_value


def setup_django(options: ServerOptions):
    """Load settings and the WSGI application (settings.WSGI_APPLICATION).

    The log file is set up first, so that a start that fails here is in it too (the caller
    logs why); Django's logging set-up then replaces it with a new one."""
    setup_logging(options)
    os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    # The settings turn on Django's side of Windows sign-on from these (however they were given).
    os.environ["SERVER_WINDOWS_AUTH"] = options.windows_auth
    os.environ["SERVER_WINDOWS_AUTH_HEADER"] = options.windows_auth_header
    os.environ["SERVER_WINDOWS_AUTH_USER_FORMAT"] = options.windows_auth_user_format
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
    from django.conf import settings
    from django.urls import get_resolver

    try:  # import the URLconf and its views now: broken code fails the start, not each request
        get_resolver().url_patterns  # noqa: B018
    except Exception as exc:
        raise SystemExit(f"ERROR: cannot load the URLs and views ({settings.ROOT_URLCONF}): "
                         f"{type(exc).__name__}: {exc}") from None
    reopen_file_log(options)
    return application


def tornado_routes(options: ServerOptions) -> tuple[web.Application | None, re.Pattern | None]:
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
    allowed_hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed_hosts:  # what Django itself allows then
        allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
    return ProjectHandlers(routes, options, allowed_hosts), pattern


# A Tornado handler that takes its body whole (not @stream_request_body) holds it in memory:
# at most this much (413 beyond). A WebSocket route takes no body at all.
HANDLER_MAX_BODY = 1024 * 1024
# Tornado's own form parser stops at 100 parts (a global setting since 6.5.5); on the routes,
# as for Django (DATA_UPLOAD_MAX_NUMBER_FIELDS), a form may have up to this many.
ROUTE_BODY_CONFIG = httputil.ParseBodyConfig(multipart=httputil.ParseMultipartConfig(max_parts=1000))


def body_limit(handler_class, max_body_size: int) -> int:
    """The largest request body a route's handler may receive."""
    if isinstance(handler_class, type) and issubclass(handler_class, websocket.WebSocketHandler):
        return 0
    if isinstance(handler_class, type) and issubclass(handler_class, web.RequestHandler) \
            and web._has_stream_request_body(handler_class):
        return max_body_size  # it takes the body as it comes
    return min(HANDLER_MAX_BODY, max_body_size)


def _parse_body(request) -> None:
    """``HTTPServerRequest._parse_body`` with this server's form limits, for one request."""
    httputil.parse_body_arguments(request.headers.get("Content-Type", ""), request.body,
                                  request.body_arguments, request.files, request.headers,
                                  config=ROUTE_BODY_CONFIG)
    for name, values in request.body_arguments.items():
        request.arguments.setdefault(name, []).extend(values)


class Refused(web.RequestHandler):
    """Answers ``status`` with a short text, whatever the method."""

    def initialize(self, status: int, text: str, headers: dict | None = None) -> None:
        self.refusal = status, text, headers or {}

    def prepare(self) -> None:
        status, text, headers = self.refusal
        self.set_status(status)
        for name, value in headers.items():
            self.set_header(name, value)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(text + "\n")

    def check_xsrf_cookie(self) -> None:
        pass


def handles_origin_itself(handler_class) -> bool:
    """The handler overrides ``check_origin`` (Tornado's hook): Origin is its business."""
    own = getattr(handler_class, "check_origin", None)
    return own is not None and own is not websocket.WebSocketHandler.check_origin


class ProjectHandlers(web.Application):
    """The project's Tornado routes, with what Django gives its own views for free.

    Before any handler runs: a Host not in ``ALLOWED_HOSTS`` gets 400 (no DNS rebinding);
    an ``Origin`` of another site gets 403 unless the handler defines ``check_origin``;
    beyond ``--max-websockets`` open WebSockets a new upgrade gets 503. WebSockets are
    pinged and limited in message size by the server options. The request task holds each
    route's request body to ``body_limit()`` (and to --min-body-rate, --body-timeout); a form
    may have up to 1000 parts.
    """

    def __init__(self, routes: list, options: ServerOptions, allowed_hosts: list) -> None:
        super().__init__(
            routes,
            websocket_ping_interval=options.websocket_ping_interval,
            websocket_ping_timeout=options.websocket_ping_timeout,
            websocket_max_message_size=options.websocket_max_message_size,
        )
        self.allowed_hosts = allowed_hosts
        self.max_websockets = options.max_websockets
        self.proxies = Proxies(options.trusted_proxies)
        self.websockets: set = set()  # streams of WebSockets, open or being opened
        self.default_body_limit = min(HANDLER_MAX_BODY, options.max_body_size)
        self.body_limits = [(re.compile(f"(?:{route[0]})$"), body_limit(route[1], options.max_body_size))
                            for route in routes]

    def body_limit(self, path: str) -> int:
        """The largest body the handler of ``path`` may receive (first matching route)."""
        for pattern, limit in self.body_limits:
            if pattern.match(path):
                return limit
        return self.default_body_limit


    def host(self, request) -> str:
        """The Host the client asked for; a trusted proxy's X-Forwarded-Host first."""
        if self.proxies.trusts(request.remote_ip):
            forwarded = last_value(request.headers.get("X-Forwarded-Host"))
            if forwarded:
                return forwarded
        return request.host

    def find_handler(self, request, **kwargs):
        from django.http.request import split_domain_port, validate_host

        delegate = super().find_handler(request, **kwargs)
        request._parse_body = lambda: _parse_body(request)  # this request only: not global
        host = self.host(request)
        domain, _ = split_domain_port(host)
        if not domain or not validate_host(domain, self.allowed_hosts):
            return self.get_handler_delegate(request, Refused, {
                "status": 400, "text": "Bad Request: this Host is not in ALLOWED_HOSTS."})
        handler_class = getattr(delegate, "handler_class", None)
        origin = request.headers.get("Origin")
        if (origin is not None and urlsplit(origin).netloc.lower() != host.lower()
                and not handles_origin_itself(handler_class)):
            return self.get_handler_delegate(request, Refused, {
                "status": 403, "text": "Forbidden: cross-origin request."})
        if (isinstance(handler_class, type) and issubclass(handler_class, websocket.WebSocketHandler)
                and request.headers.get("Upgrade", "").lower() == "websocket"):
            live = {stream for stream in self.websockets if not stream.closed()}
            if len(live) >= self.max_websockets:
                self.websockets = live
                return self.get_handler_delegate(request, Refused, {
                    "status": 503, "text": "Too many open WebSockets; please retry shortly.",
                    "headers": {"Retry-After": "5"}})
            live.add(request.connection.stream)
            self.websockets = live
        return delegate
