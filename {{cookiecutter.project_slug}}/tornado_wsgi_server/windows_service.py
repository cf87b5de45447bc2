"""The Windows service (pywin32): the server started with Windows, stopped gracefully.

``tornado_server.py service install|start|stop|restart|reload|remove|status`` manages it
(``service.bat``): the commands and their waiting live in service_control.py, which reaches
Windows only through ``Win32ServiceManager`` here. ``service run`` runs the service's code path
in a console on any OS, where everything but pywin32 is tested.
"""

from __future__ import annotations

import itertools
import os
import shlex
import sys
from pathlib import Path

from . import service_command_line, service_control, service_manager, windows_admin
from .project import Project, load_project
from .service_manager import (  # noqa: F401
    ACCOUNT_OPTION,
    FIREWALL_OPTION,
    PYTHON_OPTION,
    SERVER_ARGS_OPTION,
    SERVICE_CLASS,
    ServiceDetails,
    ServiceManagerError,
    ServiceState,
)

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
            self._svc_name_ = args[0]  # the service manager's name for us (--name, or the slug)
            super().__init__(args)
            project = load_project(Path(__file__).resolve().parent.parent)
            stored = win32serviceutil.GetServiceCustomOption(self, SERVER_ARGS_OPTION, "")
            # `service start -- --port 1` passes args[1:].
            self.lifecycle = ServiceLifecycle(
                project, self, shlex.split(stored) + list(args[1:]),
                win32serviceutil.GetServiceCustomOption(self, PYTHON_OPTION))
            self.lifecycle.name = self._svc_name_

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
            self.follow_firewall()
            if self.lifecycle.run():
                raise RuntimeError(f"{self._svc_name_} failed; see the Event Log and the log file")

        def follow_firewall(self):
            """The rule follows a port or host changed in .env since it was made."""
            try:
                options = build_options(self.lifecycle.project, self.lifecycle.server_args)
            except ServiceError:
                return  # the start fails and says why
            stored = win32serviceutil.GetServiceCustomOption(self, FIREWALL_OPTION)
            warning = sync_firewall_at_start(self._svc_name_, options, stored)
            if warning:
                self.lifecycle.event("firewall", warning)
            elif stored != windows_admin.firewall_state(options.host, options.port):
                try:
                    win32serviceutil.SetServiceCustomOption(
                        self, FIREWALL_OPTION, windows_admin.firewall_state(options.host, options.port))
                except Exception:  # noqa: S110 - checked again at the next start
                    pass

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


class Win32ServiceManager:
    """The service manager seam of service_control.py, on pywin32 (Windows only)."""

    _STATE_NAMES = {1: "stopped", 2: "start_pending", 3: "stop_pending", 4: "running"}
    _STARTUP = {"delayed": (2, True), "auto": (2, False), "manual": (3, False), "disabled": (4, False)}

    @staticmethod
    def _call(function, *args, **kwargs):
        import pywintypes

        try:
            return function(*args, **kwargs)
        except pywintypes.error as exc:
            raise ServiceManagerError(exc.winerror, exc.strerror) from None

    def state(self, name):
        import pywintypes
        import winerror

        try:
            status = win32serviceutil.QueryServiceStatus(name)
        except pywintypes.error as exc:
            if exc.winerror == winerror.ERROR_SERVICE_DOES_NOT_EXIST:
                return None
            raise ServiceManagerError(exc.winerror, exc.strerror) from None
        # win32ExitCode, or the service's own code when that says ERROR_SERVICE_SPECIFIC_ERROR.
        exit_code = status[4] if status[3] == 1066 else status[3]
        return ServiceState(self._STATE_NAMES.get(status[1], "running"), exit_code)

    _START_TYPES = {2: "auto", 3: "manual", 4: "disabled"}  # SERVICE_AUTO_START...

    def details(self, name):
        """Its process, account and start type (ServiceDetails), or None when not installed."""
        import pywintypes

        manager = self._call(win32service.OpenSCManager, None, None, win32service.SC_MANAGER_CONNECT)
        try:
            try:
                handle = win32service.OpenService(
                    manager, name, win32service.SERVICE_QUERY_STATUS | win32service.SERVICE_QUERY_CONFIG)
            except pywintypes.error as exc:
                if exc.winerror == 1060:  # ERROR_SERVICE_DOES_NOT_EXIST
                    return None
                raise ServiceManagerError(exc.winerror, exc.strerror) from None
            try:
                status = self._call(win32service.QueryServiceStatusEx, handle)
                config = self._call(win32service.QueryServiceConfig, handle)
                delayed = config[1] == win32service.SERVICE_AUTO_START and _delayed_start(handle)
            finally:
                win32service.CloseServiceHandle(handle)
        finally:
            win32service.CloseServiceHandle(manager)
        startup = "delayed" if delayed else self._START_TYPES.get(config[1], str(config[1]))
        return ServiceDetails(status["ProcessId"] or None, config[7], startup)

    def installed_class(self, name):
        import winreg

        try:
            return winreg.QueryValue(winreg.HKEY_LOCAL_MACHINE,
                                     rf"SYSTEM\CurrentControlSet\Services\{name}\PythonClass")
        except OSError:
            return None

    def python_services(self):
        """{name: PythonClass} of every service pywin32 installed (its PythonClass key)."""
        import winreg

        found = {}
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SYSTEM\CurrentControlSet\Services") as services:
            for index in itertools.count():
                try:
                    name = winreg.EnumKey(services, index)
                except OSError:  # no more keys
                    return found
                try:
                    found[name] = winreg.QueryValue(services, rf"{name}\PythonClass")
                except OSError:  # noqa: S110 - not a pywin32 service
                    pass

    @staticmethod
    def _account(spec):
        """(account, password) as ChangeServiceConfig takes them: no password for LocalSystem
        and the accounts Windows manages."""
        if windows_admin.account_kind(spec.account) == "system":
            return "LocalSystem", ""
        return spec.account, spec.password if spec.password is not None else ""

    def create(self, spec):
        """Made as LocalSystem, then given its account: as `sc.exe config obj=` does."""
        start_type, delayed = self._STARTUP[spec.startup]
        self._call(win32serviceutil.InstallService, spec.class_string, spec.name, spec.display_name,
                   startType=start_type, description=spec.description, delayedstart=delayed)
        self.update(spec)

    def update(self, spec):
        start_type, delayed = self._STARTUP[spec.startup]
        user, password = self._account(spec)
        self._call(win32serviceutil.ChangeServiceConfig, spec.class_string, spec.name, startType=start_type,
                   userName=user, password=password, displayName=spec.display_name,
                   description=spec.description, delayedstart=delayed)

    def get_option(self, name, option, default=None):
        return self._call(win32serviceutil.GetServiceCustomOption, name, option, default)

    def set_option(self, name, option, value):
        self._call(win32serviceutil.SetServiceCustomOption, name, option, value)

    def start(self, name, args):
        self._call(win32serviceutil.StartService, name, list(args) or None)

    def stop(self, name):
        self._call(win32serviceutil.ControlService, name, win32service.SERVICE_CONTROL_STOP)

    def delete(self, name):
        self._call(win32serviceutil.RemoveService, name)

    def prepare_host(self, name):
        set_service_path(name)
        register_event_source(name)

    def grant_logon_right(self, account):
        import win32security

        sid = self._call(win32security.LookupAccountName, None, account)[0]
        policy = self._call(win32security.LsaOpenPolicy, None, win32security.POLICY_ALL_ACCESS)
        try:
            self._call(win32security.LsaAddAccountRights, policy, sid, ["SeServiceLogonRight"])
        finally:
            win32security.LsaClose(policy)

    def last_event(self, name, since):
        """The newest error or warning the service wrote (one of EVENT_IDS: not pywin32's own
        traceback entry that follows a failed start) under source ``name`` since ``since``."""
        from .service_runner import EVENT_IDS

        log = win32evtlog.OpenEventLog(None, "Application")
        flags = win32evtlog.EVENTLOG_BACKWARDS_READ | win32evtlog.EVENTLOG_SEQUENTIAL_READ
        wanted = (win32evtlog.EVENTLOG_ERROR_TYPE, win32evtlog.EVENTLOG_WARNING_TYPE)
        ours = set(EVENT_IDS.values())
        try:
            while records := win32evtlog.ReadEventLog(log, flags, 0):
                for record in records:
                    if record.TimeGenerated.timestamp() < int(since):
                        return None
                    if (record.SourceName == name and record.EventType in wanted
                            and record.EventID & 0xFFFF in ours):
                        return win32evtlogutil.SafeFormatMessage(record, "Application")
        finally:
            win32evtlog.CloseEventLog(log)
        return None

    def run(self, command):
        return windows_admin.run_program(command)


def handle_command_line(project: Project, argv: list[str]) -> int:
    """install / update / start / stop / restart / reload / remove / status (service_control.py),
    plus pywin32's own ``debug``. ``argv[0]`` is the program name."""
    if sys.platform != "win32":
        print("ERROR: Windows services exist only on Windows; `python tornado_server.py service run` "
              "runs the server as the service would.", file=sys.stderr)
        return 2
    if "debug" in argv[1:argv.index("--") if "--" in argv else len(argv)]:
        service_class = DjangoTornadoService
        (service_class._svc_name_, service_class._svc_display_name_,
         service_class._svc_description_) = service_names(project)
        return win32serviceutil.HandleCommandLine(service_class, serviceClassString=service_class_string(project),
                                                  argv=argv) or 0
    return service_control.main(project, argv[1:], Win32ServiceManager())


def sync_firewall_at_start(name: str, options, stored: str | None, run=None) -> str | None:
    """At service start: when the port or host changed since the rule was made, replace the
    rule. None when nothing was to do or it worked; else the warning to log (an account that
    is not an administrator cannot change the firewall: ``service.bat restart`` in an
    elevated console does it)."""
    wanted = windows_admin.firewall_state(options.host, options.port)
    if stored == wanted:
        return None
    if windows_admin.run_commands(windows_admin.firewall_sync_commands(name, options.host, options.port), run) == 0:
        return None
    return (f"The firewall rule {windows_admin.firewall_rule_name(name)} opens {stored or 'nothing'}, but the "
            f"service now serves {wanted} on {options.host}: its account cannot change the firewall. "
            "Run `service.bat restart` in a console opened as Administrator to update the rule.")


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
    """The PythonClass value pythonservice.exe loads the service by (see service_control)."""
    return service_manager.class_string(project)


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


def _delayed_start(handle) -> bool:
    try:
        return bool(win32service.QueryServiceConfig2(handle, win32service.SERVICE_CONFIG_DELAYED_AUTO_START_INFO))
    except (win32service.error, TypeError, ValueError):  # not said: plain automatic
        return False


def main(project: Project, argv: list[str]) -> int:
    """``tornado_server.py service ARGS``: ``run`` on any OS, the rest on Windows."""
    if argv[:1] == ["run"]:
        return run_in_console(project, argv[1:])
    if not argv:
        print(service_command_line.USAGE_TEXT, file=sys.stderr)
        return 2
    return handle_command_line(project, ["tornado_server.py service", *argv])
