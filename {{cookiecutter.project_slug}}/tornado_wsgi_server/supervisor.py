"""Worker processes: the supervisor binds the port once and hands it to spawned children.

Spawn is the only start method Windows has, so every OS uses it. A worker that dies is
replaced; a worker whose supervisor is gone stops by itself.
"""

from __future__ import annotations

import collections
import multiprocessing
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .application import setup_django
from .connections import bind, raise_open_file_limit
from .logs import log, setup_logging, tolerate_unencodable_output
from .metrics_hub import start_hub
from .options import ServerOptions
from .process import Server, announce, force_exit, install_stop_signals
from .project import Project


def worker_main(options: ServerOptions, sockets: list, conn, number: int, metrics_conn=None) -> None:
    """Entry point of a worker process (spawned, so it starts fresh on every OS)."""
    # The supervisor owns Ctrl+C / Ctrl+Break and tells us to stop through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    tolerate_unencodable_output()
    raise_open_file_limit()
    application = setup_django(options)
    server = Server(options, sockets)
    server.metrics_sink = metrics_conn

    def ready() -> None:
        conn.send("ready")
        threading.Thread(target=watch_supervisor, args=(conn, server), daemon=True).start()

    server.on_ready = ready
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop("SIGTERM"))
    sys.exit(server.run(application))


def watch_supervisor(conn, server: Server) -> None:
    """Stop when the supervisor says so, or when it is gone (no orphan workers)."""
    drain_timeout = None
    try:
        message, _, drain = conn.recv().partition(" ")
        reason = f"supervisor: {message}"
        drain_timeout = float(drain) if drain else None
    except (EOFError, OSError):
        reason = "supervisor is gone"
    server.stop(reason, drain_timeout)


@dataclass
class Worker:
    number: int
    process: Any
    conn: Any
    ready: bool = False
    started: float = field(default_factory=time.monotonic)


class Supervisor:
    """Runs ``workers`` processes on one listening socket; respawns any that die."""

    def __init__(self, project: Project, options: ServerOptions) -> None:
        self.project = project
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, Worker] = {}
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.drain_timeout = options.drain_timeout
        self.recent_deaths: collections.deque = collections.deque(maxlen=10)
        self.metrics = start_hub(options)  # None unless --metrics

    def stop(self, reason: str = "stop requested", drain_timeout: float | None = None) -> None:
        """Stop every worker gracefully; ``drain_timeout`` shortens their drain."""
        if drain_timeout is not None:
            self.drain_timeout = min(self.drain_timeout, drain_timeout)
        self.stop_reason = reason
        self.stopping.set()

    def start_worker(self, number: int, sockets: list) -> None:
        parent_conn, child_conn = self.context.Pipe()
        process = self.context.Process(
            target=worker_main, args=(self.options, sockets, child_conn, number,
                                      self.metrics and self.metrics.channel(str(number))),
            name=f"tornado-worker-{number}",
        )
        process.start()
        child_conn.close()
        if self.metrics:
            self.metrics.started(str(number))
        self.workers[number] = Worker(number, process, parent_conn)

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
                    if self.metrics:
                        self.metrics.worker_replaced(str(worker.number))
                    if len(self.recent_deaths) == self.recent_deaths.maxlen and (
                        self.recent_deaths[-1] - self.recent_deaths[0] < 60
                    ):
                        time.sleep(1)  # crashing in a loop: do not spin
                    self.start_worker(worker.number, sockets)
            if not announced and all(w.ready for w in self.workers.values()):
                announced = True
                announce(self.project, self.options)
        for sock in sockets:
            sock.close()
        self.shutdown()
        return 0

    def shutdown(self) -> None:
        log.info("Stopping %d worker(s) (%s)", len(self.workers), self.stop_reason)
        for worker in self.workers.values():
            try:
                shorter = self.drain_timeout < self.options.drain_timeout
                worker.conn.send(f"stop {self.drain_timeout}" if shorter else "stop")
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + self.drain_timeout + 10
        for worker in self.workers.values():
            worker.process.join(max(0.1, deadline - time.monotonic()))
            if worker.process.is_alive():
                log.warning("Worker %d did not stop in time; killing it.", worker.number)
                worker.process.kill()
                worker.process.join(5)
        log.info("Stopped.")


def serve_workers(project: Project, options: ServerOptions) -> int:
    tolerate_unencodable_output()
    setup_logging(options)
    supervisor = Supervisor(project, options)
    install_stop_signals(supervisor.stop, force_exit)
    return supervisor.run()


def ask_to_be_replaced(reason: str) -> bool:
    """Ask the supervisor for a fresh worker in this one's place; False if there is none."""
    return False
