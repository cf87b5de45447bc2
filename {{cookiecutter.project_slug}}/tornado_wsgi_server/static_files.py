"""Static files answered on the event loop: WhiteNoise's own answer, with no thread hop.

Handing a request to a pool thread and back costs about as much CPU as WhiteNoise takes to
answer it: the GIL passes between threads on different cores, each finding the other's data
cold in its cache. A request that WhiteNoise answers from its table of files, behind nothing
but Django's SecurityMiddleware, cannot wait on a database or the network, so the loop runs
the same Django application for it, and the answer is the same, header for header: a whole
file, sent at once or, past 256 KB, block by block as the client reads, or no body (HEAD,
304). A request with a Range header goes to a thread: WhiteNoise answers it with a slice of
the file that is streamed, and a stream waits on its client, which only a thread may do.
So do a path WhiteNoise does not know, any other middleware before WhiteNoise (it might
query the database), a WSGI application that is not Django's handler itself or whose
handler a monitoring tool has patched, receivers of Django's request_started or
request_finished signals other than Django's own (one may use the database, and an async
one cannot run on a thread with a running event loop), and WhiteNoise looking files up on
disk per request (autorefresh, the default with DEBUG on).

The loop runs that same code without the error handling Django wraps around each
middleware: an exception (a file deleted since start-up, a denied read) or an answer of
400 or more sends the request to a thread, which runs Django's own handling of it (500
page, got_request_exception receivers, the error mail), so none of that runs on the loop.
"""

from __future__ import annotations

import copy
import os

from .logs import log

# Middleware that may run on the loop before WhiteNoise: it decides headers and redirects
# from the request alone.
LOOP_SAFE_MIDDLEWARE = frozenset({"django.middleware.security.SecurityMiddleware"})


class NotForTheLoop(Exception):
    """WhiteNoise did not answer this request with a file: a thread answers it instead."""


class LoopStatic:
    """What the loop needs to know which requests WhiteNoise answers: its table of files
    (URL path -> file) and its URL prefix, and ``handler``, the WSGI application the loop
    calls for them. Read-only once made."""

    def __init__(self, files: dict, prefix: str, handler=None) -> None:
        from django.core.handlers.wsgi import get_path_info

        self.files = files
        self.prefix = prefix
        self.handler = handler
        self._path_info = get_path_info  # Django's, so the lookup is the one WhiteNoise makes

    def may_answer(self, target: str) -> bool:
        """A cheap first look at the request target, before any environ is built."""
        return target.startswith(self.prefix) or target.partition("?")[0] in self.files

    def answers(self, environ: dict) -> bool:
        """WhiteNoise answers this request itself: the path Django's request will have is
        in its table (the lookup WhiteNoiseMiddleware makes)."""
        return (self._path_info(environ) or "/") in self.files


def loop_static(application) -> LoopStatic | None:
    """A LoopStatic for ``application`` if the loop may answer its static files, else None."""
    try:
        from django.core.handlers.wsgi import WSGIHandler
        from whitenoise.middleware import WhiteNoiseMiddleware
    except ImportError:
        return None
    if type(application) is not WSGIHandler:
        return None  # wrapped or replaced: what runs around Django is not known
    before, instances = [], []
    # Django wraps each middleware in a function (convert_exception_to_response) whose
    # __wrapped__ is the middleware; each middleware holds the next in get_response.
    step = getattr(application, "_middleware_chain", None)
    while step is not None:
        middleware = getattr(step, "__wrapped__", None)
        if middleware is None:
            return None  # the view itself: no WhiteNoise in the chain
        if isinstance(middleware, WhiteNoiseMiddleware):
            break
        cls = type(middleware)
        before.append(f"{cls.__module__}.{cls.__qualname__}")
        instances.append(middleware)
        step = getattr(middleware, "get_response", None)
    else:
        return None
    kind = type(middleware)
    if kind.__call__ is not WhiteNoiseMiddleware.__call__ or kind.serve is not WhiteNoiseMiddleware.serve:
        return None  # a subclass that answers differently
    if middleware.autorefresh:
        return None
    unsafe = [name for name in before if name not in LOOP_SAFE_MIDDLEWARE]
    reason = (f"{', '.join(unsafe)} runs before WhiteNoise in MIDDLEWARE, and only the event "
              f"loop's own safe list may" if unsafe else _foreign_code())
    if reason:
        log.info("Static files are served from the worker threads: %s.", reason)
        return None
    return LoopStatic(middleware.files, middleware.static_prefix,
                      _loop_handler(application, instances, middleware))


def _loop_handler(application, before: list, whitenoise):
    """``application`` with the same middleware before WhiteNoise and WhiteNoise's own
    answer, but none of the error handling Django wraps around each middleware: an
    exception, or a status of 400 or more (which Django would log), reaches the caller."""
    files, serve = whitenoise.files, whitenoise.serve

    def answer(request):
        static_file = files.get(request.path_info)
        if static_file is None:
            raise NotForTheLoop(request.path_info)
        response = serve(static_file, request)
        if response.status_code >= 400:
            response.close()
            raise NotForTheLoop(response.status_code)
        return response

    chain = answer
    for middleware in reversed(before):
        middleware = copy.copy(middleware)
        middleware.get_response = chain
        chain = middleware
    handler = copy.copy(application)
    handler._middleware_chain = chain
    return handler


def _foreign_code() -> str:
    """Why code other than Django's own would run around WhiteNoise; empty if none would."""
    import django
    from django.core import signals
    from django.core.handlers.base import BaseHandler
    from django.core.handlers.wsgi import WSGIHandler

    home = os.path.dirname(django.__file__) + os.sep
    for function in (WSGIHandler.__call__, BaseHandler.get_response):
        code = getattr(function, "__code__", None)
        if code is None or not code.co_filename.startswith(home):
            return f"Django's request handler is patched ({function.__qualname__}; a monitoring tool?)"
    for signal, name in ((signals.request_started, "request_started"),
                         (signals.request_finished, "request_finished")):
        try:
            sync, asynchronous = signal._live_receivers(WSGIHandler)
        except Exception:  # Django changed its internals: assume the worst
            return f"the receivers of the {name} signal cannot be listed"
        foreign = [receiver for receiver in sync if not _djangos(receiver)] + list(asynchronous)
        if foreign:
            return f"the {name} signal has receivers of the project's ({foreign[0]!r})"
    return ""


def _djangos(receiver) -> bool:
    return (getattr(receiver, "__module__", None) or "").startswith("django.")
