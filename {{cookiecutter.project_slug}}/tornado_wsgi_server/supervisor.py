"""Worker processes: the supervisor binds the port once and hands it to spawned children.

Spawn is the only start method Windows has, so every OS uses it. A worker that dies is
replaced; a worker whose supervisor is gone stops by itself. A worker is *replaced* (reload,
--max-requests, all threads stuck) by starting the new one first and stopping the old one
once the new one serves, so no request fails.

Replacements run one at a time, and at most one per worker: a worker that is retiring or
already being replaced is not replaced again. Reload requests that overlap are merged.
"""

from __future__ import annotations

import collections
import multiprocessing
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import worker_link
from .application import setup_django
from .connections import bind, raise_open_file_limit
from .control import (
    OVERDUE_MARGIN,
    START_TIMEOUT,
    ControlChannel,
    ReloadResult,
    reload_timeout,
    status_answer,
)
from .logs import describe_failure, log, log_start_failure, setup_logging, tolerate_unencodable_output
from .metrics_hub import start_hub
from .options import ServerOptions
from .process import Server, announce, force_exit, install_stop_signals
from .project import Project

# An old worker whose threads are all stuck gets this long for the rest of its requests.
STUCK_DRAIN_TIMEOUT = 5.0


def ask_to_be_replaced(reason: str) -> bool:
    """Called in a worker (from its event-loop thread) whose threads are all stuck: the
    supervisor starts a new worker, then stops this one after a short drain. False when this
    process is not a supervised worker (a one-process server), True once the supervisor
    was told."""
    return worker_link.ask_for_replacement(worker_link.STUCK, reason)


def worker_main(options: ServerOptions, sockets: list, conn, number: int, metrics_conn=None) -> None:
    """Entry point of a worker process (spawned, so it starts fresh on every OS)."""
    # The supervisor owns Ctrl+C / Ctrl+Break and tells us to stop through the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "SIGBREAK"):
        signal.signal(signal.SIGBREAK, signal.SIG_IGN)
    tolerate_unencodable_output()
    raise_open_file_limit()
    worker_link.connect(conn)
    try:
        application = setup_django(options)
        server = Server(options, sockets)
        server.metrics_sink = metrics_conn
    except BaseException as exc:  # the supervisor says why (a reload keeps the old workers)
        worker_link.send(f"failed {describe_failure(exc)}")
        raise

    def ready() -> None:
        worker_link.send("ready")
        threading.Thread(target=watch_supervisor, args=(conn, server), daemon=True).start()

    server.on_ready = ready
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, lambda signum, frame: server.stop("SIGTERM"))
    sys.exit(server.run(application))


def watch_supervisor(conn, server: Server) -> None:
    """Stop when the supervisor says so, or when it is gone (no orphan workers)."""
    drain_timeout = None
    retire = False
    try:
        while True:
            message, _, drain = conn.recv().partition(" ")
            if message != "replace-failed":
                break
            worker_link.replacement_failed()  # no new worker: this one serves on
        retire = message == "retire"
        reason = "replaced by a new worker" if retire else f"supervisor: {message}"
        drain_timeout = float(drain) if drain else None
    except (EOFError, OSError):
        reason = "supervisor is gone"
    server.stop(reason, drain_timeout, retire=retire)


@dataclass
class Worker:
    number: int
    process: Any
    conn: Any
    ready: bool = False
    started: float = field(default_factory=time.monotonic)
    failure: str = ""  # why it could not start, as it said
    requests: int = 0  # answered so far, as it last said
    retiring_since: float | None = None  # told to stop: its replacement serves
    drain_timeout: float = 0.0
    reloads: list[ReloadResult] = field(default_factory=list)  # the reloads waiting for it to end


@dataclass
class Replacement:
    """Replace worker ``old``: start ``new``, and once it serves, retire ``old``."""

    old: int
    kind: str  # "reload", worker_link.RECYCLE or worker_link.STUCK
    reason: str
    results: list[ReloadResult] = field(default_factory=list)  # the reloads this is part of
    new: int | None = None
    began: float = 0.0


class Supervisor:
    """Runs ``workers`` processes on one listening socket; respawns any that die."""

    def __init__(self, project: Project, options: ServerOptions,
                 on_event: Callable[[str, str], None] | None = None) -> None:
        self.project = project
        self.options = options
        self.context = multiprocessing.get_context("spawn")
        self.workers: dict[int, Worker] = {}
        self.stopping = threading.Event()
        self.stop_reason = ""
        self.drain_timeout = options.drain_timeout
        self.recent_deaths: collections.deque = collections.deque(maxlen=10)
        self.on_event = on_event  # (kind, text): the Windows service's Event Log
        self.next_number = 1
        self.replacements: collections.deque[Replacement] = collections.deque()
        self.current: Replacement | None = None
        # A reload asked for and not begun yet (later requests join it), and the one under way.
        self.pending_reload: ReloadResult | None = None
        self.active_reload: ReloadResult | None = None
        self._reload_lock = threading.Lock()
        self._closed = False  # shut down: no more reloads
        self.control: ControlChannel | None = None
        self.metrics = start_hub(options)  # None unless --metrics
        self.started: float | None = None  # when every worker first served (time.time())
        self.requests_of_ended = 0  # received by workers that have ended

    def event(self, kind: str, text: str) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, text)
            except Exception:  # the Event Log must never stop the server
                log.exception("Could not write to the event log")

    def stop(self, reason: str = "stop requested", drain_timeout: float | None = None) -> None:
        """Stop every worker gracefully; ``drain_timeout`` shortens their drain."""
        if drain_timeout is not None:
            self.drain_timeout = min(self.drain_timeout, drain_timeout)
        self.stop_reason = reason
        self.stopping.set()

    def reload(self, timeout: float | None = None) -> ReloadResult:
        """Replace every worker with a new process running the current code, one by one;
        any thread. The result says when all are new, or why the reload stopped; the wait
        ends after ``timeout`` (default: reload_timeout()) in any case.

        A request joins the reload that is asked for but not begun yet, if there is one: no
        new worker has started since, so its end is what this request needs too. Else its
        reload begins once the one under way has ended."""
        with self._reload_lock:
            if self._closed:
                result = ReloadResult()
                result.finish(error="the server is stopping")
                return result
            if self.pending_reload is None:
                self.pending_reload = ReloadResult()
            result = self.pending_reload
        result.wait(reload_timeout(self.options) if timeout is None else timeout)
        return result

    def _begin_reload(self) -> None:
        """Called when no replacement runs: queue one for each worker that is not retiring,
        or join the one queued for it (its new worker will start after this request)."""
        with self._reload_lock:
            result, self.pending_reload = self.pending_reload, None
        self.active_reload = result
        olds = [w.number for w in self.workers.values() if w.retiring_since is None]
        log.info("Reload: replacing %d worker(s) with new processes running the current code", len(olds))
        queued = {r.old: r for r in self.replacements}
        for number in olds:
            if number in queued:
                queued[number].results.append(result)
            else:
                self.replacements.append(Replacement(number, "reload", "reload requested", [result]))
        result.begin(len(olds))

    def start_worker(self, sockets: list) -> Worker:
        number = self.next_number
        self.next_number += 1
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
        worker = self.workers[number] = Worker(number, process, parent_conn)
        return worker

    def run(self) -> int:
        from multiprocessing.connection import wait

        try:
            sockets = bind(self.options)
        except BaseException as exc:
            log_start_failure(self.options.log_file, exc)
            raise
        self.control = ControlChannel(self.project, self.options, self.control_command).start()
        try:
            return self._run(sockets, wait)
        finally:
            self.control.close()

    def _run(self, sockets: list, wait) -> int:
        for _ in range(self.options.workers):
            self.start_worker(sockets)
        announced = False
        while not self.stopping.is_set():
            sentinels = {w.process.sentinel: w for w in self.workers.values()}
            conns = {w.conn: w for w in self.workers.values()}
            for ready in wait(list(sentinels) + list(conns), timeout=0.2):
                if ready in conns:
                    self._receive(conns[ready])
                elif ready in sentinels:
                    worker = sentinels[ready]
                    if self.stopping.is_set() or worker.number not in self.workers:
                        break
                    if not self._ended(worker, sockets, announced):
                        self.shutdown()
                        return 1
            if self.active_reload is not None and self.active_reload.done.is_set():
                self.active_reload = None
            if announced and self.pending_reload is not None and self.current is None and (
                    self.active_reload is None):
                self._begin_reload()
            self._advance_replacements(sockets)
            self._kill_overdue()
            if not announced and all(w.ready for w in self.workers.values()):
                announced = True
                self.started = time.time()
                announce(self.project, self.options)
        for sock in sockets:
            sock.close()
        self.shutdown()
        return 0

    def _receive(self, worker: Worker) -> bool:
        """Handle one message from ``worker``; False at the end of its pipe."""
        try:
            message = worker.conn.recv()
        except (EOFError, OSError):  # it is ending: its sentinel says so next
            return False
        kind, _, text = str(message).partition(" ")
        if kind == "ready":
            worker.ready = True
        elif kind == "failed":
            worker.failure = text
        elif kind == "requests" and text.isdigit():
            worker.requests = int(text)
        elif kind == "replace" and worker.retiring_since is None:
            why, _, reason = text.partition(" ")
            if not any(r.old == worker.number for r in self._all_replacements()):
                log.info("Worker %d asks to be replaced: %s", worker.number, reason)
                self.replacements.append(Replacement(worker.number, why, reason))
        return True

    def _all_replacements(self) -> list[Replacement]:
        return [*self.replacements, *([self.current] if self.current else [])]

    def _ended(self, worker: Worker, sockets: list, announced: bool) -> bool:
        """A worker process ended; False when the whole server must stop."""
        worker.process.join(1)
        code = worker.process.exitcode
        try:  # what it said last ("failed ...") may be read after its end
            while worker.conn.poll() and self._receive(worker):
                pass
        except (EOFError, OSError):
            pass
        worker.conn.close()
        del self.workers[worker.number]
        self.requests_of_ended += worker.requests
        if self.metrics:  # its counts stay in the totals; a crash also counts as a restart
            crashed = worker.retiring_since is None and worker.ready
            self.metrics.worker_gone(str(worker.number), restart=crashed)
        current = self.current
        if worker.retiring_since is not None:
            log.info("Worker %d (pid %s) stopped after %.1fs of drain", worker.number,
                     worker.process.pid, time.monotonic() - worker.retiring_since)
            for result in worker.reloads:
                result.old_gone()
            return True
        if current is not None and current.new == worker.number:
            why = worker.failure or f"it exited with code {code} before serving"
            self._replacement_failed(f"the new worker {worker.number} could not start: {why}")
            return True
        if not worker.ready and not announced:
            log.error("Worker %d failed to start: %s; stopping.", worker.number,
                      worker.failure or f"it exited with code {code}")
            self.stop("a worker failed to start")
            return False
        for dropped in [r for r in self.replacements if r.old == worker.number]:
            self.replacements.remove(dropped)
            for result in dropped.results:  # the one started in its place runs the new code
                result.replaced(0.0)
                result.old_gone()
        if current is not None and current.old == worker.number:
            current.old = 0  # its replacement is on the way: no second one
            for result in current.results:
                result.old_gone()
        text = f"Worker {worker.number} (pid {worker.process.pid}) exited unexpectedly with code {code}"
        self.event("worker_crash", text)
        if current is not None and current.old == 0:
            log.warning("%s; its replacement is starting.", text)
            return True
        log.warning("%s; starting a new one.", text)
        self.recent_deaths.append(time.monotonic())
        if len(self.recent_deaths) == self.recent_deaths.maxlen and (
            self.recent_deaths[-1] - self.recent_deaths[0] < 60
        ):
            time.sleep(1)  # crashing in a loop: do not spin
        self.start_worker(sockets)
        return True

    def _replacement_failed(self, why: str) -> None:
        current, self.current = self.current, None
        if current.kind == "reload" or current.results:
            text = f"Reload failed, the old workers keep serving: {why}"
        else:
            text = f"Worker {current.old} could not be replaced ({current.reason}); it serves on: {why}"
        log.error("%s", text)
        self.event("reload_failed", text)
        for result in current.results:
            # The rest of the same reload would fail the same way.
            result.finish(error=why)
            for replacement in self.replacements:
                if result in replacement.results:
                    replacement.results.remove(result)
        kept, dropped = collections.deque(), [current]
        for replacement in self.replacements:
            (kept.append if replacement.results or replacement.kind != "reload" else dropped.append)(replacement)
        self.replacements = kept
        for replacement in dropped:
            old = self.workers.get(replacement.old)
            if old is not None:  # it may ask again later (another --max-requests, stuck again)
                try:
                    old.conn.send("replace-failed")
                except (OSError, ValueError):
                    pass

    def _advance_replacements(self, sockets: list) -> None:
        current = self.current
        if current is not None:
            new = self.workers.get(current.new)
            if new is not None and new.ready:
                self._retire(current, new)
            elif new is not None and time.monotonic() - new.started > START_TIMEOUT:
                new.process.kill()  # its sentinel then fails the replacement
            return
        while self.replacements and self.current is None:
            replacement = self.replacements.popleft()
            old = self.workers.get(replacement.old)
            if old is None or old.retiring_since is not None:
                # Gone (the worker started in its place runs the current code) or on its way out.
                for result in replacement.results:
                    result.replaced(0.0)
                    if old is None:
                        result.old_gone()
                    else:
                        old.reloads.append(result)
                continue
            replacement.began = time.monotonic()
            replacement.new = self.start_worker(sockets).number
            self.current = replacement

    def _retire(self, current: Replacement, new: Worker) -> None:
        self.current = None
        seconds = time.monotonic() - current.began
        old = self.workers.get(current.old)
        if old is not None and old.retiring_since is not None:  # never told twice
            old.reloads.extend(current.results)
        elif old is not None:
            drain = self.options.drain_timeout
            if current.kind == worker_link.STUCK:
                drain = min(drain, STUCK_DRAIN_TIMEOUT)
            old.retiring_since, old.drain_timeout = time.monotonic(), drain
            old.reloads.extend(current.results)
            try:
                old.conn.send(f"retire {drain}")
            except (OSError, ValueError):
                pass
            text = (f"Worker {old.number} (pid {old.process.pid}) replaced by worker {new.number} "
                    f"(pid {new.process.pid}, serving after {seconds:.1f}s): {current.reason}")
            if current.kind == "reload":  # the reload's end is one event of its own
                log.info("%s", text)
            else:
                log.warning("%s", text)
                self.event("watchdog" if current.kind == worker_link.STUCK else "worker_replaced", text)
        for result in current.results:
            result.replaced(seconds)

    def _kill_overdue(self) -> None:
        """An old worker that did not finish its drain (stuck threads) is ended."""
        for worker in self.workers.values():
            if worker.retiring_since is not None and worker.process.is_alive() and (
                time.monotonic() - worker.retiring_since > worker.drain_timeout + OVERDUE_MARGIN
            ):
                log.warning("Worker %d did not stop in time; killing it.", worker.number)
                worker.process.kill()

    def control_command(self, command: str) -> dict:
        """What the control channel runs: ``reload`` or ``status``."""
        if command == "reload":
            return self.reload().as_answer(reload_timeout(self.options))
        if command == "status":
            current = list(self.workers.values())
            workers = [{"number": w.number, "pid": w.process.pid, "ready": w.ready,
                        "retiring": w.retiring_since is not None, "requests": w.requests,
                        "age": round(time.monotonic() - w.started, 1)} for w in current]
            requests = self.requests_of_ended + sum(w.requests for w in current)
            return status_answer(self.options, "workers", self.started, requests, workers)
        return {"ok": False, "error": f"unknown command {command!r}"}

    def shutdown(self) -> None:
        with self._reload_lock:  # a reload asked for as we stop, or later, ends now
            self._closed = True
            waiting = [r for r in (self.pending_reload, self.active_reload) if r is not None]
        for replacement in self._all_replacements():
            waiting += replacement.results
        for result in waiting:
            result.finish(error="the server is stopping")
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
    try:
        supervisor = Supervisor(project, options)
    except BaseException as exc:  # its metrics port is taken
        log_start_failure(options.log_file, exc)
        raise
    install_stop_signals(supervisor.stop, force_exit)
    return supervisor.run()
