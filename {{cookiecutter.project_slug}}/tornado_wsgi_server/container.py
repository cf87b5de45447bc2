"""The WSGI container: Tornado's connection delegate that runs the application on threads.

It owns the request queue and its threads, the queue's capacity, the idle keep-alive connections and what is
built per request on a worker thread (environ, response head); each request is a RequestTask.
"""

from __future__ import annotations

import collections
import email.utils
import ipaddress
import re
import sys
import time
from collections.abc import Callable
from io import BytesIO
from urllib.parse import unquote_to_bytes

from tornado import httputil
from tornado.ioloop import IOLoop, PeriodicCallback

from .logs import log
from .metrics import NO_COUNTING
from .options import ServerOptions
from .request_queue import RequestQueue
from .task import RequestTask
from .wsgi import BAD_VALUE_CHARS, HOP_BY_HOP, NO_BODY_STATUS, TOKEN, BadResponse, FileWrapper


class ThreadedWSGIContainer(httputil.HTTPServerConnectionDelegate):
    """Runs a WSGI application on a thread pool behind Tornado's HTTP/1.1 server.

    Per request the application is called on a pool thread; a response that is a list
    or a Django ``HttpResponse`` is drained on that same thread and handed back to the
    event loop with a single wake-up. Iterators (``StreamingHttpResponse``, files via
    ``wsgi.file_wrapper``) are sent as they are produced, and the worker waits while more
    than 1 MB is unsent, so a large download costs little memory. ``close()`` on the
    response runs on the worker thread, where Django's database connections live.

    It also enforces what a server owes its clients: 503 with Retry-After when more than
    ``max_queue`` requests wait for a thread or one has waited too long (``RequestQueue``), 413 and 431 for oversized requests, 500
    (or a closed connection once headers are out) when the application raises, and
    ``X-Forwarded-*`` taken only from ``trusted_proxies``.

    Warnings: the application must be thread-safe (Django is). Request bodies are read
    completely (spooled to disk past 1 MB) before the application is called.
    """

    def __init__(self, application, options: ServerOptions, tornado_app=None,
                 tornado_paths: re.Pattern | None = None) -> None:
        self.application = application
        self.options = options
        self.queue = RequestQueue(options.threads, options.max_queue_wait, self._shed)
        self._shed_reported = 0
        self._next_shed_report = 0.0
        self._sweeper = PeriodicCallback(self._sweep, 100)
        self._sweeper.start()
        self.tornado_app = tornado_app
        self.tornado_paths = tornado_paths
        self.loop = IOLoop.current()
        self.metrics = NO_COUNTING  # counts once --metrics is on (metrics_hub.start_reporter)
        self.in_flight = 0  # read completely, not yet answered; touched on the loop only
        self.capacity = options.threads + options.max_queue
        # Streams of connections waiting for a request (new or keep-alive), oldest first.
        self.idle: dict = {}
        self.shutting_down = False
        self.trusted = options.trusted_proxies
        self.multiprocess = options.workers > 1
        self._date = (0, "")
        self.server_port = str(options.port)
        self._from_workers: collections.deque = collections.deque()
        self._wakeup_pending = False

    # --- Tornado's side ---------------------------------------------------------------

    def start_request(self, server_conn, request_conn) -> httputil.HTTPMessageDelegate:
        if self.shutting_down:
            server_conn.stream.close()
        else:
            self.idle.pop(server_conn.stream, None)
            self.idle[server_conn.stream] = None
        return RequestTask(self, server_conn, request_conn)

    def on_close(self, server_conn) -> None:
        self.idle.pop(server_conn.stream, None)

    def close_idle(self, count: int | None = None) -> int:
        """Close up to ``count`` idle keep-alive connections (all by default), oldest first."""
        closed = 0
        while self.idle and (count is None or closed < count):
            stream = next(iter(self.idle))
            del self.idle[stream]
            stream.close()
            closed += 1
        return closed

    def call_on_loop(self, callback: Callable, *args) -> None:
        """Run ``callback(*args)`` on the event loop; called from worker threads.

        Under load many workers finish while the loop is still busy; they share one
        wake-up instead of each writing to the loop's self-pipe (a system call that also
        hands the GIL around). The flag is cleared before the queue is drained, so an
        entry added after the drain always schedules a new wake-up.
        """
        self._from_workers.append((callback, args))
        if not self._wakeup_pending:
            self._wakeup_pending = True
            self.loop.add_callback(self._run_from_workers)

    def _run_from_workers(self) -> None:
        self._wakeup_pending = False
        ready = self._from_workers
        while ready:
            callback, args = ready.popleft()
            try:
                callback(*args)
            except Exception:
                log.exception("Error in %s", getattr(callback, "__qualname__", callback))

    def _shed(self, task: RequestTask, reason: str) -> None:
        self.call_on_loop(task.shed, reason)

    def _sweep(self) -> None:
        self.queue.sweep()
        # One line per interval at most: under overload a line per request would flood.
        shed = self.queue.shed_counts["deadline"]
        now = time.monotonic()
        if shed != self._shed_reported and now >= self._next_shed_report:
            self._next_shed_report = now + 10
            log.warning(
                "Overloaded: %d request(s) so far got 503 after waiting too long for a thread "
                "(--max-queue-wait %gs, less while the queue does not drain); more --threads "
                "or --workers may help if this persists", shed, self.options.max_queue_wait)
            self._shed_reported = shed

    def stop_queue(self, wait: bool) -> None:
        """End the worker threads; requests still waiting are dropped unrun."""
        self._sweeper.stop()
        self.queue.shutdown(wait=wait, run_waiting=False)

    def http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    # --- Building the WSGI environ (worker thread) ------------------------------------

    def environ(self, request: RequestTask) -> dict:
        start_line, headers, context = request.start_line, request.headers, request.request_conn.context
        target = start_line.path
        if target.startswith(("http://", "https://")):  # absolute-form, sent to proxies
            target = "/" + target.split("/", 3)[3] if target.count("/") >= 3 else "/"
        path, _, query = target.partition("?")
        remote_addr, scheme = context.remote_ip, context.protocol
        environ = {
            "REQUEST_METHOD": start_line.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1") if "%" in path else path,
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": start_line.version,
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
        }
        for name, value in headers.get_all():
            if "_" in name:  # would be confused with the dash form: a spoofing trick
                continue
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                environ[key] = value
                continue
            key = "HTTP_" + key
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                environ[key] = value
        if self.trusted:
            remote_addr, scheme = self._forwarded(remote_addr, scheme, environ)
        environ["REMOTE_ADDR"] = request.client = remote_addr
        environ["wsgi.url_scheme"] = scheme
        host = environ.get("HTTP_HOST", "")
        name, sep, port = host.rpartition(":")
        if sep and port.isdigit():
            environ["SERVER_NAME"], environ["SERVER_PORT"] = name, port
        else:
            environ["SERVER_NAME"] = host or self.options.host
            environ["SERVER_PORT"] = self.server_port
        body = request.body
        if body is None:
            environ["wsgi.input"] = BytesIO()
            if "CONTENT_LENGTH" in environ:
                environ["CONTENT_LENGTH"] = "0"
        else:
            environ["CONTENT_LENGTH"] = str(request.body_size)
            body.seek(0)
            environ["wsgi.input"] = body
        return environ

    def _is_trusted(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.trusted)

    def _forwarded(self, remote_addr: str, scheme: str, environ: dict) -> tuple[str, str]:
        """Client address and scheme, believing X-Forwarded-* only from trusted proxies."""
        if not self._is_trusted(remote_addr):
            return remote_addr, scheme
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded_for:
            # Walk back through the chain of proxies; the first untrusted hop is the client.
            for hop in reversed([part.strip() for part in forwarded_for.split(",")]):
                if not self._is_trusted(hop):
                    try:
                        ipaddress.ip_address(hop)
                    except ValueError:
                        break
                    remote_addr = hop
                    break
            else:
                remote_addr = forwarded_for.split(",")[0].strip() or remote_addr
        proto = environ.get("HTTP_X_FORWARDED_PROTO", "").split(",")[-1].strip().lower()
        if proto in ("http", "https"):
            scheme = proto
        return remote_addr, scheme

    # --- Response headers (worker thread) ----------------------------------------------

    def response_head(self, status, headers, *, body_length: int | None, method: str):
        if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit() or (
            len(status) > 3 and status[3] != " "
        ):
            raise BadResponse(f"invalid status {status!r}")
        code, reason = int(status[:3]), status[4:].strip()
        if code < 100 or BAD_VALUE_CHARS.search(reason):
            raise BadResponse(f"invalid status {status!r}")
        if not isinstance(headers, list):
            raise BadResponse(f"headers must be a list of (name, value), not {type(headers).__name__}")
        head = httputil.HTTPHeaders()
        has_length = False
        no_body = code in NO_BODY_STATUS or code < 200
        for item in headers:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise BadResponse(f"invalid header {item!r}") from None
            if type(name) is not str or type(value) is not str:
                raise BadResponse(f"header {name!r} must be a str name and str value")
            # Django's Set-Cookie values start with a space; Tornado rejects that.
            value = value.strip()
            if not TOKEN.fullmatch(name) or BAD_VALUE_CHARS.search(value):
                raise BadResponse(f"invalid header {name!r}: {value!r}")
            lower = name.lower()
            if lower in HOP_BY_HOP:
                continue  # the server decides keep-alive and framing
            if lower == "content-length":
                if not value.isdigit():
                    raise BadResponse(f"invalid Content-Length {value!r}")
                if code < 200 or code == 204:
                    continue  # these may not carry one at all
                if body_length is not None and code != 304:
                    value = str(body_length)  # a 304 keeps the length of what it stands for
                has_length = True
            if name in head:
                head.add(name, value)
            else:
                head[name] = value
        if body_length is not None and not has_length and not no_body:
            head["Content-Length"] = str(body_length)
        if "Date" not in head:
            head["Date"] = self.http_date()
        if self.shutting_down:
            head["Connection"] = "close"
        return httputil.ResponseStartLine("HTTP/1.1", code, reason or "Unknown"), head, no_body

