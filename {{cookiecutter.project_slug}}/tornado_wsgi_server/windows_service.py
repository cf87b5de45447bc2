"""The Windows service (pywin32): the server started with Windows, stopped gracefully.

``tornado_server.py service install|start|stop|remove|status`` manages it (``service.bat``);
``service run`` runs its code path in a console on any OS, where everything but pywin32 is tested.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import shlex
import sys
import threading
import time
from pathlib import Path

from .application import setup_django
from .connections import bind, raise_open_file_limit
from .logs import setup_logging
from .metrics_hub import single_process_sink
from .options import ServerOptions, load_options, read_dotenv
from .process import Server, announce, force_exit, install_stop_signals, listening_url
from .project import Project, load_project
from .supervisor import Supervisor

DEFAULT_LOG_FILE = Path("logs") / "server.log"
# Registry values (HKLM\SYSTEM\CurrentControlSet\Services\<name>\Parameters).
SERVER_ARGS_OPTION = "ServerArgs"
PYTHON_OPTION = "Python"
SERVICE_CLASS = "DjangoTornadoService"

log = logging.getLogger("windows_service")


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

    def __init__(self, project: Project, options: ServerOptions) -> None:
        self.project = project
        self.options = options
        self.exit_code: int | None = None
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self._stopping = threading.Event()
        self._server: Server | None = None
        self._supervisor: Supervisor | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> ServiceRunner:
        raise_open_file_limit()
        if self.options.workers > 1:
            setup_logging(self.options)
            self._supervisor = Supervisor(self.project, self.options)
            target = self._run_supervisor
        else:
            application = setup_django(self.options)
            sockets = bind(self.options)
            # No os._exit() inside the server after the drain timeout: a service must
            # first report that it stopped (see exit_if_unfinished()).
            self._server = Server(self.options, sockets, on_ready=self._on_ready, hard_exit=False)
            self._server.metrics_sink = single_process_sink(self.options)
            target = lambda: self._server.run(application)  # noqa: E731
        if self._stopping.is_set():
            self.stop()
        self._thread = threading.Thread(target=self._run, args=(target,), name="server", daemon=True)
        self._thread.start()
        return self

    def _on_ready(self) -> None:
        announce(self.project, self.options)
        self.ready.set()

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
                self.ready.set()
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
            self.ready.set()

    def stop(self, reason: str = "service stop") -> None:
        self._stopping.set()
        if self._supervisor is not None:
            self._supervisor.stop(reason)
        elif self._server is not None:
            self._server.stop(reason)

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
    try:
        options = build_options(project, server_args)
    except ServiceError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    runner = ServiceRunner(project, options)
    install_stop_signals(runner.stop, force_exit)
    runner.start()
    while True:
        code = runner.wait(0.2)  # short waits so signals reach the main thread
        if code is not None:
            runner.exit_if_unfinished(code)
            return code


# ======================================================================================
# The Windows service (pywin32): a thin shell around ServiceRunner.
# ======================================================================================

if sys.platform == "win32":
    import servicemanager
    import win32service
    import win32serviceutil

    class DjangoTornadoService(win32serviceutil.ServiceFramework):
        """pythonservice.exe imports this class by the PythonClass value ``install`` stored
        (``<project>\\tornado_wsgi_server.windows_service.DjangoTornadoService``); the
        project is the folder above this package."""

        def __init__(self, args):
            self._svc_name_ = args[0]  # the service manager's name for us (the slug)
            super().__init__(args)
            self.project = load_project(Path(__file__).resolve().parent.parent)
            self.start_args = list(args[1:])  # `service start -- --port 1` passes these
            self.runner: ServiceRunner | None = None
            self.stop_requested = threading.Event()

        def SvcDoRun(self):
            os.chdir(self.project.directory)
            # A service has no console; output that would go there is dropped (the log
            # file and the event log get everything that matters).
            sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
            try:
                stored = win32serviceutil.GetServiceCustomOption(self, SERVER_ARGS_OPTION, "")
                options = build_options(self.project, shlex.split(stored) + self.start_args)
                if options.workers > 1:
                    multiprocessing.set_executable(
                        worker_python(win32serviceutil.GetServiceCustomOption(self, PYTHON_OPTION)))
                self.runner = ServiceRunner(self.project, options)
                if self.stop_requested.is_set():
                    self.runner.stop()
                self.runner.start()
            except BaseException as exc:
                servicemanager.LogErrorMsg(f"{self._svc_name_} could not start: {exc}")
                raise
            servicemanager.LogInfoMsg(
                f"{self._svc_name_} serves {listening_url(options)} "
                f"(log: {options.log_file})")
            while True:
                code = self.runner.wait(2)
                if code is not None:
                    break
                if self.stop_requested.is_set():
                    # Tell the service manager the drain is still progressing.
                    self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=10000)
            failed = self.runner.error is not None or (code and not self.stop_requested.is_set())
            if failed:
                servicemanager.LogErrorMsg(
                    f"{self._svc_name_} stopped unexpectedly (exit code {code}): {self.runner.error}")
            if self.runner.unfinished:
                # Threads stuck in views would keep this process alive: report "stopped"
                # first, so that this is a clean stop and not a crash (which recovery
                # options such as `sc failure` would restart), then end the process.
                servicemanager.LogWarningMsg(
                    f"{self._svc_name_}: {self.runner.unfinished} request(s) did not finish "
                    f"within the drain timeout; they were cut off")
                self.ReportServiceStatus(win32service.SERVICE_STOPPED, win32ExitCode=1 if failed else 0)
                self.runner.exit_if_unfinished(0)
            if failed:
                raise RuntimeError(f"server exit code {code}")

        def SvcStop(self):
            self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING, waitHint=10000)
            self.stop_requested.set()
            if self.runner is not None:
                self.runner.stop("service stop")

        SvcShutdown = SvcStop  # Windows is shutting down: drain the same way


def handle_command_line(project: Project, argv: list[str]) -> int:
    """install / update / start / stop / restart / remove / debug (pywin32), plus status.

    ``argv[0]`` is the program name pywin32 prints in its usage text.
    """
    if sys.platform != "win32":
        print("ERROR: Windows services exist only on Windows; `python tornado_server.py service run` "
              "runs the server as the service would.", file=sys.stderr)
        return 2
    server_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, server_args = argv[:cut], argv[cut + 1:]
    commands = _commands(argv)
    name = project.slug
    if commands[:1] == ["status"]:
        return print_status(name)
    if commands[:1] == ["install"] and not any(arg.startswith("--startup") for arg in argv):
        argv = [argv[0], "--startup", "auto", *argv[1:]]
    if commands[:1] in (["install"], ["update"]):
        build_options(project, server_args)  # refuse to install options the server would reject

    def remember(_opts) -> None:
        win32serviceutil.SetServiceCustomOption(name, SERVER_ARGS_OPTION, shlex.join(server_args))
        win32serviceutil.SetServiceCustomOption(name, PYTHON_OPTION, worker_python(sys.executable))
        set_service_path(name)

    if commands[:1] in (["start"], ["restart"]) and server_args:
        argv = argv + server_args
    service_class = DjangoTornadoService
    (service_class._svc_name_, service_class._svc_display_name_,
     service_class._svc_description_) = service_names(project)
    return win32serviceutil.HandleCommandLine(service_class, serviceClassString=service_class_string(project),
                                              argv=argv, customOptionHandler=remember) or 0


def service_class_string(project: Project) -> str:
    """The PythonClass value pythonservice.exe loads the service by.

    The service host splits it at the last backslash: the folder goes on sys.path and the
    rest is imported as a dotted module, so this package's relative imports work.
    """
    return f"{project.directory}\\{__name__}.{SERVICE_CLASS}"


def set_service_path(name: str) -> None:
    """Give the service a PATH with the DLLs pythonservice.exe needs.

    The service runs as LocalSystem, whose PATH has neither the Python installation
    (pythonXY.dll) nor pywin32's DLLs when Python was installed for one user.
    """
    import pywintypes
    import win32api
    import win32con

    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    folders = [sys.base_exec_prefix, os.path.dirname(pywintypes.__file__),
               os.path.join(system_root, "System32"), system_root]
    key = win32api.RegOpenKey(win32con.HKEY_LOCAL_MACHINE,
                              rf"SYSTEM\CurrentControlSet\Services\{name}", 0, win32con.KEY_SET_VALUE)
    try:
        win32api.RegSetValueEx(key, "Environment", 0, win32con.REG_MULTI_SZ, ["PATH=" + ";".join(folders)])
    finally:
        win32api.RegCloseKey(key)


# pywin32's options that take a value as the next argument.
_VALUE_OPTIONS = {"--password", "--username", "--startup", "--perfmonini", "--perfmondll", "--wait"}


def _commands(argv: list[str]) -> list[str]:
    """The command and what follows it, pywin32 (getopt) style: options come first."""
    index = 1
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in _VALUE_OPTIONS else 1
    return argv[index:]


def print_status(name: str) -> int:
    names = {
        win32service.SERVICE_STOPPED: "stopped", win32service.SERVICE_START_PENDING: "starting",
        win32service.SERVICE_STOP_PENDING: "stopping", win32service.SERVICE_RUNNING: "running",
    }
    try:
        state = win32serviceutil.QueryServiceStatus(name)[1]
    except win32service.error as exc:
        print(f"{name}: {exc.strerror}")
        return 1
    print(f"{name}: {names.get(state, state)}")
    return 0


def main(project: Project, argv: list[str]) -> int:
    """``tornado_server.py service ARGS``: ``run`` on any OS, the rest on Windows."""
    if argv[:1] == ["run"]:
        return run_in_console(project, argv[1:])
    if not argv:
        print("Usage: tornado_server.py service install|start|stop|restart|remove|status|run "
              "[-- server options]", file=sys.stderr)
        return 2
    return handle_command_line(project, ["tornado_server.py service", *argv])
