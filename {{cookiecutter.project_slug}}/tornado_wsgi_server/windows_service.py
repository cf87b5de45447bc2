"""The Windows service (pywin32): the server started with Windows, stopped gracefully.

``tornado_server.py service install|start|stop|remove|status`` manages it (``service.bat``);
``service run`` runs its code path in a console on any OS, where everything but pywin32 is tested.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

from .control import run_client
from .project import Project, load_project

# The pywin32-free part, named here too: the service host and the tests import it from here.
from .service_runner import (  # noqa: F401
    SHUTDOWN_DRAIN_TIMEOUT,
    ServiceError,
    ServiceLifecycle,
    ServiceRunner,
    build_options,
    run_in_console,
    service_names,
    worker_python,
)

# The reload control request: `sc control NAME 128` (user-defined codes are 128-255);
# PARAMCHANGE (`sc control NAME paramchange`) does the same.
RELOAD_CONTROL = 128

# Registry values (HKLM\SYSTEM\CurrentControlSet\Services\<name>\Parameters).
SERVER_ARGS_OPTION = "ServerArgs"
PYTHON_OPTION = "Python"
SERVICE_CLASS = "DjangoTornadoService"

# ======================================================================================
# The Windows service (pywin32): a thin shell around ServiceLifecycle.
# ======================================================================================

if sys.platform == "win32":
    import servicemanager
    import win32service
    import win32serviceutil

    _STATES = {"start_pending": win32service.SERVICE_START_PENDING, "running": win32service.SERVICE_RUNNING,
               "stop_pending": win32service.SERVICE_STOP_PENDING, "stopped": win32service.SERVICE_STOPPED}
    import win32evtlog
    import win32evtlogutil

    _ACCEPT_PRESHUTDOWN = getattr(win32service, "SERVICE_ACCEPT_PRESHUTDOWN", 0x100)
    _CONTROL_PRESHUTDOWN = getattr(win32service, "SERVICE_CONTROL_PRESHUTDOWN", 0x0F)
    _EVENT_TYPES = {"info": win32evtlog.EVENTLOG_INFORMATION_TYPE, "warning": win32evtlog.EVENTLOG_WARNING_TYPE,
                    "error": win32evtlog.EVENTLOG_ERROR_TYPE}

    class DjangoTornadoService(win32serviceutil.ServiceFramework):
        """pythonservice.exe imports this class by the PythonClass value ``install`` stored
        (``<project>\\tornado_wsgi_server.windows_service.DjangoTornadoService``); the
        project is the folder above this package."""

        def __init__(self, args):
            self._svc_name_ = args[0]  # the service manager's name for us (the slug)
            super().__init__(args)
            project = load_project(Path(__file__).resolve().parent.parent)
            stored = win32serviceutil.GetServiceCustomOption(self, SERVER_ARGS_OPTION, "")
            # `service start -- --port 1` passes args[1:].
            self.lifecycle = ServiceLifecycle(
                project, self, shlex.split(stored) + list(args[1:]),
                win32serviceutil.GetServiceCustomOption(self, PYTHON_OPTION))

        # The status reporter ServiceLifecycle talks to.
        def report(self, state, wait_hint, exit_code):
            self.ReportServiceStatus(_STATES[state], waitHint=wait_hint, win32ExitCode=exit_code)

        def event(self, event_id, level, text):
            try:  # under the event source `install` registered (see register_event_source())
                win32evtlogutil.ReportEvent(self._svc_name_, event_id, eventType=_EVENT_TYPES[level],
                                            strings=[text])
            except Exception:  # no source of our own: pywin32's generic messages, no ID
                {"info": servicemanager.LogInfoMsg, "warning": servicemanager.LogWarningMsg,
                 "error": servicemanager.LogErrorMsg}[level](text)

        def GetAcceptedControls(self):
            return (super().GetAcceptedControls() | _ACCEPT_PRESHUTDOWN
                    | win32service.SERVICE_ACCEPT_PARAMCHANGE)

        def SvcRun(self):  # pywin32's reports "running" before the port is bound
            os.chdir(self.lifecycle.project.directory)
            # A service has no console; output that would go there is dropped (the log
            # file and the event log get everything that matters).
            sys.stdout = sys.stderr = open(os.devnull, "w", encoding="utf-8")
            if self.lifecycle.run():
                raise RuntimeError(f"{self._svc_name_} failed; see the Event Log and the log file")

        def SvcStop(self):
            self.lifecycle.stop()

        def SvcShutdown(self):
            self.lifecycle.shutdown()

        def SvcInterrogate(self):
            self.lifecycle.interrogate()

        def SvcOtherEx(self, control, event_type, data):
            if control == _CONTROL_PRESHUTDOWN:
                self.lifecycle.shutdown()
            elif control in (RELOAD_CONTROL, win32service.SERVICE_CONTROL_PARAMCHANGE):
                self.lifecycle.reload()


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
        return print_status(name, project, as_json="--json" in argv)
    if commands[:1] == ["reload"]:
        return reload_service(project, name)
    startup_given = any(arg.startswith("--startup") for arg in argv)
    if commands[:1] == ["install"] and not startup_given:
        argv = [argv[0], "--startup", "auto", *argv[1:]]  # made delayed-auto below
    options = None
    if commands[:1] in (["install"], ["update"]):
        options = build_options(project, server_args)  # refuse to install options the server would reject

    def remember(_opts) -> None:
        win32serviceutil.SetServiceCustomOption(name, SERVER_ARGS_OPTION, shlex.join(server_args))
        win32serviceutil.SetServiceCustomOption(name, PYTHON_OPTION, worker_python(sys.executable))
        set_service_path(name)
        register_event_source(name)

    if commands[:1] in (["start"], ["restart"]) and server_args:
        argv = argv + server_args
    service_class = DjangoTornadoService
    (service_class._svc_name_, service_class._svc_display_name_,
     service_class._svc_description_) = service_names(project)
    code = win32serviceutil.HandleCommandLine(service_class, serviceClassString=service_class_string(project),
                                              argv=argv, customOptionHandler=remember) or 0
    if not code:
        after_install_or_remove(name, commands[:1], options, delayed_start=not startup_given)
    return code


def after_install_or_remove(name: str, command: list[str], options, delayed_start: bool) -> None:
    """Restart on failure, delayed start and the firewall rule at install; the rule's removal."""
    from . import windows_admin

    if command in (["install"], ["update"]):
        windows_admin.run_commands(windows_admin.install_commands(
            name, options.host, options.port, delayed_start and command == ["install"]))
        if not windows_admin.serves_other_computers(options.host):
            print(f"No firewall rule: the service listens on {options.host} only (see README, "
                  "\"Let other computers reach it\").", flush=True)
    elif command == ["remove"]:
        windows_admin.run_commands(windows_admin.remove_commands(name))


def reload_service(project: Project, name: str) -> int:
    """``service reload``: through the control channel the service opened, which waits
    for every worker to be new and says how it went (``sc control NAME 128`` does the same
    without waiting; the Event Log has the outcome)."""
    try:
        stored = win32serviceutil.GetServiceCustomOption(name, SERVER_ARGS_OPTION, "")
    except win32service.error as exc:
        print(f"ERROR: {name}: {exc.strerror}", file=sys.stderr)
        return 1
    return run_client(project, build_options(project, shlex.split(stored or "")), "reload")


def register_event_source(name: str) -> None:
    """Event Log source ``name`` whose entries show their text under any event ID: pywin32's
    messages first (its own start/stop entries), then .NET's EventLogMessages.dll, which
    defines every ID as its text."""
    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    generic = [os.path.join(system_root, "Microsoft.NET", folder, "v4.0.30319", "EventLogMessages.dll")
               for folder in ("Framework64", "Framework")]
    files = [servicemanager.__file__] + [path for path in generic if os.path.isfile(path)][:1]
    win32evtlogutil.AddSourceToRegistry(name, ";".join(files), "Application")


def service_class_string(project: Project) -> str:
    """The PythonClass value pythonservice.exe loads the service by.

    The service host splits it at the last backslash: the folder goes on sys.path and the
    rest is imported as a dotted module, so this package's relative imports work.
    """
    return f"{project.directory}\\{__name__}.{SERVICE_CLASS}"


def service_path(own_folders: list[str], system_path: str) -> str:
    """The service's PATH: the folders it needs first, then the machine's PATH (git,
    PowerShell, pg_dump... keep working in the service), each folder once."""
    folders, seen = [], set()
    for folder in [*own_folders, *system_path.split(";")]:
        key = folder.strip().rstrip("\\").casefold()
        if key and key not in seen:
            seen.add(key)
            folders.append(folder.strip())
    return ";".join(folders)


def set_service_path(name: str) -> None:
    """Give the service a PATH with the DLLs pythonservice.exe needs.

    The service runs as LocalSystem, whose PATH has neither the Python installation
    (pythonXY.dll) nor pywin32's DLLs when Python was installed for one user. The
    machine's PATH follows them: this value replaces the service's whole PATH; the
    service's other environment variables are kept.
    """
    import pywintypes
    import win32api
    import win32con

    system_root = os.environ.get("SystemRoot", r"C:\Windows")
    folders = [sys.base_exec_prefix, os.path.dirname(pywintypes.__file__),
               os.path.join(system_root, "System32"), system_root]
    try:
        environment = win32api.RegOpenKey(win32con.HKEY_LOCAL_MACHINE,
                                          r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment")
        try:
            machine_path = win32api.ExpandEnvironmentStrings(win32api.RegQueryValueEx(environment, "Path")[0])
        finally:
            win32api.RegCloseKey(environment)
    except pywintypes.error:
        machine_path = ""
    key = win32api.RegOpenKey(win32con.HKEY_LOCAL_MACHINE, rf"SYSTEM\CurrentControlSet\Services\{name}",
                              0, win32con.KEY_SET_VALUE | win32con.KEY_QUERY_VALUE)
    try:
        try:
            existing = list(win32api.RegQueryValueEx(key, "Environment")[0] or [])
        except pywintypes.error:  # none yet
            existing = []
        win32api.RegSetValueEx(key, "Environment", 0, win32con.REG_MULTI_SZ,
                               service_environment(existing, service_path(folders, machine_path)))
    finally:
        win32api.RegCloseKey(key)


def service_environment(existing: list[str], path: str) -> list[str]:
    """The service's Environment value: what an administrator put there (proxy variables,
    DJANGO_*...) kept, PATH replaced."""
    return [entry for entry in existing if not entry.upper().startswith("PATH=")] + ["PATH=" + path]


# pywin32's options that take a value as the next argument.
_VALUE_OPTIONS = {"--password", "--username", "--startup", "--perfmonini", "--perfmondll", "--wait"}


def _commands(argv: list[str]) -> list[str]:
    """The command and what follows it, pywin32 (getopt) style: options come first."""
    index = 1
    while index < len(argv) and argv[index].startswith("-"):
        index += 2 if argv[index] in _VALUE_OPTIONS else 1
    return argv[index:]


def print_status(name: str, project: Project, as_json: bool = False, manager=None) -> int:
    """``service status [--json]``: what the service manager says of the service (state, PID,
    account, start type, the options stored at install), then what the server itself says
    (server_status.py), reached on the port those options give. Exit code 0 running, 3 not.
    ``manager`` stands in for the Windows reads (ServiceManager) in tests."""
    from . import server_status

    manager = manager or ServiceManager()
    facts = manager.facts(name)
    if facts.get("installed"):
        facts["stored_options"] = manager.stored_options(name)
    try:
        options = build_options(project, facts.get("stored_options") or [])
    except ServiceError as exc:  # stored options (or .env) the server would refuse
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2
    return server_status.print_report(server_status.collect(project, options, facts, name), as_json)


def _delayed_start(handle) -> bool:
    try:
        return bool(win32service.QueryServiceConfig2(handle, win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO))
    except (win32service.error, TypeError, ValueError):  # not said: plain automatic
        return False


class ServiceManager:
    """The Windows reads of ``service status``: a service's state, process, account and start
    type, and the server options stored with it at install."""

    def facts(self, name: str) -> dict:
        """{"installed": False}, or its state ("running", "stopped", "starting", "stopping"),
        ``pid``, ``account`` and ``start_type``."""
        states = {win32service.SERVICE_STOPPED: "stopped", win32service.SERVICE_START_PENDING: "starting",
                  win32service.SERVICE_STOP_PENDING: "stopping", win32service.SERVICE_RUNNING: "running"}
        start_types = {win32service.SERVICE_AUTO_START: "automatic", win32service.SERVICE_DEMAND_START: "manual",
                       win32service.SERVICE_DISABLED: "disabled"}
        manager = win32service.OpenSCManager(None, None, win32service.SC_MANAGER_CONNECT)
        try:
            try:
                handle = win32service.OpenService(
                    manager, name, win32service.SERVICE_QUERY_STATUS | win32service.SERVICE_QUERY_CONFIG)
            except win32service.error as exc:
                if exc.winerror == 1060:  # ERROR_SERVICE_DOES_NOT_EXIST
                    return {"installed": False}
                raise
            try:
                status = win32service.QueryServiceStatusEx(handle)
                config = win32service.QueryServiceConfig(handle)
                delayed = config[1] == win32service.SERVICE_AUTO_START and _delayed_start(handle)
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(manager)
        start_type = start_types.get(config[1], str(config[1])) + (" (delayed)" if delayed else "")
        return {"installed": True, "state": states.get(status["CurrentState"], str(status["CurrentState"])),
                "pid": status["ProcessId"] or None, "account": config[7], "start_type": start_type}

    def stored_options(self, name: str) -> list[str]:
        """The server options given after ``--`` at install; they win over .env."""
        stored_overrides = globals().get("stored_overrides")
        if stored_overrides is not None:
            return list(stored_overrides(name))
        return shlex.split(win32serviceutil.GetServiceCustomOption(name, SERVER_ARGS_OPTION, "") or "")


def main(project: Project, argv: list[str]) -> int:
    """``tornado_server.py service ARGS``: ``run`` on any OS, the rest on Windows."""
    if argv[:1] == ["run"]:
        return run_in_console(project, argv[1:])
    if not argv:
        print("Usage: tornado_server.py service install|start|stop|restart|reload|remove|status|run "
              "[-- server options]", file=sys.stderr)
        return 2
    return handle_command_line(project, ["tornado_server.py service", *argv])
