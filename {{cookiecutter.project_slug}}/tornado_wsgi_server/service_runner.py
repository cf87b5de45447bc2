"""The Windows service without pywin32, tested on every OS: its options, the runner that
serves on a background thread (one process or a supervisor), and the lifecycle that decides
what the service manager is told and when. windows_service.py is the pywin32 shell.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import sys
import threading
import time
from pathlib import Path

from .application import setup_django
from .connections import bind, raise_open_file_limit
from .control import ControlChannel, reload_timeout
from .logs import log_start_failure, setup_logging, start_failure_log_file, tolerate_unencodable_output
from .metrics_hub import single_process_sink
from .options import ServerOptions, load_options, read_dotenv
from .process import Server, announce, force_exit, install_stop_signals, listening_url, single_process_command
from .project import Project
from .supervisor import Supervisor
from .tornado_check import check_tornado

DEFAULT_LOG_FILE = Path("logs") / "server.log"

log = logging.getLogger("windows_service")


# Event Log IDs (Application log, source = the service name), one per kind of event.
EVENT_IDS = {
    "started": 100,  # serving: the port answers
    "stopped": 101,  # a clean stop
    "start_failed": 102,  # could not start (settings, port in use...)
    "failed": 103,  # stopped unexpectedly
    "unfinished": 104,  # requests cut off at the end of the drain
    "reloaded": 110,  # every worker replaced by one running the current code
    "reload_failed": 111,  # a new worker could not start; the old ones keep serving
    "worker_crash": 120,  # a worker process died; a new one is started
    "worker_replaced": 121,  # a worker recycled after --max-requests
    "watchdog": 130,  # a worker whose threads were all stuck was replaced
    "firewall": 140,  # the firewall rule still opens another port: the account may not change it
}
EVENT_LEVELS = {"start_failed": "error", "failed": "error", "reload_failed": "error",
                "unfinished": "warning", "worker_crash": "warning", "watchdog": "warning",
                "firewall": "warning"}


def event_record(kind: str, text: str) -> tuple[int, str, str]:
    """(event ID, level "info"/"warning"/"error", text) of an event of ``kind``."""
    return EVENT_IDS[kind], EVENT_LEVELS.get(kind, "info"), text


class ServiceError(Exception):
    """The service cannot start; the message says why."""


# ======================================================================================
# Plain functions and the runner: no Windows needed, tested on every OS.
# ======================================================================================


def service_names(project: Project) -> tuple[str, str, str]:
    """(name, display name, description); the name is what `sc` and `net stop` take."""
    return (project.slug, f"{project.name} (Django on Tornado)",
            f"Serves {project.name} with tornado_server.py from {project.directory}")


def build_options(project: Project, server_args: list[str] | tuple = (),
                  environ: dict | None = None) -> ServerOptions:
    """Server options the service runs with: ``server_args``, then the environment and
    ``project_dir/.env``, then the defaults; a service always logs to a file.

    Works whatever the current directory is; relative paths are taken from the project.
    """
    project_dir = Path(project.directory)
    read_dotenv(project_dir / ".env")
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            options = load_options(project, list(server_args), environ)
    except SystemExit as exc:
        message = errors.getvalue().strip().splitlines()
        raise ServiceError(message[-1] if message else f"bad server options (exit {exc.code})") from None
    log_file = Path(options.log_file) if options.log_file else DEFAULT_LOG_FILE
    if not log_file.is_absolute():
        log_file = project_dir / log_file
    options.log_file = str(log_file)
    return options


def worker_python(stored: str | None = None) -> str:
    """The python.exe that runs --workers processes when the host is pythonservice.exe.

    multiprocessing would start children with pythonservice.exe, or look for python.exe
    in the virtual environment's root where there is none.

    This is the venv's python.exe, a small launcher that starts the base interpreter as
    its child, so a worker's Process.pid is the launcher's. That is kept on purpose: the
    launcher is what sets the venv up for the child (sys.prefix, site-packages and their
    .pth files, which make pywin32 importable), exits with the worker's exit code, and
    multiprocessing hands pipes and sockets to the real child (it takes them by its own
    pid). A worker whose launcher is killed still stops: its pipe to the supervisor closes.
    """
    candidates = [stored] if stored else []
    prefix = Path(sys.exec_prefix)
    candidates += [prefix / "Scripts" / "python.exe", prefix / "python.exe",
                   Path(sys.base_exec_prefix) / "python.exe"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return str(candidate)
    return sys.executable


class ServiceRunner:
    """Runs the server on a background thread; ``stop()`` is the graceful shutdown.

    One process (``Server``) or, with ``--workers`` above 1, a ``Supervisor`` of worker
    processes. ``stop()`` may be called from any thread, before or after the start.
    """

    def __init__(self, project: Project, options: ServerOptions, on_ready=None, on_event=None) -> None:
        self.project = project
        self.options = options
        self.on_ready = on_ready  # called once the port is bound and every process serves
        self.on_event = on_event  # (kind, text) of worker events, for the Event Log
        self._control: ControlChannel | None = None
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._stop_reason, self._stop_drain = "service stop", None
        self._server: Server | None = None
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServiceRunner:
        """Load Django and bind the port (one process) or start the supervisor; a failure
        is raised, and written to the log file."""
        try:
            self._start()
        except BaseException as exc:
            log_start_failure(self.options.log_file, exc)
            raise
        return self

    def _start(self) -> None:
        check_tornado()
        raise_open_file_limit()
        if self.options.workers > 1:
            setup_logging(self.options)
            self._supervisor = Supervisor(self.project, self.options, on_event=self.on_event)
            target = self._run_supervisor
        else:
            application = setup_django(self.options)
            sockets = bind(self.options)
            # No os._exit() inside the server after the drain timeout: a service must
            # first report that it stopped (see exit_if_unfinished()).
            self._server = Server(self.options, sockets, on_ready=self._on_ready, hard_exit=False)
            self._server.metrics_sink = single_process_sink(self.options)
            self._control = ControlChannel(self.project, self.options, self._server.control_command).start()
            target = lambda: self._server.run(application)  # noqa: E731
        if self._stopping.is_set():
            self.stop(self._stop_reason, self._stop_drain)
        self._thread = threading.Thread(target=self._run, args=(target,), name="server", daemon=True)
        self._thread.start()

    def _on_ready(self) -> None:
        announce(self.project, self.options)
        self._set_ready()

    def _set_ready(self) -> None:
        self.ready.set()
        if self.on_ready is not None:
            self.on_ready()

    def _run_supervisor(self) -> int:
        supervisor = self._supervisor
        watcher = threading.Thread(target=self._watch_workers, daemon=True)
        watcher.start()
        return supervisor.run()

    def _watch_workers(self) -> None:
        supervisor = self._supervisor
        while not supervisor.stopping.is_set():
            workers = list(supervisor.workers.values())
            if len(workers) == self.options.workers and all(w.ready for w in workers):
                self._set_ready()
                return
            time.sleep(0.05)

    def _run(self, target) -> None:
        try:
            self.exit_code = target()
        except BaseException as exc:  # reported through .error and the log
            self.error = exc
            self.exit_code = exc.code if isinstance(exc, SystemExit) and isinstance(exc.code, int) else 1
            log.exception("The server stopped with an error")
        finally:
            if self._control is not None:
                self._control.close()
            self.ready.set()

    def reload(self) -> dict:
        """Replace every worker (blocks until done, or reload_timeout()); the control channel's answer."""
        if self._supervisor is None:
            return single_process_command("reload")
        return self._supervisor.reload().as_answer(reload_timeout(self.options))

    def stop(self, reason: str = "service stop", drain_timeout: float | None = None) -> None:
        """Graceful stop; ``drain_timeout`` shortens the drain (Windows shutting down)."""
        self._stop_reason, self._stop_drain = reason, drain_timeout
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.stop(reason, drain_timeout)
        elif self._server is not None:
            self._server.stop(reason, drain_timeout)

    @property
    def unfinished(self) -> int:
        """Requests still running when the server gave up waiting for them."""
        return self._server.unfinished if self._server is not None else 0

    def exit_if_unfinished(self, code: int) -> None:
        """End the process if requests are still running: their threads never return, and
        would keep the process (and the service) alive."""
        if not self.unfinished:
            return
        log.warning("Ending the process: %d request(s) did not finish", self.unfinished)
        logging.shutdown()
        os._exit(code)

    def is_running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> int | None:
        """The exit code once the server has stopped, or None if it still runs."""
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                return None
        return self.exit_code


def run_in_console(project: Project, server_args: list[str]) -> int:
    """``service run``: the service's code path, stopped by Ctrl+C / SIGTERM."""
    tolerate_unencodable_output()
    try:
        options = build_options(project, server_args)
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        log_start_failure(start_failure_log_file(project.directory, service=True), SystemExit(str(exc)))
        return 2
    runner = ServiceRunner(project, options)
    install_stop_signals(runner.stop, force_exit)
    runner.start()
    while True:
        code = runner.wait(0.2)  # short waits so signals reach the main thread
        if code is not None:
            runner.exit_if_unfinished(code)
            return code


# At system shutdown Windows waits only briefly for services (the preshutdown time-out
# is about 10 s by default): requests in flight get at most this long.
SHUTDOWN_DRAIN_TIMEOUT = 5.0


class ServiceLifecycle:
    """What the service reports to the service manager, and when; no pywin32 here.

    ``status`` is the pywin32 boundary: ``report(state, wait_hint_ms, exit_code)`` with the
    states "start_pending", "running", "stop_pending", "stopped", and
    ``event(event_id, level, text)`` for the Event Log (EVENT_IDS). "running" is reported once the
    port is bound and the server answers; a failed start is an Event Log error and a
    non-zero ``run()``, which the host turns into "stopped" with an error code.
    """

    def __init__(self, project: Project, status, server_args: list[str], worker_python_path: str | None = None):
        self.project = project
        self.status = status
        self.server_args = server_args
        self.worker_python_path = worker_python_path
        self.name = project.slug
        self.state = "start_pending"
        self.runner: ServiceRunner | None = None
        self.stop_requested = threading.Event()
        self._lock = threading.Lock()
        self._reloading = self._reload_again = False  # a reload thread waits; one more asked for

    def report(self, state: str, wait_hint: int = 10000, exit_code: int = 0) -> None:
        with self._lock:  # the server thread and the control handler both report
            if self.state == "stopped" or (self.state == "stop_pending" and state in ("start_pending", "running")):
                return
            self.state = state
            self.status.report(state, wait_hint, exit_code)

    def _running(self) -> None:
        self.report("running")
        self.event("started", getattr(self, "started_text", f"{self.name} serves"))

    def interrogate(self) -> None:
        """The service manager asks: tell it the real state (not always "running")."""
        with self._lock:
            self.status.report(self.state, 10000, 0)

    def stop(self, reason: str = "service stop", drain_timeout: float | None = None) -> None:
        self.stop_requested.set()
        self.report("stop_pending")
        if self.runner is not None:
            self.runner.stop(reason, drain_timeout)

    def shutdown(self) -> None:
        """Windows is shutting down: drain briefly, it will not wait long."""
        self.stop("Windows is shutting down", SHUTDOWN_DRAIN_TIMEOUT)

    def event(self, kind: str, text: str) -> None:
        """One Event Log entry, with the event ID of its kind (EVENT_IDS)."""
        self.status.event(*event_record(kind, text))

    def reload(self) -> None:
        """The reload control request (`sc control NAME 128`, PARAMCHANGE): replace the
        workers on a thread (the control handler must answer at once); the Event Log gets
        the outcome. One thread at most: requests that come while it waits are merged into
        one more reload after it (as the supervisor merges those of the control channel)."""
        runner = self.runner
        if runner is None or self.state != "running":
            return
        with self._lock:
            if self._reloading:
                self._reload_again = True
                return
            self._reloading, self._reload_again = True, False

        def run() -> None:
            while True:
                answer = runner.reload()
                if answer.get("ok"):
                    self.event("reloaded", f"{self.name} reloaded: {answer['replaced']} worker(s) "
                               "replaced by new processes running the current code")
                elif runner._supervisor is None or answer.get("unfinished"):
                    self.event("reload_failed", f"{self.name}: {answer.get('error')}")
                # A failed reload of workers is reported by the supervisor itself.
                with self._lock:
                    if not self._reload_again or self.state != "running":
                        self._reloading = False
                        return
                    self._reload_again = False

        threading.Thread(target=run, name="reload", daemon=True).start()

    def run(self) -> int:
        """Start, serve until stopped, and return the exit code (0 for a clean stop)."""
        self.report("start_pending", 30000)
        try:
            options = build_options(self.project, self.server_args)
            if options.workers > 1 and self.worker_python_path:
                multiprocessing.set_executable(worker_python(self.worker_python_path))
            self.runner = ServiceRunner(self.project, options, on_ready=self._running, on_event=self.event)
            if self.stop_requested.is_set():
                self.runner.stop()
            self.runner.start()  # loads Django and binds the port (or fails here)
        except BaseException as exc:  # SystemExit from a bind or settings error included
            self.event("start_failed", f"{self.name} could not start: {exc}")
            # Written there by the runner; bad options (.env) stop the start before it.
            log_start_failure(start_failure_log_file(self.project.directory, service=True),
                              SystemExit(str(exc)) if isinstance(exc, ServiceError) else exc)
            self.state = "stopped"  # the service host reports it, with the error, on return
            return 1
        self.started_text = f"{self.name} serves on {listening_url(options)} (log: {options.log_file})"
        while True:
            code = self.runner.wait(2)
            if code is not None:
                break
            if self.state in ("start_pending", "stop_pending"):
                self.report(self.state)  # still progressing: a new checkpoint
        failed = self.runner.error is not None or bool(code and not self.stop_requested.is_set())
        if failed:
            self.event("failed", f"{self.name} stopped unexpectedly (exit code {code}): {self.runner.error}")
        else:
            self.event("stopped", f"{self.name} stopped")
        if self.runner.unfinished:
            self.event("unfinished", f"{self.name}: {self.runner.unfinished} request(s) did not finish "
                       "within the drain timeout; they were cut off")
        if self.runner.unfinished:
            # Threads stuck in views would keep the process alive: report "stopped" before
            # ending it, a clean stop and not a crash that `sc failure` would restart.
            self.report("stopped", exit_code=1 if failed else 0)
            self.runner.exit_if_unfinished(0)
        self.state = "stopped"  # the service host reports it on return
        return 1 if failed else 0
