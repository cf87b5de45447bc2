"""Connections and their limits: Tornado's HTTP server with a connection cap that evicts idle
keep-alive, then the slowest upload, then a stalled reader; a cap per client address (an IPv6
client counts per /64) that closes that address's idle keep-alive first; a short 503 to whoever
is still refused; an accept loop (one per turn for workers) that backs off when accept() keeps failing; the listening
sockets (bind, exclusive on Windows; the open-file limit). TLS is in tls.py.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import socket
from collections.abc import Callable

from tornado.httpserver import HTTPServer, _HTTPRequestContext
from tornado.ioloop import IOLoop
from tornado.iostream import IOStream

from .container import ThreadedWSGIContainer
from .http1 import ServerConnection
from .logs import log
from .options import ServerOptions
from .tls import ssl_context  # noqa: F401  (process.py takes it from here)

# One IPv6 client (a home, an office, a cloud machine) is given a whole /64: it could take
# each of its 2**64 addresses in turn, so the per-address cap counts the /64.
IPV6_PREFIX = 64
_IPV6_HOST_BITS = 128 - IPV6_PREFIX


def address_key(client: str) -> str:
    """What the per-address cap counts ``client`` under: an IPv4 address as it is, an
    IPv4-mapped IPv6 address as its IPv4 address, any other IPv6 address as its /64."""
    if ":" not in client:
        return client
    try:
        ip = ipaddress.IPv6Address(client)
    except ValueError:
        return client
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    network = ipaddress.IPv6Address(int(ip) >> _IPV6_HOST_BITS << _IPV6_HOST_BITS)
    return f"{network}/{IPV6_PREFIX}"


# A refused connection gets this much time to take its answer (and send what it was
# sending, read and dropped) before it is closed; at most this many wait at once.
REFUSAL_LINGER = 2.0
MAX_LINGERING = 64
_REFUSAL_BODY = b"Too many connections from your address or to this server; please retry shortly.\n"


class Refusals:
    """Answers a connection the server will not serve with a fixed 503 (Retry-After,
    Connection: close) written straight to its socket, unread, instead of a bare reset.

    The socket is then half-closed and what the client still sends is read and dropped for
    up to ``REFUSAL_LINGER`` seconds: closing with unread data would send a reset, and the
    client could lose the answer. Past ``MAX_LINGERING`` such sockets the rest are closed at
    once, so refusing stays cheap for the loop whatever arrives.
    """

    def __init__(self, container: ThreadedWSGIContainer) -> None:
        self.container = container
        self.lingering: dict = {}  # socket -> [timeout handle, bytes read]
        self._head = (0, b"")

    def response(self) -> bytes:
        date = self.container.http_date()
        if self._head[0] != date:
            self._head = (date, (
                "HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(_REFUSAL_BODY)}\r\nRetry-After: 5\r\nConnection: close\r\n"
                f"Date: {date}\r\n\r\n").encode("latin-1") + _REFUSAL_BODY)
        return self._head[1]

    def refuse(self, sock: socket.socket) -> None:
        try:
            sock.setblocking(False)
            sock.send(self.response())  # a few hundred bytes: the send buffer takes them
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            sock.close()
            return
        if len(self.lingering) >= MAX_LINGERING:
            sock.close()
            return
        loop = self.container.loop
        try:
            loop.add_handler(sock, self._readable, IOLoop.READ)
        except (OSError, ValueError):
            sock.close()
            return
        self.lingering[sock] = [loop.call_later(REFUSAL_LINGER, self._done, sock), 0]

    def _readable(self, sock, events) -> None:
        entry = self.lingering.get(sock)
        if entry is None:
            return
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry[1] += len(data)
        if not data or entry[1] > 4 * 65536:
            self._done(sock)

    def _done(self, sock) -> None:
        entry = self.lingering.pop(sock, None)
        if entry is None:
            return
        self.container.loop.remove_timeout(entry[0])
        try:
            self.container.loop.remove_handler(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def close_all(self) -> None:
        for sock in list(self.lingering):
            self._done(sock)


class PlainStream(IOStream):
    """A plain TCP stream that waits for the loop to say data is there before reading.

    Tornado tries a read at once whenever one starts. After a response that read finds
    nothing (the client is still taking the answer in): a wasted system call which, with
    worker threads waiting, also hands them the GIL and leaves the loop waiting to get it
    back. Readiness is level-triggered, so data already there is reported on the next turn.
    TLS streams keep the eager read: the TLS layer may hold data the socket does not show.
    """

    def _try_inline_read(self) -> None:
        pos = self._find_read_pos()
        if pos is not None:
            self._read_from_buffer(pos)
            return
        self._check_closed()
        self._add_io_state(IOLoop.READ)


class TornadoServer(HTTPServer):
    """Tornado's HTTPServer with a connection limit that evicts idle keep-alive first, then
    the slowest upload, and a cap on connections per client address."""

    def initialize(self, container: ThreadedWSGIContainer, max_connections: int,
                   max_connections_per_ip: int | None = None, **kwargs) -> None:
        super().initialize(container, **kwargs)
        # The container closes connections idle past --idle-timeout (ten checks a second):
        # cheaper than the timer Tornado would arm and cancel around every request's headers.
        self.conn_params.header_timeout = None
        self.container = container
        self.max_connections = max_connections
        self.max_per_address = max_connections_per_ip or max_connections
        # Address key (address_key) -> its streams, each open connection counted once.
        self.per_address: dict[str, set] = {}
        self.address_of: dict = {}  # stream -> its address key
        self.refusals = Refusals(container)
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
        key = self.address_of.pop(stream, None)
        if key is not None:
            streams = self.per_address.get(key)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self.per_address[key]

    def close_detached(self) -> None:
        for stream in self.detached:
            stream.close()
            self._uncount(stream)
        self.detached.clear()

    def _count(self, key: str) -> int:
        streams = self.per_address.get(key)
        return 0 if streams is None else len(streams)

    def _over_address_cap(self, address: str, key: str) -> bool:
        """True if ``address`` is at its cap even after its idle keep-alive connections
        (oldest idle first) were closed to make room."""
        if self._count(key) < self.max_per_address:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if any(ip in network for network in self.container.trusted):
            return False
        self._forget_closed_detached()
        idle = self.container.idle
        while self._count(key) >= self.max_per_address:
            oldest = min((stream for stream in self.per_address[key] if stream in idle),
                         key=idle.__getitem__, default=None)
            if oldest is None:
                return True
            del idle[oldest]
            oldest.close()
            self._uncount(oldest)  # now, not when Tornado reports the close: the count is due
        return False

    def _refused(self, address) -> str | None:
        """Why a new connection from ``address`` may not be served (None: it may); makes
        room first where it can."""
        container = self.container
        client = address[0] if isinstance(address, tuple) and address else ""
        key = address_key(client) if client else ""
        if client and self._over_address_cap(client, key):
            container.note(key, "per-address", "Connection limit per address (%d) reached by %s: "
                           "new connections get 503 while none of its own is idle. Is it a "
                           "reverse proxy? List it in --trusted-proxies. Do many users share it "
                           "(NAT, a terminal server)? Raise --max-connections-per-ip.",
                           self.max_per_address, key)
            return "per-address"
        if self.open_connections() >= self.max_connections and not (
            container.close_idle(1) or container.evict_upload() or container.evict_stalled_reader()
        ):
            container.note(key, "limit", "Connection limit (%d) reached; refusing %s (503)",
                           self.max_connections, client, level=logging.WARNING)
            return "limit"
        return None

    def _handle_connection(self, connection, address) -> None:
        if self.ssl_options is not None:
            super()._handle_connection(connection, address)  # handle_stream() checks
            return
        if self._refused(address):
            self.refusals.refuse(connection)  # plain TCP: a written answer costs little
            return
        try:
            stream = PlainStream(connection, max_buffer_size=self.max_buffer_size,
                                 read_chunk_size=self.read_chunk_size)
            self._serve(stream, address)
        except Exception:
            log.exception("Error setting up a new connection from %s", address)
            connection.close()

    def handle_stream(self, stream, address) -> None:
        """A TLS connection (plain ones come through _handle_connection)."""
        if self._refused(address):
            stream.close()  # its handshake is not done: no answer can be read
            return
        self._serve(stream, address)

    def _serve(self, stream, address) -> None:
        container = self.container
        client = address[0] if isinstance(address, tuple) and address else ""
        # Answers go out whole or in 64 KB slices, so Nagle's algorithm would only hold back
        # their last packet: on for good, not toggled by two system calls per request.
        stream.set_nodelay(True)
        stream.set_nodelay = _nodelay_stays_on
        context = _HTTPRequestContext(stream, address, self.protocol, self.trusted_downstream)
        connection = ServerConnection(stream, self.conn_params, context)
        self._connections.add(connection)
        if client:
            key = address_key(client)
            self.per_address.setdefault(key, set()).add(stream)
            self.address_of[stream] = key
        connection.start_serving(self)
        # Its first start_request() only runs on the next loop turn; until then a burst
        # of new connections would find nothing idle to evict and be refused.
        container.idle[stream] = container.loop.time()

    def on_close(self, server_conn) -> None:
        super().on_close(server_conn)
        self.container.on_close(server_conn)
        if server_conn.stream.closed():
            self._uncount(server_conn.stream)
        else:  # detached: a WebSocket owns it now, and still counts for its address
            self.detached.add(server_conn.stream)

    def add_sockets(self, sockets) -> None:
        # Worker processes share one listening socket and all wake up for a new
        # connection. Tornado accepts up to 128 per wake-up, so the first process awake
        # takes a whole burst of connections and its siblings idle. Taking one per loop
        # turn lets a busy process fall behind and the others take the rest.
        per_turn = 1 if self.container.multiprocess else 128
        for sock in sockets:
            sock.setblocking(False)  # one from socket.fromshare() (Windows workers) is blocking
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = _accept_handler(sock, self._handle_connection, per_turn)


def _nodelay_stays_on(value: bool) -> None:
    """Stands in for IOStream.set_nodelay on our connections (TCP_NODELAY is set once)."""


# After an accept() error that does not go away by itself (out of file descriptors),
# the listening socket stays readable: wait this long before trying again.
ACCEPT_BACKOFF = 0.5


def _accept_handler(sock, callback: Callable, per_turn: int) -> Callable[[], None]:
    """Like ``tornado.netutil.add_accept_handler``, with at most ``per_turn`` connections
    per readiness event, and no busy loop or log flood when accept() keeps failing."""
    loop = IOLoop.current()
    removed = False
    failing = False

    def accept(fd, events) -> None:
        nonlocal failing
        for _ in range(per_turn):
            if removed:
                return
            try:
                connection, address = sock.accept()
            except (BlockingIOError, InterruptedError):
                return  # nothing left, or a sibling process took it
            except (ConnectionAbortedError, ConnectionResetError):
                continue  # the client gave up before we took it
            except OSError as exc:  # EMFILE, ENFILE, ENOBUFS...
                if not failing:
                    log.error("Cannot accept connections (%s); pausing for %gs at a time until it "
                              "works again", exc.strerror or exc, ACCEPT_BACKOFF)
                failing = True
                loop.remove_handler(sock)
                loop.call_later(ACCEPT_BACKOFF, resume)
                return
            if failing:
                log.info("Accepting connections again")
                failing = False
            callback(connection, address)

    def resume() -> None:
        if not removed:
            loop.add_handler(sock, accept, IOLoop.READ)

    def remove() -> None:
        nonlocal removed
        if not removed:
            removed = True
            try:
                loop.remove_handler(sock)
            except (KeyError, ValueError):  # paused: not registered right now
                pass

    loop.add_handler(sock, accept, IOLoop.READ)
    return remove


def bind(options: ServerOptions) -> list:
    try:
        return listening_sockets(options.host, options.port, backlog=1024)
    except OSError as exc:
        raise SystemExit(
            f"ERROR: cannot listen on {options.host}:{options.port}: {exc.strerror or exc}. "
            + bind_hint(exc, options.host)
        ) from None
    except ValueError as exc:
        raise SystemExit(f"ERROR: cannot listen on {options.host}:{options.port}: {exc}") from None


def bind_hint(exc: OSError, host: str) -> str:
    """What to do about a failed bind: the likely cause differs by error."""
    # Windows socket errors carry the WSAE... code (10049, 10013) as errno and winerror.
    codes = {exc.errno, getattr(exc, "winerror", None)}
    if codes & {errno.EADDRNOTAVAIL, 10049}:
        return (f"This machine has no address {host} (yet): use 0.0.0.0 for every interface, "
                "or one that ipconfig / ip addr lists.")
    if codes & {errno.EACCES, 10013}:
        return ("On Windows the port may be reserved (Hyper-V, WSL and Docker reserve ranges: "
                "netsh interface ipv4 show excludedportrange protocol=tcp) or held by IIS / "
                "HTTP.sys (80, 443); elsewhere ports below 1024 need root. Choose another with --port.")
    return "Is another server already using this port? Choose another with --port."


def listening_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    """Non-blocking sockets listening on every address ``host`` resolves to ("" or "::"
    may give IPv4 and IPv6). Windows: SO_EXCLUSIVEADDRUSE, so that no other process can
    bind the same port (Tornado's bind_sockets sets no option there); elsewhere SO_REUSEADDR,
    so a restart does not wait for old connections in TIME_WAIT."""
    infos = socket.getaddrinfo(host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                               socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            if family == socket.AF_INET6 and address[3] != 0:
                continue  # a link-local address with a scope; Tornado skips these too
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # the same free port on every address
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRNOTAVAIL and len(infos) > 1:
                    sockets.remove(sock)  # e.g. "localhost" -> ::1 without IPv6
                    sock.close()
                    continue
                raise
            sock.setblocking(False)
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    if not sockets:
        raise OSError(errno.EADDRNOTAVAIL, f"no address to listen on for {host!r}")
    return sockets


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
