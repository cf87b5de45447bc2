"""The WSGI container: Tornado's connection delegate that runs the application on threads.

It owns the request queue and its threads, the queue's capacity, the idle keep-alive connections and what is
built per request on a worker thread (environ, response head); each request is a RequestTask.
"""

from __future__ import annotations

import collections
import email.utils
import logging
import re
import sys
import time
from collections.abc import Callable
from io import BytesIO
from urllib.parse import unquote_to_bytes

from tornado import httputil
from tornado.ioloop import IOLoop, PeriodicCallback

from .http1 import FormattedHead
from .logs import log
from .metrics import NoCounting
from .options import ServerOptions
from .proxies import Proxies, UntrustedSenders, is_proxy_header, last_value, split_host
from .request_queue import RequestQueue
from .static_files import loop_static
from .task import RequestTask
from .watchdog import Watchdog
from .windows_auth import GROUPS_KEY, REPLY_KEY, WindowsSignOn, normalise_user, with_reply_header
from .wsgi import BAD_VALUE_CHARS, HOP_BY_HOP, NO_BODY_STATUS, TOKEN, BadRequest, BadResponse, FileWrapper

_HOP_BY_HOP = frozenset("-".join(word.capitalize() for word in name.split("-")) for name in HOP_BY_HOP)
_NORMAL_NAMES: dict = {}  # response header name -> as HTTPHeaders writes it; valid names only


def _normal_name(name: str) -> str | None:
    """``content-type`` -> ``Content-Type``, remembered; None for a name that is no token."""
    normal = _NORMAL_NAMES.get(name)
    if normal is None:
        if not TOKEN.fullmatch(name):
            return None
        normal = "-".join(word.capitalize() for word in name.split("-"))
        if len(_NORMAL_NAMES) < 1000:  # names come from the application: a few dozen
            _NORMAL_NAMES[name] = normal
    return normal


# Absolute-form request target: scheme (any case), authority, then path and query.
_ABSOLUTE_FORM = re.compile(r"(?i)https?://([^/?#]*)(.*)", re.S)


# At the connection limit, a response whose client has taken none of it for this long may be
# closed to make room (after idle keep-alive and the slowest upload): a slow link still reads
# a block in far less, a client that stopped reading frees its place long before --write-timeout.
STALLED_READER_EVICT = 5.0
# note(): addresses remembered (oldest forgotten first), and lines per minute in all.
NOTED_MAX = 10000
NOTES_PER_MINUTE = 30


class ThreadedWSGIContainer(httputil.HTTPServerConnectionDelegate):
    """Runs a WSGI application on a thread pool behind Tornado's HTTP/1.1 server.

    Per request the application is called on a pool thread (for a static file WhiteNoise
    has, on the loop itself: static_files.py); a response that is a list
    or a Django ``HttpResponse`` is drained on that same thread and handed back to the
    event loop with a single wake-up. Iterators (``StreamingHttpResponse``) are sent as
    they are produced, and the worker waits while more than 1 MB is unsent, at most
    ``write_timeout`` seconds without progress. A large regular file via
    ``wsgi.file_wrapper`` (``FileResponse``, WhiteNoise) is sent by the loop itself, block by
    block as the client reads, so a client that does not read holds no thread. ``close()``
    on the response runs on the worker thread, where Django's database connections live.

    It also enforces what a server owes its clients: 503 with Retry-After when more than
    ``max_queue`` requests wait for a thread or one has waited too long (``RequestQueue``), 413 and 431 for oversized requests, 500
    (or a closed connection once headers are out) when the application raises, and
    ``X-Forwarded-*`` taken only from ``trusted_proxies``.

    Warnings: the application must be thread-safe (Django is). Request bodies are read
    completely (spooled to disk past 64 KB) before the application is called.
    """

    def __init__(self, application, options: ServerOptions, tornado_app=None,
                 tornado_paths: re.Pattern | None = None) -> None:
        self.application = application
        self.options = options
        self.queue = RequestQueue(options.threads, options.max_queue_wait, self._shed,
                                  returned=self._thread_returned)
        self.watchdog = Watchdog(self, options.request_timeout) if options.request_timeout else None
        self._shed_reported = 0
        self._next_shed_report = 0.0
        self._sweeper = PeriodicCallback(self._sweep, 100)
        self._sweeper.start()
        # WhiteNoise's files, answered on the loop; None: every request goes to a thread.
        self.static = loop_static(application) if options.static_from_loop else None
        # Windows sign-on (windows_auth.py): the handshake, and REMOTE_USER in the environ.
        self.signon = WindowsSignOn(self, options) if options.windows_auth != "off" else None
        if self.signon is not None:
            self.application = with_reply_header(application)
            if self.static is not None:  # a connection's first request may be a static file
                self.static.handler = with_reply_header(self.static.handler)
        header = options.windows_auth_header
        self.user_header = "HTTP_" + header.upper().replace("-", "_") if header else None
        self.tornado_app = tornado_app
        self.tornado_paths = tornado_paths
        self.loop = IOLoop.current()
        self.metrics = NoCounting()  # counts everything once --metrics is on (metrics_hub.start_reporter)
        self.in_flight = 0  # read completely, not yet answered; touched on the loop only
        self.sending = 0  # files the loop sends on its own, with no thread held
        self.capacity = options.threads + options.max_queue
        # Requests handed to a thread whose client has not yet taken all of the answer; a
        # stalled one may be evicted.
        self.responding: set = set()
        # Streams of connections waiting for a request (new or keep-alive) -> since when
        # (loop time), oldest first; closed after --idle-timeout, headers half-sent or not.
        self.idle: dict = {}
        # Streams still sending a request body -> their UploadWatch, oldest first.
        self.uploads: dict = {}
        # (kind, address) -> when last logged, oldest first; see note()
        self._noted: collections.OrderedDict = collections.OrderedDict()
        self._note_minute = (0.0, 0)  # (start, lines logged in it), for NOTES_PER_MINUTE
        self.shutting_down = False
        self.retiring = False  # replaced: answer what comes, then close (Connection: close)
        self.requests_started = 0  # for --max-requests
        self.trusted = options.trusted_proxies
        self.proxies = Proxies(options.trusted_proxies)
        self.untrusted_senders = UntrustedSenders()
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
            self.idle[server_conn.stream] = self.loop.time()
            self.requests_started += 1
        return RequestTask(self, server_conn, request_conn)

    def on_close(self, server_conn) -> None:
        self.idle.pop(server_conn.stream, None)
        self.uploads.pop(server_conn.stream, None)

    def evict_upload(self) -> bool:
        """Close the slowest upload (bytes per second so far) to make room; True if one was.

        Uploads younger than a second have no telling rate yet and go last, oldest first.
        """
        if not self.uploads:
            return False
        now = self.loop.time()
        victim = min(
            self.uploads.items(),
            key=lambda item: (True, item[1].started - now)
            if now - item[1].started < 1.0
            else (False, item[1].received / (now - item[1].started)),
        )
        stream, upload = victim
        del self.uploads[stream]
        self.note(upload.client, "evicted", "Connection limit reached; closing the slowest upload "
                  "(from %s, %d bytes in %.0fs)", upload.client, upload.received, now - upload.started)
        stream.close()
        return True

    def evict_stalled_reader(self) -> bool:
        """Close the response that has waited longest on a client that takes none of it
        (at least ``STALLED_READER_EVICT`` seconds) to make room; True if one was."""
        victim, longest = None, STALLED_READER_EVICT
        for task in list(self.responding):
            if task.server_conn.stream.closed():
                self.responding.discard(task)
                continue
            waited = task.watch.idle_for()
            if waited >= longest:
                victim, longest = task, waited
        if victim is None:
            return False
        self.responding.discard(victim)
        self.note(victim.client, "evicted-reader", "Connection limit reached; closing a response "
                  "its client has not read for %.0fs (from %s, %s)", longest, victim.client,
                  victim.start_line.path)
        victim.evict()
        return True

    def to_threads(self, request: RequestTask) -> None:
        """``request`` goes to Django on a pool thread; a signed-on connection's Windows groups
        go with the first of its requests that does (windows_auth.py)."""
        if request.signon is not None:
            self.signon.hand_over_groups(request)
        self.queue.put(request)

    def note(self, address: str, kind: str, message: str, *args, level: int = logging.INFO) -> None:
        """Log at most once a minute per kind of event and client address, so a hostile
        client cannot flood the log."""
        now = time.monotonic()
        key = (kind, address)
        noted = self._noted
        if now - noted.get(key, -60.0) < 60.0:
            return
        # Oldest first: forget what is a minute old, and the oldest beyond NOTED_MAX entries.
        while noted and (len(noted) >= NOTED_MAX or now - next(iter(noted.values())) >= 60.0):
            noted.popitem(last=False)
        noted[key] = now
        noted.move_to_end(key)
        started, lines = self._note_minute
        if now - started >= 60.0:
            started, lines = now, 0
        self._note_minute = (started, lines + 1)
        if lines < NOTES_PER_MINUTE:
            log.log(level, message, *args)
        elif lines == NOTES_PER_MINUTE:  # many addresses at once: one line says so
            log.warning("More than %d such events this minute; the next are not logged until "
                        "%.0fs from now", NOTES_PER_MINUTE, started + 60.0 - now)

    def close_idle(self, count: int | None = None) -> int:
        """Close up to ``count`` idle keep-alive connections (all by default), oldest first."""
        closed = 0
        while self.idle and (count is None or closed < count):
            stream = next(iter(self.idle))
            del self.idle[stream]
            stream.close()
            closed += 1
        return closed

    def close_expired_idle(self) -> None:
        """Close the connections that have waited --idle-timeout for a request (or for the
        rest of its headers). Oldest first: the first younger one ends the scan."""
        expired = self.loop.time() - self.options.idle_timeout
        idle = self.idle
        while idle:
            stream = next(iter(idle))
            if idle[stream] > expired:
                return
            del idle[stream]
            stream.close()

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

    def _thread_returned(self, task: RequestTask) -> None:
        self.call_on_loop(self.watchdog.returned, task)

    def _sweep(self) -> None:
        self.queue.sweep()
        self.close_expired_idle()
        if self.watchdog is not None:
            self.watchdog.check()
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
        if self.signon is not None:
            self.signon.close()

    def http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    # --- Building the WSGI environ (worker thread) ------------------------------------

    def environ(self, request: RequestTask) -> dict:
        """PEP 3333 environ for ``request``; raises BadRequest for what must get a 400."""
        start_line, headers, context = request.start_line, request.headers, request.request_conn.context
        target = start_line.path
        authority = None
        if not target.startswith("/"):
            absolute = _ABSOLUTE_FORM.fullmatch(target)  # sent to proxies; RFC 9112 3.2.2
            if absolute:
                authority, target = absolute.group(1), absolute.group(2)
                if not authority or "@" in authority:
                    raise BadRequest("absolute-form target without a plain host")
                if not target.startswith("/"):
                    target = "/" + target
        path, _, query = target.partition("?")
        peer, scheme = context.remote_ip, context.protocol
        trusted_peer = self.proxies.trusts(peer)
        environ = {
            "REQUEST_METHOD": start_line.method,
            "SCRIPT_NAME": "",
            # The target arrives as Latin-1 text: %-escapes become the same raw bytes.
            "PATH_INFO": unquote_to_bytes(path.encode("latin-1")).decode("latin-1") if "%" in path else path,
            "QUERY_STRING": query,
            "SERVER_PROTOCOL": start_line.version,
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.file_wrapper": FileWrapper,
            # The body is read whole before the application runs: reading to EOF is safe.
            "wsgi.input_terminated": True,
        }
        claimed_user = ""
        for name, value in headers.get_all():
            if "_" in name:  # would be confused with the dash form: a spoofing trick
                continue
            key = name.upper().replace("-", "_")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                if key == "CONTENT_TYPE" and key in environ:
                    # A proxy or firewall may have judged the body by the other one.
                    raise BadRequest("more than one Content-Type")
                environ[key] = value
                continue
            if not trusted_peer and is_proxy_header(key):
                self.untrusted_senders.note(peer, key)
                continue  # anyone could send these: Django must not believe them
            key = "HTTP_" + key
            if key == self.user_header:  # IIS's {LOGON_USER}: REMOTE_USER, if IIS sent it
                if trusted_peer:
                    claimed_user = value.strip()
                continue
            if key in environ:
                environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
            else:
                environ[key] = value
        # The server has taken the body out of its chunks.
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if authority is not None:
            environ["HTTP_HOST"] = authority
        remote_addr, forwarded_host = peer, ""
        if trusted_peer:
            remote_addr, scheme, forwarded_host = self._forwarded(peer, scheme, environ)
        if request.signon is not None:  # signed on by the server's own handshake
            environ["REMOTE_USER"] = request.signon.user
            if request.signon.reply:
                environ[REPLY_KEY] = request.signon.reply
            if request.signon.groups is not None:  # only on the connection's first request to Django
                environ[GROUPS_KEY] = request.signon.groups
            if environ.get("HTTP_AUTHORIZATION", "")[:4].lower() in ("nego", "ntlm"):
                del environ["HTTP_AUTHORIZATION"]  # the token is spent: Django has no use for it
        elif claimed_user:
            environ["REMOTE_USER"] = normalise_user(claimed_user, self.options.windows_auth_user_format)
        environ["REMOTE_ADDR"] = request.client = remote_addr
        environ["wsgi.url_scheme"] = scheme
        if forwarded_host:  # the host and port the client asked the proxy for
            environ["HTTP_HOST"] = forwarded_host
            name, port = split_host(forwarded_host)
            environ["SERVER_NAME"] = name
            environ["SERVER_PORT"] = port or ("443" if scheme == "https" else "80")
        else:  # CGI: the port the request reached, not whatever the Host header says
            environ["SERVER_NAME"] = split_host(environ.get("HTTP_HOST", ""))[0] or self.options.host
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

    def bad_request(self, reason: str, method: str) -> tuple:
        """The 400 answer (start line, head, body) for a request environ() refused."""
        body = f"Bad request: {reason}.\n".encode()
        head = httputil.HTTPHeaders({"Content-Type": "text/plain; charset=utf-8",
                                     "Content-Length": str(len(body)), "Date": self.http_date()})
        return httputil.ResponseStartLine("HTTP/1.1", 400, "Bad Request"), head, b"" if method == "HEAD" else body

    def _forwarded(self, peer: str, scheme: str, environ: dict) -> tuple[str, str, str]:
        """Client address, scheme and host, from the headers of a trusted proxy."""
        remote_addr = peer
        forwarded_for = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded_for:
            remote_addr = self.proxies.client(peer, forwarded_for)
        proto = last_value(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
        if proto in ("http", "https"):
            scheme = proto
        host = last_value(environ.get("HTTP_X_FORWARDED_HOST"))
        if any(ch.isspace() or ch in "/@\\" for ch in host):
            host = ""
        return remote_addr, scheme, host

    # --- Response headers (worker thread) ----------------------------------------------

    def response_head(self, status, headers, *, body_length: int | None, method: str):
        """(start line, HTTPHeaders, no_body) for a response that is streamed or sent as a file."""
        code, reason, fields, no_body = self.response_fields(status, headers, body_length=body_length)
        head = httputil.HTTPHeaders()
        # Filled directly (names are normalized as HTTPHeaders would): add() would parse
        # each name and value again. Combined values are made from these lists when asked for.
        lists = head._as_list
        for name, value in fields:
            if name in lists:
                lists[name].append(value)
            else:
                lists[name] = [value]
        return httputil.ResponseStartLine("HTTP/1.1", code, reason), head, no_body

    def formatted_head(self, status, headers, *, body_length: int, method: str):
        """(start line, FormattedHead, no_body) for a response whose whole body is known:
        the head's text is made here, on the worker, in one pass, and the loop only frames
        and writes it (ReadingConnection.write_headers)."""
        code, reason, fields, no_body = self.response_fields(status, headers, body_length=body_length)
        head = FormattedHead(fields, 0 if no_body or method == "HEAD" else body_length)
        return httputil.ResponseStartLine("HTTP/1.1", code, reason), head, no_body

    def response_fields(self, status, headers, *, body_length: int | None) -> tuple:
        """The application's status and headers, checked: (code, reason, [(name, value)],
        no_body), names normalized, hop-by-hop headers left out (the server frames the
        response), Content-Length made right, Date and a closing Connection added."""
        if not isinstance(status, str) or len(status) < 3 or not status[:3].isdigit() or (
            len(status) > 3 and status[3] != " "
        ):
            raise BadResponse(f"invalid status {status!r}")
        code, reason = int(status[:3]), status[4:].strip()
        if code < 100 or BAD_VALUE_CHARS.search(reason):
            raise BadResponse(f"invalid status {status!r}")
        if not isinstance(headers, list):
            raise BadResponse(f"headers must be a list of (name, value), not {type(headers).__name__}")
        fields = []
        has_length = has_date = False
        declared_length = None
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
            normal = _normal_name(name)
            if normal is None or not (value.isascii() and value.isprintable()) and BAD_VALUE_CHARS.search(value):
                raise BadResponse(f"invalid header {name!r}: {value!r}")
            if normal in _HOP_BY_HOP:
                continue  # the server decides keep-alive and framing
            if normal == "Content-Length":
                if not (value.isascii() and value.isdigit()):
                    raise BadResponse(f"invalid Content-Length {value!r}")
                if declared_length is not None:
                    if int(value) != declared_length:
                        raise BadResponse(f"two different Content-Length values: {declared_length}, {value}")
                    continue  # the same one twice: send it once
                declared_length = int(value)
                if no_body:
                    # 1xx and 204 may not carry one; a 304's may only repeat the 200's, and
                    # Django's is the 0 of its own empty body: none is always right.
                    continue
                if body_length is not None:
                    value = str(body_length)
                has_length = True
            elif normal == "Date":
                has_date = True
            fields.append((normal, value))
        if body_length is not None and not has_length and not no_body:
            fields.append(("Content-Length", str(body_length)))
        if not has_date:
            fields.append(("Date", self.http_date()))
        if self.shutting_down or self.retiring:
            fields.append(("Connection", "close"))
        return code, reason or "Unknown", fields, no_body
