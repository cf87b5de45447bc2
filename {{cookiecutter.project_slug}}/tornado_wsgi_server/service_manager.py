"""The service manager seam of service_control.py: the values it exchanges with the manager
and what is stored with a service. The manager (windows_service.Win32ServiceManager on
Windows, a fake in the tests and in ci/windows.py) has these methods:

- ``state(name)`` -> ``ServiceState`` or None when no such service is installed;
- ``details(name)`` -> ``ServiceDetails`` (its process, account and start type) or None;
- ``installed_class(name)`` -> the PythonClass value (``<folder>\\<module>.<class>``) or None;
- ``python_services()`` -> {name: PythonClass value} of every service that has one;
- ``create(spec)`` / ``update(spec)`` with a ``ServiceSpec``;
- ``get_option(name, option, default)`` / ``set_option(name, option, value)``: the service's
  stored values;
- ``start(name, args)``, ``stop(name)``, ``delete(name)``: return once asked, as Windows does;
- ``prepare_host(name)``: the service's PATH and its Event Log source;
- ``grant_logon_right(account)``: "Log on as a service" for a named account;
- ``last_event(name, since)`` -> the text of the newest error or warning entry the service
  wrote to the Event Log since ``since`` (time.time()), or None;
- ``run(command)`` -> (exit code, output) of a native command (sc.exe, netsh, icacls).

A manager method that fails raises ``ServiceManagerError``.
"""

from __future__ import annotations

from dataclasses import dataclass

from .project import Project

# Values stored with the service (HKLM\SYSTEM\CurrentControlSet\Services\<name>\Parameters).
SERVER_ARGS_OPTION = "ServerArgs"  # options given after `install --`: they win over .env
PYTHON_OPTION = "Python"
ACCOUNT_OPTION = "Account"  # kept for the next install unless --account says otherwise
FIREWALL_OPTION = "Firewall"  # what the rule opened last: "TCP <port>" or "none"
RIGHTS_OPTION = "FolderRights"  # the folders install gave the account rights on (a JSON list)
SERVICE_CLASS = "DjangoTornadoService"
SERVICE_MODULE = "tornado_wsgi_server.windows_service"

# Windows' error numbers a refusal exits with (as pywin32's command line gave them).
ERROR_SERVICE_ALREADY_RUNNING = 1056
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062


class ServiceManagerError(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ServiceState:
    state: str  # "start_pending", "running", "stop_pending", "stopped"
    exit_code: int = 0  # the service's exit code once stopped (0: a clean stop)


@dataclass
class ServiceDetails:
    pid: int | None  # its process while it runs
    account: str
    startup: str  # as ServiceSpec has it: delayed | auto | manual | disabled (else Windows' number)


# How `status` names the start types.
START_TYPES = {"delayed": "automatic (delayed)", "auto": "automatic", "manual": "manual", "disabled": "disabled"}


@dataclass
class ServiceSpec:
    name: str
    display_name: str
    description: str
    class_string: str  # PythonClass: what pythonservice.exe loads
    account: str  # LocalSystem, NT SERVICE\<name> or DOMAIN\user
    password: str | None = None
    startup: str = "delayed"  # delayed | auto | manual | disabled


def class_string(project: Project) -> str:
    """The PythonClass value pythonservice.exe loads the service by: it splits it at the last
    backslash, puts the folder on sys.path and imports the rest as a dotted module."""
    return f"{project.directory}\\{SERVICE_MODULE}.{SERVICE_CLASS}"


def class_folder(value: str | None) -> str | None:
    """The project folder of a PythonClass value, None when it is not one of ours."""
    if not value or not value.endswith(f"\\{SERVICE_MODULE}.{SERVICE_CLASS}"):
        return None
    return value.rsplit("\\", 1)[0]
