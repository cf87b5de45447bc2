"""One serving process: its event loop, its stop signals and the graceful drain.

``Server.run()`` serves until ``stop()`` (thread-safe) or a signal, then closes the port,
lets requests in flight finish for ``--drain-timeout`` seconds, and returns an exit code.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback

from . import __version__, lan, worker_link
from .application import setup_django, tornado_routes
from .connections import TornadoServer, bind, raise_open_file_limit, ssl_context
from .container import ThreadedWSGIContainer
from .control import SINGLE_PROCESS_RELOAD, ControlChannel, status_answer
from .logs import log, log_start_failure, off_the_loop, tolerate_unencodable_output
from .metrics_hub import single_process_sink, start_reporter
from .options import IS_WINDOWS, ServerOptions
from .project import Project

# The event loop and the application's threads share the GIL, which Python takes from a
# running thread every 5 ms by default; each time, the loop waits again to get it back.
# 20 ms served 15-20 % more requests per second (benchmarks/README.md); a view that computes
# without a pause delays the loop by at most that much.
SWITCH_INTERVAL = 0.02


def freeze_startup_heap() -> None:
    """Leave what start-up made (Django, its apps, their modules: most of the heap) out of
    every later garbage collection. Each request leaves a few reference cycles (Django's
    request among them), so collections run every few dozen requests, and the rarer full
    ones walked that whole heap: 7 % more requests per second on the hello benchmark."""
    gc.collect()
    gc.freeze()


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
        # A stop may ask for a shorter drain (a Windows service when Windows shuts down).
        self.drain_timeout = options.drain_timeout
        self.exit_code = 0
        self.metrics_sink = None  # where this process reports its counts (--metrics)
        # Replaced by a new worker: keep answering requests on open connections until each
        # closes (see _retire()), so that no client sees its connection cut.
        self.retire = False
        self.container: ThreadedWSGIContainer | None = None  # while it serves
        self.started: float | None = None  # when it began to serve (time.time())

    @property
    def requests(self) -> int:
        """Requests answered since it began to serve."""
        return self.container.metrics.answered if self.container is not None else 0

    def stop(self, reason: str = "stop requested", drain_timeout: float | None = None,
             retire: bool = False) -> None:
        """Begin a graceful shutdown; safe to call from any thread or a signal handler, before
        ``run()``, during its start-up, or after it returned (then it does nothing).
        ``drain_timeout`` shortens the drain, never lengthens it."""
        if drain_timeout is not None:
            self.drain_timeout = min(self.drain_timeout, drain_timeout)
        self.retire = self.retire or retire
        # Flag first, loop second; _serve() publishes the loop first and reads the flag
        # second: whichever runs last sees the other, so a stop is never lost.
        self._pending_stop = True
        loop = self.loop
        if loop is None:
            return
        try:
            loop.call_soon_threadsafe(self._begin_stop, reason)
        except RuntimeError:  # the loop is closed: run() has returned
            pass

    def _begin_stop(self, reason: str) -> None:
        if self._stop_requested.is_set():
            return
        log.info("Shutting down (%s): finishing requests in flight, up to %gs",
                 reason, self.drain_timeout)
        self._stop_requested.set()

    def run(self, application) -> int:
        loop = new_event_loop()
        asyncio.set_event_loop(loop)
        previous_interval = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        freeze_startup_heap()
        try:
            with off_the_loop():
                return loop.run_until_complete(self._serve(application))
        finally:
            sys.setswitchinterval(previous_interval)
            loop.close()
            asyncio.set_event_loop(None)

    async def _serve(self, application) -> int:
        options = self.options
        self._stop_requested = asyncio.Event()
        self.loop = asyncio.get_running_loop()  # see stop()
        if self._pending_stop:
            self._stop_requested.set()
        tornado_app, tornado_paths = tornado_routes(options)
        container = self.container = ThreadedWSGIContainer(application, options, tornado_app, tornado_paths)
        server = TornadoServer(
            container,
            max_connections=options.max_connections,
            max_connections_per_ip=options.max_connections_per_ip,
            ssl_options=ssl_context(options),
            # Tornado closes the socket past its own limit; ours (a little lower) answers
            # 431. Kept close, as every byte of a header block is parsed on the loop.
            max_header_size=options.max_header_size + 4 * 1024,
            # Ours answers 413 first; Tornado's (higher) only stops a runaway chunked body.
            max_body_size=options.max_body_size + 1024 * 1024,
            # --body-timeout and --min-body-rate are kept by RequestTask.watch_body().
        )
        sockets = self.sockets or bind(options)
        server.add_sockets(sockets)
        start_reporter(self, container, server)
        waker = PeriodicCallback(lambda: None, 200) if IS_WINDOWS else None
        if waker:  # lets Ctrl+C reach Python while select() waits
            waker.start()
        recycler = self._recycle_after(options, container)
        counter = self._report_requests(container)
        self.started = time.time()
        if self.on_ready:
            self.on_ready()
        await self._stop_requested.wait()

        server.stop()  # no new connections; the port is free again
        if recycler:
            recycler.stop()
        if counter:
            counter.stop()
        draining_since = time.monotonic()
        if self.retire:
            await self._retire(server, container, draining_since)
        container.shutting_down = True
        container.close_idle()
        # Read on every turn: a later stop() may shorten it.
        while ((container.in_flight or container.sending)
               and time.monotonic() < draining_since + self.drain_timeout):
            await asyncio.sleep(0.05)
        if container.in_flight:
            log.warning("%d request(s) still running after %gs; closing them",
                        container.in_flight, self.drain_timeout)
        server.close_detached()
        try:
            await asyncio.wait_for(server.close_all_connections(), timeout=5)
        except asyncio.TimeoutError:
            pass
        container.stop_queue(wait=not container.in_flight)
        if waker:
            waker.stop()
        log.info("Stopped.")
        self.unfinished = container.in_flight
        if self.unfinished and self.hard_exit:
            # A view that never returns must not keep the process alive.
            logging.shutdown()
            os._exit(self.exit_code)
        return self.exit_code


    async def _retire(self, server: TornadoServer, container: ThreadedWSGIContainer, since: float) -> None:
        """A new worker serves in our place: answer every request that still comes on our
        open connections, each answer with ``Connection: close``, and close a connection
        only once it has sat idle for a moment (a client about to reuse it has done so by
        then), so no client ever finds its request cut off."""
        container.retiring = True
        idle_since: dict = {}
        while server.open_connections() and time.monotonic() < since + self.drain_timeout:
            now = time.monotonic()
            idle_since = {stream: idle_since.get(stream, now) for stream in container.idle}
            for stream, first_seen in idle_since.items():
                if now - first_seen > RETIRE_IDLE_GRACE:
                    container.idle.pop(stream, None)
                    stream.close()
            await asyncio.sleep(0.05)

    def control_command(self, command: str) -> dict:
        """What the control channel of a one-process server runs."""
        return single_process_command(command, self)

    def _recycle_after(self, options: ServerOptions, container: ThreadedWSGIContainer):
        """--max-requests: a worker that started about that many asks to be replaced; if the
        supervisor could not replace it, it asks again after as many requests more."""
        if not options.max_requests or not worker_link.is_worker():
            return None
        limit = options.max_requests + random.randint(0, options.max_requests_jitter)
        asked = False

        def check() -> None:
            nonlocal limit, asked
            if asked and not worker_link.replacement_asked():  # the supervisor could not
                asked, limit = False, container.requests_started + options.max_requests
            if not asked and container.requests_started >= limit:
                asked = worker_link.ask_for_replacement(
                    worker_link.RECYCLE, f"it started {container.requests_started} requests "
                    f"(--max-requests {options.max_requests})")

        recycler = PeriodicCallback(check, 100)
        recycler.start()
        return recycler


    def _report_requests(self, container: ThreadedWSGIContainer):
        """A worker tells its supervisor how many requests it answered, each second it
        answered more (for ``status``)."""
        if not worker_link.is_worker():
            return None
        told = 0

        def report() -> None:
            nonlocal told
            if container.metrics.answered != told:
                told = container.metrics.answered
                worker_link.send(f"requests {told}")

        counter = PeriodicCallback(report, REQUEST_COUNT_INTERVAL * 1000)
        counter.start()
        return counter


# A worker reports its request count to the supervisor this often (seconds) while it changes.
REQUEST_COUNT_INTERVAL = 1.0
# A retiring worker closes a keep-alive connection idle this long (seconds).
RETIRE_IDLE_GRACE = 1.0


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


def serve_single(project: Project, options: ServerOptions) -> int:
    tolerate_unencodable_output()
    raise_open_file_limit()
    try:
        application = setup_django(options)
        sockets = bind(options)
        server = Server(options, sockets, on_ready=lambda: announce(project, options))
        server.metrics_sink = single_process_sink(options)
    except BaseException as exc:  # the console shows why; the log file keeps it
        log_start_failure(options.log_file, exc)
        raise
    install_stop_signals(server.stop, force_exit)
    if options.max_requests:
        log.warning("--max-requests needs --workers 2 or more: one process is never recycled")
    control = ControlChannel(project, options, server.control_command).start()
    try:
        return server.run(application)
    finally:
        control.close()


def single_process_command(command: str, server: Server | None = None) -> dict:
    """The control channel of a one-process server: ``status``; ``reload`` is refused."""
    if command == "reload":
        return {"ok": False, "error": SINGLE_PROCESS_RELOAD}
    if command == "status" and server is not None:
        return status_answer(server.options, "single", server.started, server.requests, [])
    return {"ok": False, "error": f"unknown command {command!r}"}


def announce(project: Project, options: ServerOptions) -> None:
    everywhere = options.host in lan.EVERY_INTERFACE
    processes = f"{options.workers} processes" if options.workers > 1 else "1 process"
    lines = [f"{project.name} is running at {listening_url(options)}{' (all interfaces)' if everywhere else ''}"
             f" - {options.threads} threads x {processes}. Server {__version__}; press Ctrl+C to stop."]
    if everywhere:  # the loopback URL above is not what other computers type
        lines += lan.network_lines(options.scheme, options.port, socket.gethostname(),
                                   lan.machine_addresses(), allowed_hosts(options))
    print("\n".join(lines), flush=True)


def allowed_hosts(options: ServerOptions) -> list[str] | None:
    """Django's ALLOWED_HOSTS (the supervisor reads only the settings module), or None."""
    try:
        from django.conf import settings

        if not settings.configured:
            os.environ["DJANGO_SETTINGS_MODULE"] = options.settings
        return list(settings.ALLOWED_HOSTS)
    except Exception:  # the banner never stops the server
        return None
