"""Connections and their limits: Tornado's HTTP server with a connection cap that evicts
idle keep-alive, then the slowest upload, a cap per client address, one-accept-per-turn for
worker processes, and the listening sockets (bind, TLS context, the open-file limit).
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import ssl
from collections.abc import Callable

from tornado import netutil
from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop

from .container import ThreadedWSGIContainer
from .http1 import ServerConnection
from .options import ServerOptions


class TornadoServer(HTTPServer):
    """Tornado's HTTPServer with a connection limit that evicts idle keep-alive first, then
    the slowest upload, and a cap on connections per client address."""

    def initialize(self, container: ThreadedWSGIContainer, max_connections: int,
                   max_connections_per_ip: int | None = None, **kwargs) -> None:
        super().initialize(container, **kwargs)
        self.container = container
        self.max_connections = max_connections
        self.max_per_address = max_connections_per_ip or max_connections
        self.per_address: collections.Counter = collections.Counter()
        self.address_of: dict = {}  # stream -> client address, for the count above
        # Streams a WebSocket took over: Tornado forgets them, but they hold a socket
        # (and on Windows a place in select()'s 512).
        self.detached: set = set()

    def open_connections(self) -> int:
        count = len(self._connections) + len(self.detached)
        if count >= self.max_connections and self.detached:
            self._forget_closed_detached()
            count = len(self._connections) + len(self.detached)
        return count

    def _forget_closed_detached(self) -> None:
        for stream in [stream for stream in self.detached if stream.closed()]:
            self.detached.discard(stream)
            self._uncount(stream)

    def _uncount(self, stream) -> None:
        address = self.address_of.pop(stream, None)
        if address is not None:
            self.per_address[address] -= 1
            if self.per_address[address] <= 0:
                del self.per_address[address]

    def close_detached(self) -> None:
        for stream in self.detached:
            stream.close()
            self._uncount(stream)
        self.detached.clear()

    def _over_address_cap(self, address: str) -> bool:
        if self.per_address[address] < self.max_per_address:
            return False
        self._forget_closed_detached()
        if self.per_address[address] < self.max_per_address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return not any(ip in network for network in self.container.trusted)

    def handle_stream(self, stream, address) -> None:
        container = self.container
        client = address[0] if isinstance(address, tuple) and address else ""
        if client and self._over_address_cap(client):
            container.note(client, "per-address", "Connection limit per address (%d) reached; "
                           "refusing more from %s", self.max_per_address, client)
            stream.close()
            return
        if self.open_connections() >= self.max_connections and not (
            container.close_idle(1) or container.evict_upload()
        ):
            container.note(client, "limit", "Connection limit (%d) reached; refusing %s",
                           self.max_connections, client, level=logging.WARNING)
            stream.close()
            return
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        connection = ServerConnection(stream, self.conn_params, context)
        self._connections.add(connection)
        if client:
            self.per_address[client] += 1
            self.address_of[stream] = client
        connection.start_serving(self)
        # Its first start_request() only runs on the next loop turn; until then a burst
        # of new connections would find nothing idle to evict and be refused.
        container.idle[stream] = None

    def on_close(self, server_conn) -> None:
        super().on_close(server_conn)
        self.container.on_close(server_conn)
        if server_conn.stream.closed():
            self._uncount(server_conn.stream)
        else:  # detached: a WebSocket owns it now, and still counts for its address
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
    ceiling = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    # macOS reports an unlimited hard limit yet refuses more than its per-process maximum
    # (often 10240 or 24576): step down until a value is accepted.
    for wanted in (ceiling, 24576, 10240, 4096):
        if soft == resource.RLIM_INFINITY or soft >= wanted or wanted > ceiling:
            continue
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
            return
        except (ValueError, OSError):
            pass
