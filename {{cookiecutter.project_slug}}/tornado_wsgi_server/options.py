"""Every server option, defined once: its parser, default, help and environment variable.

``load_options()`` reads the command line, then the environment (and ``.env``), then the
defaults, and exits with status 2 and a message naming the flag or variable on a bad value.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import __version__
from .project import Project

IS_WINDOWS = sys.platform == "win32"
# Windows' select() takes at most 512 sockets per call: stay under it per process.
WINDOWS_MAX_CONNECTIONS = 500


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


def _seconds_or_off(raw: str) -> float:
    """Seconds greater than 0, or 0 / "off" for no limit at all (returned as 0.0)."""
    if raw.strip().lower() in ("0", "off"):
        return 0.0
    try:
        return _seconds(raw)
    except OptionError:
        raise OptionError("must be a number of seconds greater than 0, or 0 / off for no limit") from None


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


def _metrics_address(raw: str) -> tuple[str, int] | None:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[IPv6]:PORT``; empty: metrics off."""
    value = raw.strip()
    if not value:
        return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]")
    if not port.isdigit() or not 1 <= int(port) <= 65535 or (sep and not host) or any(
        ch.isspace() or ch == "/" for ch in host
    ):
        raise OptionError("must be a port (listens on 127.0.0.1) or HOST:PORT, e.g. 9100 or 127.0.0.1:9100")
    return host, int(port)


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def _existing_file(raw: str) -> str:
    path = Path(raw.strip()).expanduser()
    if not path.is_file():
        raise OptionError(f"file {str(path)!r} does not exist")
    return str(path)


WINDOWS_AUTH_MODES = ("off", "negotiate", "paths")
USER_FORMATS = ("as-is", "lower", "strip-domain", "strip-domain-lower")


def _choice(choices: tuple) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise OptionError("must be one of " + ", ".join(choices))
        return value

    return parse


def _path_prefixes(raw: str) -> tuple:
    prefixes = tuple(filter(None, (part.strip() for part in raw.split(","))))
    if not prefixes or any(not prefix.startswith("/") or "?" in prefix for prefix in prefixes):
        raise OptionError("must be a comma-separated list of paths starting with /, "
                          "e.g. /accounts/windows/")
    return prefixes


def _header_name(raw: str) -> str:
    value = raw.strip()
    if value and not re.fullmatch(r"[A-Za-z0-9]+(-[A-Za-z0-9]+)*", value):
        raise OptionError("must be a header name of letters, digits and dashes, e.g. X-Forwarded-User")
    return value


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


def options_for(project: Project) -> tuple[Option, ...]:
    """The options, with the defaults this project was made with."""
    return (
        Option("host", _host, "127.0.0.1", "Address to listen on; 0.0.0.0 serves the whole network."),
        Option("port", _int_range(1, 65535), str(project.port), "TCP port to listen on."),
        Option("threads", _int_range(1, 1024), str(project.threads),
               "Threads per process running Django views; a blocked view holds one thread."),
        Option("workers", _int_range(1, 64), "1",
               "Processes sharing the port (multiprocessing spawn, works on Windows); "
               "one per CPU core is a good start."),
        Option("static_from_loop", _bool, "true",
               "Answer the static files WhiteNoise serves on the event loop, with no thread "
               "hop (about 1.6x the requests per second); turn off if STATIC_ROOT is on a "
               "slow network share: opening its files (and reading those under 256 KB) would "
               "hold up every connection.", flag=True),
        Option("settings", _module, project.settings, "Django settings module.",
               env="DJANGO_SETTINGS_MODULE", metavar="MODULE"),
        Option("max_queue", _int_range(0), "100",
               "Requests that may wait for a free thread; beyond that new ones get "
               "503 with Retry-After at once instead of queueing without bound."),
        Option("max_queue_wait", _seconds, "5",
               "Seconds a request may wait for a free thread; past that it gets 503 with "
               "Retry-After and never reaches Django (its client has mostly given up by then).",
               metavar="SECONDS"),
        Option("max_connections", _int_range(1),
               str(WINDOWS_MAX_CONNECTIONS) if IS_WINDOWS else "1000",
               "Open connections per process; at the limit the longest-idle keep-alive "
               "connection is closed to make room, then the slowest upload, then a download its "
               f"client has not read for 5 s (at most {WINDOWS_MAX_CONNECTIONS} on Windows)."),
        Option("max_connections_per_ip", _int_range(1), "128",
               "Open connections per client address (IPv6: per /64) and process, so one client "
               "cannot take every slot; at it, that address's idle keep-alive connections are "
               "closed first, then new ones get 503. Addresses in --trusted-proxies are exempt.",
               metavar="N"),
        Option("max_body_size", _size, "100M",
               "Largest request body (413 beyond it); bodies over 64 KB wait in a temporary file.",
               metavar="SIZE"),
        Option("max_header_size", _size, "64K",
               "Largest request line plus headers: 431 beyond it (also past 100 header lines); "
               "past this plus 4 KB the connection is closed unanswered.", metavar="SIZE"),
        Option("idle_timeout", _seconds, "60",
               "Seconds a connection may sit idle, or take to send its headers, before it is closed.",
               metavar="SECONDS"),
        Option("body_timeout", _seconds, "120",
               "Seconds a client may take to send a whole request body.", metavar="SECONDS"),
        Option("min_body_rate", _size, "1K",
               "Bytes per second a request body must average over each --body-rate-window; "
               "a slower upload is closed.", metavar="SIZE"),
        Option("body_rate_window", _seconds, "10",
               "Seconds over which --min-body-rate and --min-send-rate are measured.",
               metavar="SECONDS"),
        Option("write_timeout", _seconds, "60",
               "Seconds a response may wait on a client that does not read (accepts less than "
               "64 KB) before its connection is closed and its thread freed.", metavar="SECONDS"),
        Option("min_send_rate", _size, "1K",
               "Bytes per second a client must take a response at, on average over each "
               "--body-rate-window while part of it waits in the server; a slower one (or one "
               "that stopped reading) has its connection closed and its thread freed.",
               metavar="SIZE"),
        Option("request_timeout", _seconds_or_off, "300",
               "Seconds a request may stay inside Django (a stream: without producing a part); "
               "past that its client gets 504 (or, once the response began, a closed connection), "
               "its late answer is dropped and the stuck thread's stack is logged. 0 or off: no limit.",
               metavar="SECONDS"),
        Option("max_requests", _int_range(0), "0",
               "With --workers: replace a worker by a fresh process after about this many "
               "requests (new one first, no request fails); bounds slow memory leaks. 0: never.",
               metavar="N"),
        Option("max_requests_jitter", _int_range(0), "0",
               "Add a random 0 to N to each worker's --max-requests, so workers are not all "
               "replaced at the same moment.", metavar="N"),
        Option("drain_timeout", _seconds, "30",
               "On shutdown, seconds in-flight requests get to finish.", metavar="SECONDS"),
        Option("trusted_proxies", _networks, "",
               "Comma-separated proxy addresses or networks (e.g. 127.0.0.1,10.0.0.0/8) whose "
               "X-Forwarded-For and X-Forwarded-Proto are believed. Empty: believe nobody.",
               metavar="LIST"),
        Option("windows_auth", _choice(WINDOWS_AUTH_MODES), "off",
               "Windows sign-on (Kerberos/NTLM, docs/windows-signon.md): off; negotiate (every "
               "request); paths (only --windows-auth-paths, then Django's session keeps the user).",
               metavar="MODE"),
        Option("windows_auth_paths", _path_prefixes, "/accounts/windows/",
               "With --windows-auth paths: the path prefixes that sign people on "
               "(comma-separated).", metavar="LIST"),
        Option("windows_auth_user_format", _choice(USER_FORMATS), "as-is",
               "The REMOTE_USER Django gets: as-is (DOMAIN\\user), lower, strip-domain (user), "
               "strip-domain-lower.", metavar="FORMAT"),
        Option("windows_auth_header", _header_name, "",
               "Behind IIS: the header (e.g. X-Forwarded-User, from {LOGON_USER}) naming the "
               "signed-on user; believed from --trusted-proxies only, removed from everyone else.",
               metavar="NAME"),
        Option("max_websockets", _int_range(0), None,
               "Open WebSockets per process (TORNADO_ROUTES); beyond it new ones get 503, so "
               "plain HTTP always keeps the rest of --max-connections. Default: half of it."),
        Option("websocket_ping_interval", _seconds, "30",
               "Seconds between pings on an open WebSocket.", metavar="SECONDS"),
        Option("websocket_ping_timeout", _seconds, "30",
               "Seconds a WebSocket peer gets to answer a ping before it is closed "
               "(at most the ping interval).", metavar="SECONDS"),
        Option("websocket_max_message_size", _size, "64K",
               "Largest WebSocket message; a bigger one closes the connection.", metavar="SIZE"),
        Option("certfile", _existing_file, None,
               "TLS certificate chain (PEM), or a .pfx/.p12 file with its key (password "
               "in the SERVER_CERT_PASSWORD environment variable): serve HTTPS directly.", metavar="PATH"),
        Option("keyfile", _existing_file, None,
               "TLS private key (PEM), if it is not inside --certfile.", metavar="PATH"),
        Option("access_log", _bool, "true", "Log one line per request.", flag=True),
        Option("log_file", _path, "",
               "Also write the log to this file, rotated by size (safe with several processes "
               "and on Windows).", metavar="PATH"),
        Option("log_max_bytes", _size, "10M", "Rotate the log file at this size.", metavar="SIZE"),
        Option("log_backups", _int_range(0, 1000), "5", "Rotated log files to keep."),
        Option("metrics", _metrics_address, "",
               "Serve Prometheus metrics (GET /metrics) and the admin status page's data on "
               "this separate listener: a port (127.0.0.1) or HOST:PORT. Empty: off.",
               metavar="[HOST:]PORT"),
        Option("metrics_public", _bool, "false",
               "Allow --metrics on an address other than loopback; the numbers show your "
               "traffic to whoever reaches the port.", flag=True),
    )


@dataclass
class ServerOptions:
    """The parsed options; ``load_options()`` fills every field from ``options_for()``."""

    host: str = "127.0.0.1"
    port: int = 8000
    threads: int = 8
    workers: int = 1
    static_from_loop: bool = True
    settings: str = ""
    max_queue: int = 100
    max_queue_wait: float = 5.0
    max_connections: int = WINDOWS_MAX_CONNECTIONS if IS_WINDOWS else 1000
    max_connections_per_ip: int = 128
    max_body_size: int = 100 * 1024**2
    max_header_size: int = 64 * 1024
    idle_timeout: float = 60.0
    body_timeout: float = 120.0
    min_body_rate: int = 1024
    body_rate_window: float = 10.0
    write_timeout: float = 60.0
    min_send_rate: int = 1024
    request_timeout: float = 300.0  # 0: no limit
    max_requests: int = 0
    max_requests_jitter: int = 0
    drain_timeout: float = 30.0
    trusted_proxies: tuple = field(default_factory=tuple)
    windows_auth: str = "off"
    windows_auth_paths: tuple = ("/accounts/windows/",)
    windows_auth_user_format: str = "as-is"
    windows_auth_header: str = ""
    max_websockets: int | None = None  # None: half of max_connections
    websocket_ping_interval: float = 30.0
    websocket_ping_timeout: float = 30.0
    websocket_max_message_size: int = 64 * 1024
    certfile: str | None = None
    keyfile: str | None = None
    access_log: bool = True
    log_file: str = ""
    log_max_bytes: int = 10 * 1024**2
    log_backups: int = 5
    metrics: tuple[str, int] | None = None
    metrics_public: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.certfile else "http"


def build_arg_parser(project: Project) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tornado_server.py",
        description=f"Serve {project.name} (Django) with Tornado. Each option "
        "can also be set by the environment variable shown, or in .env.",
    )
    parser.add_argument("--version", action="version", version=f"tornado_wsgi_server {__version__}",
                        help="print the server package's version (CHANGELOG.md) and exit")
    for option in options_for(project):
        default = "(none)" if option.default in (None, "") else option.default
        help_text = f"{option.help} [env {option.env_name}; default {default}]"
        if option.flag:
            parser.add_argument(option.cli_name, action=argparse.BooleanOptionalAction,
                                default=None, help=help_text)
        else:
            parser.add_argument(option.cli_name, metavar=option.metavar or option.name.upper(),
                                default=None, help=help_text)
    return parser


def load_options(project: Project, argv: list[str] | None = None,
                 environ: dict | None = None) -> ServerOptions:
    """Command line, then environment (with .env), then defaults. Exits 2 on a bad value."""
    parser = build_arg_parser(project)
    args = parser.parse_args(argv)
    environ = os.environ if environ is None else environ
    values = {}
    for option in options_for(project):
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
    if options.metrics and not options.metrics_public and not is_loopback(options.metrics[0]):
        parser.error(
            f"--metrics={options.metrics[0]}:{options.metrics[1]}: not a loopback address. "
            "Metrics tell anyone who can reach them your traffic, paths' methods, errors and "
            "load; serve them on 127.0.0.1 and let Prometheus scrape through a tunnel or a "
            "local agent, or add --metrics-public (SERVER_METRICS_PUBLIC=true) behind a firewall"
        )
    if IS_WINDOWS and sys.version_info < (3, 13) and options.workers > 31:
        # The supervisor waits on two handles per worker; Windows' wait takes 63 at most
        # before Python 3.13.
        parser.error(f"--workers={options.workers}: at most 31 on Windows with Python before 3.13")
    if options.windows_auth_header and not options.trusted_proxies:
        parser.error(f"--windows-auth-header={options.windows_auth_header}: needs --trusted-proxies "
                     "(SERVER_TRUSTED_PROXIES), the address of the IIS that signs people on; "
                     "from anyone else the header is removed")
    if options.max_websockets is None:
        options.max_websockets = options.max_connections // 2
    elif options.max_websockets > options.max_connections:
        parser.error(f"--max-websockets={options.max_websockets}: at most --max-connections "
                     f"({options.max_connections}); WebSockets take connection slots")
    if IS_WINDOWS and options.max_connections > WINDOWS_MAX_CONNECTIONS:
        parser.error(
            f"--max-connections={options.max_connections}: Windows serves at most "
            f"{WINDOWS_MAX_CONNECTIONS} connections per process; add --workers instead"
        )
    return options


def read_dotenv(path: Path) -> None:
    """Load .env into os.environ without overriding real environment variables."""
    if path.is_file():
        import environ as django_environ

        django_environ.Env.read_env(path)

