#!/usr/bin/env python
"""Serve {{ cookiecutter.project_name }} with Tornado: Django on a thread pool, ready for production.

    python tornado_server.py                 # http://127.0.0.1:{{ cookiecutter.port }}/
    python tornado_server.py --help          # every option, with its environment variable

Every option is a command-line flag and an environment variable (``SERVER_PORT``...),
also read from ``.env``; a flag wins over the environment, the environment over ``.env``.

The file reads top-down: options -> WSGI container -> Tornado routes (add your own
handlers there) -> server -> worker processes -> main.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import email.utils
import ipaddress
import itertools
import logging
import multiprocessing
import os
import re
import signal
import ssl
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any
from urllib.parse import unquote_to_bytes

from tornado import httputil, iostream, netutil, web, websocket
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback

BASE_DIR = Path(__file__).resolve().parent
PROJECT_NAME = {{ cookiecutter.project_name | jsonify }}
DEFAULT_SETTINGS = "{{ cookiecutter.project_slug }}.settings"
IS_WINDOWS = sys.platform == "win32"
# Windows' select() takes at most 512 sockets per call: stay under it per process.
WINDOWS_MAX_CONNECTIONS = 500

log = logging.getLogger("tornado_server")
access_log = logging.getLogger("tornado_server.access")


# ======================================================================================
# Options: each defined once, read from the command line and the environment alike.
# ======================================================================================


class OptionError(ValueError):
    """A bad option value; the message says what is allowed."""


def _int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            upper = f" to {high}" if high is not None else " or more"
            raise OptionError(f"must be a whole number from {low}{upper}")
        return value

    return parse


def _seconds(raw: str) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise OptionError("must be a number of seconds greater than 0")
    return value


_SIZE_UNITS = {"": 1, "B": 1, "K": 1024, "KB": 1024, "M": 1024**2, "MB": 1024**2, "G": 1024**3, "GB": 1024**3}


def _size(raw: str) -> int:
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", raw)
    unit = match.group(2).upper() if match else None
    if not match or unit not in _SIZE_UNITS or int(match.group(1)) == 0:
        raise OptionError("must be a size greater than 0 such as 65536, 64K, 10M or 1G")
    return int(match.group(1)) * _SIZE_UNITS[unit]


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise OptionError("must be true or false (also 1/0, yes/no, on/off)")


def _host(raw: str) -> str:
    value = raw.strip()
    if not value or any(ch.isspace() for ch in value) or "/" in value:
        raise OptionError("must be an IP address or host name, e.g. 127.0.0.1 or 0.0.0.0")
    return value.strip("[]")


def _module(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", value):
        raise OptionError("must be a dotted Python module path, e.g. mysite.settings")
    return value


def _networks(raw: str) -> tuple:
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise OptionError(
                f"{item!r} is not an IP address or network; give a comma-separated "
                "list such as 127.0.0.1,10.0.0.0/8"
            ) from None
    return tuple(networks)


def _existing_file(raw: str) -> str:
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        raise OptionError(f"file {str(path)!r} does not exist")
    return str(path)


def _path(raw: str) -> str:
    return str(Path(raw.strip()).expanduser()) if raw.strip() else ""


@dataclass(frozen=True)
class Option:
    name: str
    parse: Callable[[str], Any]
    default: str | None
    help: str
    env: str = ""
    metavar: str | None = None
    flag: bool = False  # a true/false switch: --name / --no-name

    @property
    def env_name(self) -> str:
        return self.env or "SERVER_" + self.name.upper()

    @property
    def cli_name(self) -> str:
        return "--" + self.name.replace("_", "-")


OPTIONS = (
    Option("host", _host, "127.0.0.1", "Address to listen on; 0.0.0.0 serves the whole network."),
    Option("port", _int_range(1, 65535), "{{ cookiecutter.port }}", "TCP port to listen on."),
    Option("threads", _int_range(1, 1024), "{{ cookiecutter.threads }}",
           "Threads per process running Django views; a blocked view holds one thread."),
    Option("workers", _int_range(1, 64), "1",
           "Processes sharing the port (multiprocessing spawn, works on Windows); "
           "one per CPU core is a good start."),
    Option("settings", _module, DEFAULT_SETTINGS, "Django settings module.",
           env="DJANGO_SETTINGS_MODULE", metavar="MODULE"),
    Option("max_queue", _int_range(0), "100",
           "Requests that may wait for a free thread; beyond that new ones get "
           "503 with Retry-After at once instead of queueing without bound."),
    Option("max_connections", _int_range(1),
           str(WINDOWS_MAX_CONNECTIONS) if IS_WINDOWS else "1000",
           "Open connections per process; at the limit the longest-idle keep-alive "
           f"connection is closed to make room (at most {WINDOWS_MAX_CONNECTIONS} on Windows)."),
    Option("max_body_size", _size, "100M",
           "Largest request body (413 beyond it); bodies over 1 MB wait in a temporary file.",
           metavar="SIZE"),
    Option("max_header_size", _size, "64K",
           "Largest request line plus headers: 431 beyond it; past twice this the connection "
           "is closed unanswered.", metavar="SIZE"),
    Option("idle_timeout", _seconds, "60",
           "Seconds a connection may sit idle, or take to send its headers, before it is closed.",
           metavar="SECONDS"),
    Option("body_timeout", _seconds, "300",
           "Seconds a client may take to send a request body.", metavar="SECONDS"),
    Option("drain_timeout", _seconds, "30",
           "On shutdown, seconds in-flight requests get to finish.", metavar="SECONDS"),
    Option("trusted_proxies", _networks, "",
           "Comma-separated proxy addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) whose "
           "X-Forwarded-For and X-Forwarded-Proto are believed. Empty: believe nobody.",
           metavar="LIST"),
    Option("certfile", _existing_file, None,
           "TLS certificate chain (PEM): serve HTTPS directly.", metavar="PATH"),
    Option("keyfile", _existing_file, None,
           "TLS private key (PEM), if it is not inside --certfile.", metavar="PATH"),
    Option("access_log", _bool, "true", "Log one line per request.", flag=True),
    Option("log_file", _path, "",
           "Also write the log to this file, rotated by size (safe with several processes "
           "and on Windows).", metavar="PATH"),
    Option("log_max_bytes", _size, "10M", "Rotate the log file at this size.", metavar="SIZE"),
    Option("log_backups", _int_range(0, 1000), "5", "Rotated log files to keep."),
)


@dataclass
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = int("{{ cookiecutter.port }}")
    threads: int = int("{{ cookiecutter.threads }}")
    workers: int = 1
    settings: str = DEFAULT_SETTINGS
    max_queue: int = 100
    max_connections: int = WINDOWS_MAX_CONNECTIONS if IS_WINDOWS else 1000
    max_body_size: int = 100 * 1024**2
    max_header_size: int = 64 * 1024
    idle_timeout: float = 60.0
    body_timeout: float = 300.0
    drain_timeout: float = 30.0
    trusted_proxies: tuple = field(default_factory=tuple)
    certfile: str | None = None
    keyfile: str | None = None
    access_log: bool = True
    log_file: str = ""
    log_max_bytes: int = 10 * 1024**2
    log_backups: int = 5

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"


def build_arg_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tornado_server.py",
        description="Serve {{ cookiecutter.project_name }} (Django) with Tornado. Each option "
        "can also be set by the environment variable shown, or in .env.",
    )
    for option in OPTIONS:
        default = "(none)" if option.default in (None, "") else option.default
        help_text = f"{option.help} [env {option.env_name}; default {default}]"
        if option.flag:
            parser.add_argument(option.cli_name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(option.cli_name, metavar=option.metavar or option.name.upper(),
                                default=None, help=help_text)
    return parser


def load_options(argv: list[str] | None = None, environ: dict | None = None) -> ServerOptions:
    """Command line, then environment (with .env), then defaults. Exits 2 on a bad value."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    values = {}
    for option in OPTIONS:
        cli_value = getattr(args, option.name)
        if cli_value is not None:
            raw, source = (str(cli_value).lower() if option.flag else cli_value), option.cli_name
        elif environ.get(option.env_name, "").strip():
            raw, source = environ[option.env_name], option.env_name
        else:
            raw, source = option.default, "default"
        if raw is None:
            continue
        try:
            values[option.name] = option.parse(raw)
        except OptionError as exc:
            parser.error(f"{source}={raw!r}: {exc}")
    options = ServerOptions(**values)
    if options.keyfile and not options.certfile:
        parser.error("--keyfile needs --certfile (SERVER_CERTFILE) as well")
    if IS_WINDOWS and sys.version_info < (3, 13) and options.workers > 31:
        # The supervisor waits on two handles per worker; Windows' wait takes 63 at most
        # before Python 3.13.
        parser.error(f"--workers={options.workers}: at most 31 on Windows with Python before 3.13")
    if IS_WINDOWS and options.max_connections > WINDOWS_MAX_CONNECTIONS:
        parser.error(
            f"--max-connections={options.max_connections}: Windows serves at most "
            f"{WINDOWS_MAX_CONNECTIONS} connections per process; add --workers instead"
        )
    return options


def read_dotenv(path: Path = BASE_DIR / ".env") -> None:
    """Load .env into os.environ without overriding real environment variables."""
    if path.is_file():
        import environ as django_environ

        django_environ.Env.read_env(path)


# ======================================================================================
# The WSGI container: Django on a thread pool, one hop there and one wake-up back.
# ======================================================================================

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Control characters, and anything HTTP/1.1 cannot carry (headers are Latin-1).
_BAD_VALUE_CHARS = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]|[^\x00-\xff]")
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "upgrade"})
_NO_BODY_STATUS = frozenset({204, 304})
_SPOOL_SIZE = 1024 * 1024  # request bodies beyond this wait on disk, not in memory
_STREAM_HIGH_WATER = 1024 * 1024  # a streaming worker waits while this much is unsent
_FILE_BLOCK = 256 * 1024
# A refused body is still read (and dropped) up to this much past --max-body-size and
# for this long: closing with unread data sends a reset, and a client still uploading
# (on Windows above all) then loses the 413/503 before it can read it.
_DRAIN_EXTRA = 16 * 1024 * 1024
_DRAIN_SECONDS = 10.0


class FileWrapper:
    """``wsgi.file_wrapper``: reads a file in large blocks on the worker thread."""

    def __init__(self, filelike, block_size: int = _FILE_BLOCK) -> None:
        self.filelike = filelike
        self.block_size = max(block_size, _FILE_BLOCK)

    def __iter__(self):
        read, size = self.filelike.read, self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


class _BadResponse(Exception):
    """The application broke the WSGI contract (status, headers or body)."""


class ThreadedWSGIContainer(httputil.HTTPServerConnectionDelegate):
    """Runs a WSGI application on a thread pool behind Tornado's HTTP/1.1 server.

    Per request the application is called on a pool thread; a response that is a list
    or a Django ``HttpResponse`` is drained on that same thread and handed back to the
    event loop with a single wake-up. Iterators (``StreamingHttpResponse``, files via
    ``wsgi.file_wrapper``) are sent as they are produced, and the worker waits while more
    than 1 MB is unsent, so a large download costs little memory. ``close()`` on the
    response runs on the worker thread, where Django's database connections live.

    It also enforces what a server owes its clients: 503 with Retry-After when more than
    ``max_queue`` requests wait for a thread, 413 and 431 for oversized requests, 500
    (or a closed connection once headers are out) when the application raises, and
    ``X-Forwarded-*`` taken only from ``trusted_proxies``.

    Warnings: the application must be thread-safe (Django is). Request bodies are read
    completely (spooled to disk past 1 MB) before the application is called.
    """

    def __init__(self, application, options: ServerOptions, tornado_app=None,
                 tornado_paths: re.Pattern | None = None) -> None:
        self.application = application
        self.options = options
        self.executor = concurrent.futures.ThreadPoolExecutor(
            options.threads, thread_name_prefix="wsgi"
        )
        self.tornado_app = tornado_app
        self.tornado_paths = tornado_paths
        self.loop = IOLoop.current()
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
        return _Request(self, server_conn, request_conn)

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

    def http_date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, email.utils.formatdate(now, usegmt=True))
        return self._date[1]

    # --- Building the WSGI environ (worker thread) ------------------------------------

    def environ(self, request: _Request) -> dict:
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
            raise _BadResponse(f"invalid status {status!r}")
        code, reason = int(status[:3]), status[4:].strip()
        if code < 100 or _BAD_VALUE_CHARS.search(reason):
            raise _BadResponse(f"invalid status {status!r}")
        if not isinstance(headers, list):
            raise _BadResponse(f"headers must be a list of (name, value), not {type(headers).__name__}")
        head = httputil.HTTPHeaders()
        has_length = False
        no_body = code in _NO_BODY_STATUS or code < 200
        for item in headers:
            try:
                name, value = item
            except (TypeError, ValueError):
                raise _BadResponse(f"invalid header {item!r}") from None
            if type(name) is not str or type(value) is not str:
                raise _BadResponse(f"header {name!r} must be a str name and str value")
            # Django's Set-Cookie values start with a space; Tornado rejects that.
            value = value.strip()
            if not _TOKEN.fullmatch(name) or _BAD_VALUE_CHARS.search(value):
                raise _BadResponse(f"invalid header {name!r}: {value!r}")
            lower = name.lower()
            if lower in _HOP_BY_HOP:
                continue  # the server decides keep-alive and framing
            if lower == "content-length":
                if not value.isdigit():
                    raise _BadResponse(f"invalid Content-Length {value!r}")
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


class _Request(httputil.HTTPMessageDelegate):
    """One request on one connection: read on the loop, answered from a pool thread."""

    def __init__(self, container: ThreadedWSGIContainer, server_conn, request_conn) -> None:
        self.container = container
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.body = None
        self.body_size = 0
        self.rejected = False
        self.closed = False
        self.tornado_delegate = None
        self.headers_sent = False
        self.client = request_conn.context.remote_ip
        self.status = 0
        self.sent_bytes = 0
        self.close_when_done = False

    # --- Event loop: reading the request -----------------------------------------------

    def headers_received(self, start_line, headers):
        container = self.container
        container.idle.pop(self.server_conn.stream, None)
        self.started = time.perf_counter()
        self.start_line, self.headers = start_line, headers
        if container.tornado_paths is not None and container.tornado_paths.match(
            start_line.path.partition("?")[0]
        ):
            self.tornado_delegate = container.tornado_app.start_request(
                self.server_conn, self.request_conn
            )
            return self.tornado_delegate.headers_received(start_line, headers)
        options = container.options
        if container.in_flight >= container.capacity or container.shutting_down:
            return self.reject(503, "Service Unavailable",
                               "The server is busy; please retry shortly.\n", {"Retry-After": "5"})
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > options.max_body_size:
            return self.reject(413, "Content Too Large",
                               f"Request body larger than {options.max_body_size} bytes.\n")
        head_size = len(start_line.path) + sum(len(k) + len(v) + 4 for k, v in headers.get_all())
        if head_size > options.max_header_size:
            return self.reject(431, "Request Header Fields Too Large",
                               f"Request headers larger than {options.max_header_size} bytes.\n")
        return None

    def data_received(self, chunk: bytes):
        if self.tornado_delegate is not None:
            return self.tornado_delegate.data_received(chunk)
        if self.rejected:
            return None
        self.body_size += len(chunk)
        if self.body_size > self.container.options.max_body_size:
            if self.body is not None:
                self.body.close()
                self.body = None
            return self.reject(413, "Content Too Large", "Request body too large.\n")
        if self.body is None:
            self.body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_SIZE)
        self.body.write(chunk)
        return None

    def finish(self) -> None:
        if self.tornado_delegate is not None:
            self.tornado_delegate.finish()
            return
        if self.rejected:
            # A refused body has been read to its end: close once the answer is out.
            stream = self.server_conn.stream
            self.request_conn.finish()
            if not stream.closed():
                stream.write(b"").add_done_callback(lambda _: stream.close())
            return
        self.container.in_flight += 1
        self.unsent = collections.deque()
        self.unsent_bytes = 0
        self.container.executor.submit(self.run)

    def on_connection_close(self) -> None:
        self.closed = True
        if self.tornado_delegate is not None:
            self.tornado_delegate.on_connection_close()

    def reject(self, code: int, reason: str, text: str, extra: dict | None = None) -> None:
        """Answer at once from the loop (nothing reaches Django) and close the connection."""
        self.rejected = True
        body = text.encode()
        head = httputil.HTTPHeaders({
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Date": self.container.http_date(),
            "Connection": "close",
            **(extra or {}),
        })
        if self.start_line.method == "HEAD":
            body = b""
        self.request_conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), head, body)
        self.log_access(code, len(body))
        if not self.drain_body():
            self.request_conn.finish()
        return None

    def drain_body(self) -> bool:
        """Let the rest of a refused body be read and dropped; finish() then closes."""
        headers = self.headers
        if self.body_size == 0 and headers.get("Expect", "").lower() == "100-continue":
            return False  # the client waits for a go-ahead and sends nothing now
        limit = self.container.options.max_body_size + _DRAIN_EXTRA
        length = headers.get("Content-Length")
        if length is None:
            if "Transfer-Encoding" not in headers:
                return False  # no body
        elif not length.isdigit() or int(length) == 0 or int(length) > limit:
            return False
        self.request_conn.set_max_body_size(limit)
        self.request_conn.set_body_timeout(min(self.container.options.body_timeout, _DRAIN_SECONDS))
        return True

    # --- Worker thread: running the application ----------------------------------------

    def run(self) -> None:
        container = self.container
        response: list = []  # [status, headers] once start_response has been called
        written: list[bytes] = []  # data from the legacy write() callable

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if self.headers_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif response:
                raise AssertionError("start_response was already called")
            response[:] = [status, headers]
            return written.append

        method = self.start_line.method
        result = None
        try:
            result = container.application(container.environ(self), start_response)
            if isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False:
                body = b"".join(written) + b"".join(result)
                if not response:
                    raise _BadResponse("the application did not call start_response")
                start_line, head, no_body = container.response_head(
                    *response, body_length=len(body), method=method
                )
                if no_body or method == "HEAD":
                    body = b""
                self._close_result(result)
                result = None
                container.call_on_loop(self.send_whole, start_line, head, body)
            else:
                self.stream(result, response, written, method)
        except Exception as exc:
            self._close_result(result)
            if isinstance(exc, iostream.StreamClosedError) or self.closed:
                container.call_on_loop(self.abort, 499)
            elif self.headers_sent:
                log.error("Error while streaming %s %s; connection closed",
                          method, self.start_line.path, exc_info=True)
                container.call_on_loop(self.abort, self.status)
            else:
                if isinstance(exc, _BadResponse):
                    log.error("Bad response from the application for %s %s: %s",
                              method, self.start_line.path, exc)
                else:
                    log.error("Error handling %s %s", method, self.start_line.path, exc_info=True)
                container.call_on_loop(self.send_error)
        finally:
            if self.body is not None:
                self.body.close()

    def _close_result(self, result) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("Error closing the response for %s", self.start_line.path)

    def stream(self, result, response, written, method) -> None:
        """Send an iterable response as it is produced, waiting on a slow client."""
        iterator = iter(result)
        first = b"".join(written)
        if not first:
            # Files come whole when they fit in one block: one wake-up, as for HttpResponse.
            for chunk in iterator:
                if chunk:
                    first = chunk
                    break
        if not response:
            raise _BadResponse("the application did not call start_response")
        later = []
        whole = False
        if isinstance(result, FileWrapper) and len(first) < result.block_size:
            # A short read is the end of a regular file, but not of a pipe or socket.
            rest = next(iterator, b"")
            if rest:
                later.append(rest)
            else:
                whole = True
        start_line, head, no_body = self.container.response_head(
            *response, body_length=len(first) if whole else None, method=method
        )
        self.status = start_line.code
        if no_body or method == "HEAD":
            self._close_result(result)
            self.container.call_on_loop(self.send_whole, start_line, head, b"")
            return
        if whole:
            self._close_result(result)
            self.container.call_on_loop(self.send_whole, start_line, head, first)
            return
        self.headers_sent = True
        # HTTP/1.0 has no chunked encoding: a body of unknown length ends when the
        # connection does, even if the client asked for keep-alive.
        self.close_when_done = (
            self.start_line.version == "HTTP/1.0" and "Content-Length" not in head
        )
        self.push(start_line, head, first)
        for chunk in itertools.chain(later, iterator):
            if self.closed:
                break
            if chunk:
                self.push(None, None, chunk)
        self._close_result(result)
        # Wait for the tail, so a failed write is seen here rather than lost.
        while self.unsent:
            self.unsent.popleft()[0].result()
        self.container.call_on_loop(self.finish_stream)

    def push(self, start_line, head, data: bytes) -> None:
        done = concurrent.futures.Future()
        self.container.call_on_loop(self.write_part, start_line, head, data, done)
        self.unsent.append((done, len(data)))
        self.unsent_bytes += len(data)
        # Also collect finished writes: a trickling stream (server-sent events) never
        # reaches the high-water mark, yet must stop soon once its client is gone.
        while self.unsent and (self.unsent_bytes > _STREAM_HIGH_WATER or self.unsent[0][0].done()):
            future, size = self.unsent.popleft()
            future.result()  # raises StreamClosedError if the client went away
            self.unsent_bytes -= size

    # --- Event loop: writing the response ----------------------------------------------

    def send_whole(self, start_line, head, body: bytes) -> None:
        try:
            self.request_conn.write_headers(start_line, head, body)
            self.request_conn.finish()
        except Exception:
            log.exception("Could not send the response for %s", self.start_line.path)
            self.request_conn.close()
        self.done(start_line.code, len(body))

    def send_error(self) -> None:
        body = b"Internal Server Error\n"
        head = httputil.HTTPHeaders({
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Date": self.container.http_date(),
        })
        if self.start_line.method == "HEAD":
            body = b""
        self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 500, "Internal Server Error"), head, body)

    def write_part(self, start_line, head, data: bytes, done: concurrent.futures.Future) -> None:
        try:
            if start_line is not None:
                self.request_conn.write_headers(start_line, head, data)
            else:
                self.request_conn.write(data)
            # HTTP1Connection resolves only the future of its latest write, so with
            # several writes queued on a slow client the earlier ones never complete.
            # The stream's own futures resolve in order, once all before them is sent.
            written = self.request_conn.stream.write(b"")
            self.sent_bytes += len(data)
        except Exception as exc:
            done.set_exception(exc)
            return

        def copy_result(future) -> None:
            exc = future.exception()
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        written.add_done_callback(copy_result)

    def finish_stream(self) -> None:
        try:
            self.request_conn.finish()
        except Exception:
            log.exception("Response for %s did not match its Content-Length", self.start_line.path)
            self.request_conn.close()
        else:
            if self.close_when_done:
                stream = self.server_conn.stream
                if not stream.closed():
                    stream.write(b"").add_done_callback(lambda _: stream.close())
        self.done(self.status, self.sent_bytes)

    def abort(self, status: int) -> None:
        self.request_conn.close()
        self.done(status, self.sent_bytes)

    def done(self, status: int, size: int) -> None:
        self.container.in_flight -= 1
        self.log_access(status, size)

    def log_access(self, status: int, size: int) -> None:
        if self.container.options.access_log:
            line = self.start_line
            access_log.info(
                '%s "%s %s %s" %d %d %.1fms', self.client, line.method,
                line.path, line.version, status, size, (time.perf_counter() - self.started) * 1000,
            )


# ======================================================================================
# Tornado routes: native handlers beside Django. Add your own here.
# ======================================================================================


class EchoWebSocket(websocket.WebSocketHandler):
    """An example: a WebSocket served on the event loop, never touching the thread pool.

    Replace it with your own. Tornado checks that the Origin matches the Host.
    """

    def on_message(self, message):
        self.write_message(message, binary=isinstance(message, bytes))


# (path regex, handler class[, kwargs]); anything that does not match goes to Django.
TORNADO_ROUTES = [
    (r"/ws/echo", EchoWebSocket),
]


def tornado_routes():
    """The Tornado application and the pattern of paths it owns (None if no routes)."""
    if not TORNADO_ROUTES:
        return None, None
    pattern = re.compile("|".join(f"(?:{route[0]})$" for route in TORNADO_ROUTES))
    return web.Application(TORNADO_ROUTES), pattern


# ======================================================================================
# The server: one process (or one worker of several).
# ======================================================================================


class TornadoServer(HTTPServer):
    """Tornado's HTTPServer with a connection limit that evicts idle keep-alive first."""

    def initialize(self, container: ThreadedWSGIContainer, max_connections: int, **kwargs) -> None:
        super().initialize(container, **kwargs)
        self.container = container
        self.max_connections = max_connections
        # Streams a WebSocket took over: Tornado forgets them, but they hold a socket
        # (and on Windows a place in select()'s 512).
        self.detached: set = set()

    def open_connections(self) -> int:
        count = len(self._connections) + len(self.detached)
        if count >= self.max_connections and self.detached:
            self.detached = {stream for stream in self.detached if not stream.closed()}
            count = len(self._connections) + len(self.detached)
        return count

    def close_detached(self) -> None:
        for stream in self.detached:
            stream.close()
        self.detached.clear()

    def handle_stream(self, stream, address) -> None:
        if self.open_connections() >= self.max_connections and not self.container.close_idle(1):
            log.warning("Connection limit (%d) reached; refusing %s", self.max_connections, address[0] if address else "")
            stream.close()
            return
        super().handle_stream(stream, address)
        # Its first start_request() only runs on the next loop turn; until then a burst
        # of new connections would find nothing idle to evict and be refused.
        self.container.idle[stream] = None

    def on_close(self, server_conn) -> None:
        super().on_close(server_conn)
        self.container.on_close(server_conn)
        if not server_conn.stream.closed():  # detached: a WebSocket owns it now
            self.detached.add(server_conn.stream)

    def add_sockets(self, sockets) -> None:
        if not self.container.multiprocess:
            super().add_sockets(sockets)
            return
        # Worker processes share one listening socket and all wake up for a new
        # connection. Tornado accepts up to 128 per wake-up, so the first process awake
        # takes a whole burst of connections and its siblings idle. Taking one per loop
        # turn lets a busy process fall behind and the others take the rest.
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _accept_one_per_turn(sock, self._handle_connection)


def _accept_one_per_turn(sock, callback: Callable) -> Callable[[], None]:
    """Like ``tornado.netutil.add_accept_handler``, one connection per readiness event."""
    loop = IOLoop.current()
    removed = False

    def accept(fd, events) -> None:
        if removed:
            return
        try:
            connection, address = sock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return  # a sibling process took it, or the client gave up
        callback(connection, address)

    def remove() -> None:
        nonlocal removed
        loop.remove_handler(sock)
        removed = True

    loop.add_handler(sock, accept, IOLoop.READ)
    return remove


def ssl_context(options: ServerOptions) -> ssl.SSLContext | None:
    if not options.certfile:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(options.certfile, options.keyfile or None)
    except (ssl.SSLError, OSError) as exc:
        raise SystemExit(f"ERROR: cannot load TLS certificate {options.certfile!r}: {exc}") from None
    return context


def setup_django(options: ServerOptions):
    """Load settings and the WSGI application (settings.WSGI_APPLICATION)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
    if str(BASE_DIR) not in sys.path:
        sys.path.insert(0, str(BASE_DIR))
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


def setup_logging(options: ServerOptions) -> None:
    """Console logging comes from settings.LOGGING; add the rotating file if asked for."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    if options.log_file and not any(getattr(h, "_tornado_server", False) for h in root.handlers):
        # Several worker processes (and a Windows service) share one file: this handler
        # locks around writes and rotation, which the standard one cannot do on Windows.
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        Path(options.log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = ConcurrentRotatingFileHandler(
            options.log_file, maxBytes=options.log_max_bytes, backupCount=options.log_backups,
            encoding="utf-8",
        )
        handler._tornado_server = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s [%(name)s] %(message)s"))
        root.addHandler(handler)


def new_event_loop() -> asyncio.AbstractEventLoop:
    # On Windows the selector loop is faster for Tornado than the proactor loop,
    # which Tornado can only use through an extra selector thread.
    return asyncio.SelectorEventLoop() if IS_WINDOWS else asyncio.new_event_loop()


class Server:
    """One serving process: ``run()`` blocks until ``stop()`` (thread-safe) or a signal."""

    def __init__(self, options: ServerOptions, sockets=None, on_ready: Callable | None = None,
                 hard_exit: bool = True) -> None:
        self.options = options
        self.sockets = sockets
        self.on_ready = on_ready
        # After the drain timeout, end the process (True) or return with ``unfinished``
        # set and leave the stuck threads to the caller (a Windows service must report
        # "stopped" before the process ends).
        self.hard_exit = hard_exit
        self.unfinished = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._pending_stop = False
        self.exit_code = 0

    def stop(self, reason: str = "stop requested") -> None:
        """Begin a graceful shutdown; safe to call from any thread or a signal handler."""
        loop = self.loop
        if loop is None or self._stop_requested is None:
            self._pending_stop = True
            return
        loop.call_soon_threadsafe(self._begin_stop, reason)

    def _begin_stop(self, reason: str) -> None:
        if self._stop_requested.is_set():
            return
        log.info("Shutting down (%s): finishing requests in flight, up to %gs",
                 reason, self.options.drain_timeout)
        self._stop_requested.set()

    def run(self, application) -> int:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            return loop.run_until_complete(self._serve(application))
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    async def _serve(self, application) -> int:
        options = self.options
        self.loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        if self._pending_stop:
            self._stop_requested.set()
        tornado_app, tornado_paths = tornado_routes()
        container = ThreadedWSGIContainer(application, options, tornado_app, tornado_paths)
        server = TornadoServer(
            container,
            max_connections=options.max_connections,
            ssl_options=ssl_context(options),
            # Tornado closes the socket past its own limit; ours (lower) answers 431.
            max_header_size=options.max_header_size * 2 + 16 * 1024,
            # Ours answers 413 first; Tornado's (higher) only stops a runaway chunked body.
            max_body_size=options.max_body_size + 1024 * 1024,
            idle_connection_timeout=options.idle_timeout,
            body_timeout=options.body_timeout,
        )
        sockets = self.sockets or bind(options)
        server.add_sockets(sockets)
        waker = PeriodicCallback(lambda: None, 200) if IS_WINDOWS else None
        if waker:  # lets Ctrl+C reach Python while select() waits
            waker.start()
        if self.on_ready:
            self.on_ready()
        await self._stop_requested.wait()

        server.stop()  # no new connections; the port is free again
        container.shutting_down = True
        container.close_idle()
        deadline = time.monotonic() + options.drain_timeout
        while container.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if container.in_flight:
            log.warning("%d request(s) still running after %gs; closing them",
                        container.in_flight, options.drain_timeout)
        server.close_detached()
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=5)
        except asyncio.TimeoutError:
            pass
        container.executor.shutdown(wait=not container.in_flight, cancel_futures=True)
        if waker:
            waker.stop()
        log.info("Stopped.")
        self.unfinished = container.in_flight
        if self.unfinished and self.hard_exit:
            # A view that never returns must not keep the process alive.
            logging.shutdown()
            os._exit(self.exit_code)
        return self.exit_code


def bind(options: ServerOptions) -> list:
    try:
        return netutil.bind_sockets(options.port, options.host, backlog=1024)
    except OSError as exc:
        raise SystemExit(
            f"ERROR: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}. "
            "Is another server already using this port? Choose another with --port."
        ) from None
    except ValueError as exc:
        raise SystemExit(f"ERROR: cannot listen on {options.host}:{options.port}: {exc}") from None


def raise_open_file_limit() -> None:
    """Let one process hold thousands of sockets (Unix soft limits are often 1024)."""
    try:
        import resource
    except ImportError:  # Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError):
            pass


def install_stop_signals(stop: Callable[[str], None], second: Callable[[], None]) -> None:
    """Ctrl+C, SIGTERM and (Windows) Ctrl+Break begin a graceful stop; a second one forces it."""
    seen = []

    def handler(signum, frame):
        if seen:
            second()
        seen.append(signum)
        stop(signal.Signals(signum).name)

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), handler)


def listening_url(options: ServerOptions) -> str:
    host = options.host
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{options.scheme}://{host}:{options.port}/"


def force_exit() -> None:
    print("Forced stop.", file=sys.stderr, flush=True)
    os._exit(1)


def serve_single(options: ServerOptions) -> int:
    raise_open_file_limit()
    application = setup_django(options)
    sockets = bind(options)
    server = Server(options, sockets, on_ready=lambda: announce(options))
    install_stop_signals(server.stop, force_exit)
    return server.run(application)


def announce(options: ServerOptions) -> None:
    everywhere = " (all interfaces)" if options.host in ("0.0.0.0", "::") else ""
    processes = f"{options.workers} processes" if options.workers > 1 else "1 process"
    print(
        f"{PROJECT_NAME} is running at {listening_url(options)}{everywhere}"
        f" - {options.threads} threads x {processes}. Press Ctrl+C to stop.",
        flush=True,
    )


# ======================================================================================
# Worker processes: the supervisor binds once and hands the socket to spawned children.
# ======================================================================================


def worker_main(options: ServerOptions, sockets: list, conn, number: int) -> None:
    """Entry point of a worker process (spawned, so it starts fresh on every OS)."""
    # The supervisor owns Ctrl+C / Ctrl+Break and tells us to stop through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    raise_open_file_limit()
    application = setup_django(options)
    server = Server(options, sockets)

    def ready() -> None:
        conn.send("ready")
        threading.Thread(target=watch_supervisor, args=(conn, server), daemon=True).start()

    server.on_ready = ready
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop("SIGTERM"))
    sys.exit(server.run(application))


def watch_supervisor(conn, server: Server) -> None:
    """Stop when the supervisor says so, or when it is gone (no orphan workers)."""
    try:
        message = conn.recv()
        reason = f"supervisor: {message}"
    except (EOFError, OSError):
        reason = "supervisor is gone"
    server.stop(reason)


@dataclass
class _Worker:
    number: int
    process: Any
    conn: Any
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs ``workers`` processes on one listening socket; respawns any that die."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, _Worker] = {}
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.recent_deaths: collections.deque = collections.deque(maxlen=10)

    def stop(self, reason: str = "stop requested") -> None:
        self.stop_reason = reason
        self.stopping.set()

    def start_worker(self, number: int, sockets: list) -> None:
        parent_conn, child_conn = self.context.Pipe()
        process = self.context.Process(
            target=worker_main, args=(self.options, sockets, child_conn, number),
            name=f"tornado-worker-{number}",
        )
        process.start()
        child_conn.close()
        self.workers[number] = _Worker(number, process, parent_conn)

    def run(self) -> int:
        from multiprocessing.connection import wait

        sockets = bind(self.options)
        for number in range(1, self.options.workers + 1):
            self.start_worker(number, sockets)
        announced = False
        while not self.stopping.is_set():
            sentinels = {w.process.sentinel: w for w in self.workers.values()}
            conns = {w.conn: w for w in self.workers.values() if not w.ready}
            for ready in wait(list(sentinels) + list(conns), timeout=0.5):
                if ready in conns:
                    worker = conns[ready]
                    try:
                        worker.ready = worker.conn.recv() == "ready"
                    except (EOFError, OSError):
                        pass
                elif ready in sentinels:
                    worker = sentinels[ready]
                    if self.stopping.is_set():
                        break
                    worker.process.join(1)
                    code = worker.process.exitcode
                    worker.conn.close()
                    if not worker.ready:
                        log.error("Worker %d failed to start (exit code %s); stopping.",
                                  worker.number, code)
                        self.stop("a worker failed to start")
                        self.shutdown()
                        return 1
                    log.warning("Worker %d (pid %s) exited unexpectedly with code %s; starting a new one.",
                                worker.number, worker.process.pid, code)
                    self.recent_deaths.append(time.monotonic())
                    if len(self.recent_deaths) == self.recent_deaths.maxlen and (
                        self.recent_deaths[-1] - self.recent_deaths[0] < 60
                    ):
                        time.sleep(1)  # crashing in a loop: do not spin
                    self.start_worker(worker.number, sockets)
            if not announced and all(w.ready for w in self.workers.values()):
                announced = True
                announce(self.options)
        for sock in sockets:
            sock.close()
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        log.info("Stopping %d worker(s) (%s)", len(self.workers), self.stop_reason)
        for worker in self.workers.values():
            try:
                worker.conn.send("stop")
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + self.options.drain_timeout + 10
        for worker in self.workers.values():
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("Worker %d did not stop in time; killing it.", worker.number)
                worker.process.kill()
                worker.process.join(5)
        log.info("Stopped.")


def serve_workers(options: ServerOptions) -> int:
    setup_logging(options)
    supervisor = Supervisor(options)
    install_stop_signals(supervisor.stop, force_exit)
    return supervisor.run()


# ======================================================================================
# Main
# ======================================================================================


def main(argv: list[str] | None = None) -> int:
    read_dotenv()
    options = load_options(argv)
    if options.workers > 1:
        return serve_workers(options)
    return serve_single(options)


if __name__ == "__main__":
    sys.exit(main())
