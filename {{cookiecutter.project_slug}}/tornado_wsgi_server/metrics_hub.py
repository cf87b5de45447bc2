"""Where the processes' counts meet: the metrics listener (``--metrics``) and its history.

Every serving process sends a snapshot once a second (worker processes over a one-way Pipe,
a single process directly); the hub, in the supervisor or the single process, sums them and
serves ``/metrics`` (Prometheus text) and ``/status.json`` (15 minutes of history, per worker).
The listener is small and bounded: a few handler threads, a timeout, a size limit per request.
"""

from __future__ import annotations

import collections
import io
import json
import multiprocessing
import queue
import selectors
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler
from multiprocessing.connection import wait

from . import metrics
from .logs import log
from .options import ServerOptions

HISTORY_SECONDS = 15 * 60
SMOOTHING_SECONDS = 5  # rates and percentiles on the status page cover this many seconds
# The listener: handler threads, seconds a client gets to send its request (and, again, to take
# its answer), and the most a request may send.
MAX_HANDLERS = 4
HANDLER_TIMEOUT = 10.0
MAX_REQUEST_BYTES = 8 * 1024
MAX_WAITING = 256  # connections whose request is still coming
MAX_QUEUED = 32  # complete requests waiting for a handler thread
# Where this process's metrics listener is, for the status page (None: metrics are off).
listener_address: tuple[str, int] | None = None


class MetricsHub:
    """Sums the snapshots of every process, keeps a history and serves both over HTTP."""

    def __init__(self, options: ServerOptions) -> None:
        self._lock = threading.Lock()
        self.latest: dict[str, dict] = {}  # worker -> its newest snapshot
        # Worker -> its slot 1..--workers, the ``worker`` label: a replacement takes the slot
        # its predecessor frees, so the label set stays the same (no new series per restart).
        self.slots: dict[str, int] = {}
        self.slot_count = options.workers
        self.retired = metrics.empty_counts()  # counts of workers that died
        self.restarts = 0
        self.history: collections.deque = collections.deque(maxlen=HISTORY_SECONDS)
        self._recent: collections.deque = collections.deque(maxlen=SMOOTHING_SECONDS + 1)
        self._readers: dict = {}  # Pipe end -> worker
        self._writers: dict = {}  # worker -> the parent's copy of the child's end
        self.http = _bind(options)
        self.http.hub = self
        threading.Thread(target=self.http.serve_forever, name="metrics-http", daemon=True).start()
        threading.Thread(target=self._collect, name="metrics-collect", daemon=True).start()

    # --- Receiving -------------------------------------------------------------------

    def channel(self, worker: str):
        """The end of a new Pipe a worker process sends its snapshots into."""
        reader, writer = multiprocessing.get_context("spawn").Pipe(duplex=False)
        with self._lock:
            self._readers[reader] = worker
            self._writers[worker] = writer
        return writer

    def started(self, worker: str) -> None:
        """The worker process has its end now: close ours, so its death ends the Pipe."""
        with self._lock:
            writer = self._writers.pop(worker, None)
        if writer is not None:
            writer.close()

    def worker_replaced(self, worker: str) -> None:
        """Keep a dead worker's counts in the totals (counters never go down) and count it."""
        self.worker_gone(worker, restart=True)

    def worker_gone(self, worker: str, restart: bool) -> None:
        """A worker ended: its counts stay in the totals; ``restart``: it died unasked."""
        with self._lock:
            self.restarts += restart
            self.slots.pop(worker, None)
            gone = self.latest.pop(worker, None)
            if gone is not None:
                metrics.add_counts(self.retired, gone)
            for reader, owner in self._readers.items():
                if owner == worker:  # what it sent after its last snapshot is lost with it
                    self._readers[reader] = None

    def receive(self, worker: str, snap: dict) -> None:
        snap["worker"] = worker
        with self._lock:
            self.latest[worker] = snap

    def local_sink(self, worker: str = "main"):
        """For a single process: snapshots go straight to the hub, no Pipe."""
        hub = self

        class Sink:
            def send(self, snap: dict) -> None:
                hub.receive(worker, snap)

        return Sink()

    def _collect(self) -> None:
        next_sample = time.monotonic() + 1
        while True:
            with self._lock:
                readers = list(self._readers)
            timeout = max(0.0, next_sample - time.monotonic())
            if readers:
                ready = wait(readers, timeout=timeout)
            else:
                time.sleep(timeout)
                ready = []
            for reader in ready:
                try:
                    snap = reader.recv()
                except (EOFError, OSError):  # the worker has ended
                    with self._lock:
                        self._readers.pop(reader, None)
                    reader.close()
                    continue
                with self._lock:
                    worker = self._readers.get(reader)
                    if worker is not None:  # None: a replaced worker's last words
                        snap["worker"] = worker
                        self.latest[worker] = snap
            if time.monotonic() >= next_sample:
                next_sample = max(next_sample + 1, time.monotonic() - 1)
                self._sample()

    # --- Summing ------------------------------------------------------------------------

    def totals(self) -> tuple[dict, list[dict], int]:
        with self._lock:
            total = metrics.empty_counts()
            metrics.add_counts(total, self.retired)
            processes = sorted(self.latest.values(), key=lambda snap: str(snap["worker"]))
            for snap in processes:
                metrics.add_counts(total, snap)
            self._assign_slots()
            for snap in processes:
                snap["slot"] = self.slots.get(snap["worker"])
            return total, processes, self.restarts

    def _assign_slots(self) -> None:
        """Give each reporting worker without a slot the lowest free one, oldest worker
        first; a new worker waits for its slot while the one it replaces still drains."""
        free = sorted(set(range(1, self.slot_count + 1)) - set(self.slots.values()))
        if not free:
            return
        waiting = [worker for worker in self.latest if worker not in self.slots]
        waiting.sort(key=lambda worker: (len(worker), worker))  # "10" after "9"
        for worker, slot in zip(waiting, free, strict=False):
            self.slots[worker] = slot

    def _sample(self) -> None:
        total, processes, _ = self.totals()
        now = time.time()
        self._recent.append((now, total))
        then, before = self._recent[0]
        seconds = max(now - then, 1.0)
        buckets = [a - b for a, b in zip(total["buckets"], before["buckets"], strict=True)]
        p50, p99 = (metrics.quantile(q, buckets) for q in (0.5, 0.99))
        shed_now = sum(v for k, v in total["events"].items() if k in ("shed queue full", "shed deadline"))
        shed_then = sum(v for k, v in before["events"].items() if k in ("shed queue full", "shed deadline"))
        self.history.append({
            "t": round(now, 1),
            "rps": round((sum(total["requests"]) - sum(before["requests"])) / seconds, 2),
            "shed": round((shed_now - shed_then) / seconds, 2),
            "in_flight": sum(p["in_flight"] for p in processes),
            "queue": sum(p["queue"] for p in processes),
            "p50": None if p50 is None else round(p50 * 1000, 2),
            "p99": None if p99 is None else round(p99 * 1000, 2),
        })

    # --- Serving ------------------------------------------------------------------------

    def prometheus(self) -> str:
        total, processes, restarts = self.totals()
        return metrics.render(total, processes, restarts)

    def status(self) -> dict:
        total, processes, restarts = self.totals()
        now = time.time()
        return {
            "now": now,
            "history": list(self.history),
            "totals": {"requests": sum(total["requests"]), "restarts": restarts,
                       "shed": sum(total["events"][k] for k in ("shed queue full", "shed deadline"))},
            "workers": [{
                "worker": p["worker"], "pid": p["pid"], "uptime": round(now - p["started"]),
                "requests": sum(p["requests"]), "memory": p["memory"], "cpu": round(p["cpu"], 2),
                "in_flight": p["in_flight"],
            } for p in processes],
        }


class _Handler(BaseHTTPRequestHandler):
    """Answers one request the listener has already read whole (``head``)."""

    server_version = "tornado_server-metrics"
    timeout = HANDLER_TIMEOUT  # to take the answer

    def __init__(self, request, client_address, server, head: bytes) -> None:
        self.head = head
        super().__init__(request, client_address, server)

    def setup(self) -> None:
        super().setup()
        self.rfile.close()
        self.rfile = io.BytesIO(self.head)

    def do_GET(self) -> None:
        hub: MetricsHub = self.server.hub
        path = self.path.partition("?")[0]
        if path == "/metrics":
            body, kind = hub.prometheus().encode(), "text/plain; version=0.0.4; charset=utf-8"
        elif path == "/status.json":
            body, kind = json.dumps(hub.status()).encode(), "application/json"
        else:
            body, kind, code = b"Not found: try /metrics\n", "text/plain; charset=utf-8", 404
            self.send_response(code)
            return self._finish(body, kind)
        self.send_response(200)
        self._finish(body, kind)

    def _finish(self, body: bytes, kind: str) -> None:
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args) -> None:  # scrapes would flood the log
        pass


_BUSY_TEXT = b"Busy: retry in a moment.\n"
_BUSY = (b"HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain\r\nRetry-After: 1\r\n"
         b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


class Listener:
    """The metrics listener: one thread waits (select) for each connection's request, at most
    ``MAX_REQUEST_BYTES`` within ``HANDLER_TIMEOUT`` seconds, and only a complete request goes
    to one of ``MAX_HANDLERS`` threads. Idle or slow sockets hold no thread; past
    ``MAX_WAITING`` of them the oldest is closed; past ``MAX_QUEUED`` complete requests
    waiting for a thread a new one gets 503."""

    def __init__(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.socket(family, socket.SOCK_STREAM)
        try:
            if hasattr(socket, "SO_EXCLUSIVEADDRUSE"):
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_EXCLUSIVEADDRUSE, 1)
            else:
                self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.socket.bind((host, port))
            self.socket.listen(64)
        except OSError:
            self.socket.close()
            raise
        self.socket.setblocking(False)
        self.server_address = self.socket.getsockname()[:2]
        self.hub: MetricsHub | None = None
        self.selector = selectors.DefaultSelector()
        self.selector.register(self.socket, selectors.EVENT_READ)
        self.waiting: dict = {}  # socket -> [deadline, bytes read, client address], oldest first
        # Daemon threads (an executor's would hold up the process's exit on a slow client).
        self.requests: queue.SimpleQueue = queue.SimpleQueue()
        for number in range(MAX_HANDLERS):
            threading.Thread(target=self._work, name=f"metrics-handler-{number + 1}", daemon=True).start()
        self.queued = 0  # complete requests handed to the handlers, not yet answered
        self._lock = threading.Lock()

    def serve_forever(self) -> None:
        while True:
            for key, _ in self.selector.select(timeout=0.5):
                if key.fileobj is self.socket:
                    self._accept()
                else:
                    self._read(key.fileobj)
            now = time.monotonic()
            for sock in [sock for sock, (deadline, *_) in self.waiting.items() if deadline < now]:
                self._drop(sock)

    def _accept(self) -> None:
        for _ in range(16):
            try:
                sock, address = self.socket.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                time.sleep(0.1)  # out of file descriptors: do not spin
                return
            sock.setblocking(False)
            if len(self.waiting) >= MAX_WAITING:
                self._drop(next(iter(self.waiting)))
            self.waiting[sock] = [time.monotonic() + HANDLER_TIMEOUT, b"", address]
            self.selector.register(sock, selectors.EVENT_READ)

    def _read(self, sock) -> None:
        entry = self.waiting.get(sock)
        if entry is None:
            return
        try:
            data = sock.recv(MAX_REQUEST_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        entry[1] += data
        if not data or len(entry[1]) > MAX_REQUEST_BYTES:
            self._drop(sock)
        elif b"\r\n\r\n" in entry[1] or b"\n\n" in entry[1]:
            self.selector.unregister(sock)
            del self.waiting[sock]
            with self._lock:
                busy = self.queued >= MAX_QUEUED
                if not busy:
                    self.queued += 1
            if busy:
                try:
                    sock.send(_BUSY)
                except OSError:
                    pass
                sock.close()
                return
            self.requests.put((sock, entry[2], entry[1]))

    def _drop(self, sock) -> None:
        self.waiting.pop(sock, None)
        try:
            self.selector.unregister(sock)
        except (KeyError, ValueError):
            pass
        sock.close()

    def _work(self) -> None:
        while True:
            self._handle(*self.requests.get())

    def _handle(self, sock, address, head: bytes) -> None:
        try:
            _Handler(sock, address, self, head)
        except Exception:
            pass  # a client that went away or did not take its answer: nothing to log
        finally:
            with self._lock:
                self.queued -= 1
            try:
                sock.close()
            except OSError:
                pass


def _bind(options: ServerOptions) -> Listener:
    host, port = options.metrics
    try:
        return Listener(host, port)
    except OSError as exc:
        raise SystemExit(
            f"ERROR: cannot listen for metrics on {host}:{port}: {exc.strerror or exc}. "
            "Is something else using this port? Choose another with --metrics."
        ) from None


def start_hub(options: ServerOptions) -> MetricsHub | None:
    """The hub for this supervisor or single process; None while --metrics is off."""
    global listener_address
    if options.metrics is None:
        return None
    hub = MetricsHub(options)
    listener_address = options.metrics
    log.info("Metrics at http://%s/metrics", _url_host(options.metrics))
    return hub


def _url_host(address: tuple[str, int]) -> str:
    host, port = address
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":  # IPv6 only on Windows: 127.0.0.1 would not reach it
        host = "::1"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def start_reporter(server_process, container, http_server) -> None:
    """Count in this process and send a snapshot every second to ``server_process.metrics_sink``."""
    global listener_address
    sink = server_process.metrics_sink
    if sink is None:
        return
    listener_address = server_process.options.metrics
    counters = container.metrics = metrics.Counters()

    def report() -> None:
        loop = server_process.loop
        while loop is not None and not loop.is_closed():
            try:
                sink.send(metrics.snapshot(counters, container, http_server))
            except (OSError, ValueError, EOFError):
                return  # the supervisor is gone; the worker stops on its own
            time.sleep(1)

    threading.Thread(target=report, name="metrics-report", daemon=True).start()


def single_process_sink(options: ServerOptions):
    """For one serving process: start the hub here and report to it directly (or None)."""
    hub = start_hub(options)
    return hub.local_sink() if hub else None


def status_url() -> str | None:
    """Where this process's hub serves ``/status.json`` (for the status page), if metrics are on."""
    return None if listener_address is None else f"http://{_url_host(listener_address)}/status.json"
