"""``service.bat install|update|start|stop|restart|reload|remove|status``: each command checks
first, acts through the service manager, waits for the outcome and says how it went, with an
exit code a script can test.

No pywin32 here: ``manager`` is the seam (service_manager.py names its methods;
windows_service.Win32ServiceManager on Windows, a fake in the tests and in ci/windows.py);
the command line is service_command_line.py.
"""

from __future__ import annotations

import getpass
import json
import ntpath
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from . import windows_admin
from .options import ServerOptions
from .process import listening_url
from .project import Project
from .service_command_line import FAILED, NAME_VARIABLE, OK, USAGE, Command, CommandError, parse, service_name
from .service_manager import (
    ACCOUNT_OPTION,
    ERROR_SERVICE_ALREADY_RUNNING,
    ERROR_SERVICE_DOES_NOT_EXIST,
    ERROR_SERVICE_NOT_ACTIVE,
    FIREWALL_OPTION,
    PYTHON_OPTION,
    RIGHTS_OPTION,
    SERVER_ARGS_OPTION,
    START_TYPES,
    ServiceManagerError,
    ServiceSpec,
    ServiceState,
    class_folder,
    class_string,
)
from .service_runner import ServiceError, build_options, service_names, worker_python

PASSWORD_VARIABLE = "SERVICE_ACCOUNT_PASSWORD"

# How long a start may take (Django loads, the port is bound) before the command gives up;
# a stop may take the drain time plus this margin.
START_TIMEOUT = 120.0
STOP_MARGIN = 30.0
# A service deleted while a handle to it is open (the Services console) stays until it closes.
DELETE_TIMEOUT = 10.0
POLL_SECONDS = 0.5
LOG_LINES = 15  # of logs\server.log shown when a start or stop failed


def sqlite_outside_data(project: Project, database_url: str | None) -> str | None:
    """The SQLite database file the service's account could not change, or None: it must be
    in ``data\\`` (SQLite writes its journal files beside it)."""
    if database_url is None:
        default = project.directory / "db.sqlite3"
        return str(default) if default.exists() else None
    if not database_url.startswith("sqlite:///"):
        return None
    path = database_url.removeprefix("sqlite:///").split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    if not (ntpath.isabs(path) or path.startswith("/")):
        path = str(project.directory / path)
    return None if windows_admin.is_inside(path, str(project.data_dir)) else path


def same_folder(first: str, second: str) -> bool:
    return windows_admin.is_inside(first, second) and windows_admin.is_inside(second, first)


def check_owner(manager, name: str, project: Project, action: str) -> None:
    """Refuse to touch a service of this name installed from another folder (a staging copy
    beside the live site would take the live service over)."""
    installed = manager.installed_class(name)
    folder = class_folder(installed)
    if folder is not None and same_folder(folder, str(project.directory)):
        return
    where = (f"is installed from {folder}" if folder else
             f"exists and is not a service of this project ({installed or 'no PythonClass'})")
    raise CommandError(
        f"cannot {action} the service {name}: a service of that name {where}, and this is "
        f"{project.directory}. Give this copy a name of its own: service.bat --name {name}_2 {action} "
        f"(or {NAME_VARIABLE}={name}_2 in this folder's .env).")


def check_one_service_per_folder(manager, name: str, project: Project) -> None:
    """Refuse a second service name for this folder: both would run the same data\\ and logs\\
    (the SQLite database, the control file), each server believing it is the only one."""
    for other, installed in sorted(manager.python_services().items()):
        folder = class_folder(installed)
        if other.casefold() != name.casefold() and folder is not None and same_folder(folder, str(project.directory)):
            raise CommandError(
                f"this folder, {project.directory}, already runs the service {other}: a second service "
                f"{name} would share its data\\ and logs\\ (the SQLite database, the control file). Remove "
                f"it first (service.bat remove --name {other}), or install {name} from a separate copy of "
                "the project in another folder.", USAGE)


def stored_args(manager, name: str) -> list[str]:
    return shlex.split(manager.get_option(name, SERVER_ARGS_OPTION, "") or "")


def service_options(project: Project, manager, name: str, extra: list[str] = ()) -> ServerOptions:
    """What the service will run with: the stored install options, then .env."""
    try:
        return build_options(project, [*stored_args(manager, name), *extra])
    except ServiceError as exc:
        raise CommandError(f"the service's settings are wrong: {exc}", USAGE) from None


def wait_for(manager, name: str, pending: str, timeout: float, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> ServiceState | None:
    """Poll until the state is no longer ``pending`` (or the service is gone) or ``timeout``
    seconds passed; the last state seen (None: not installed)."""
    deadline = clock() + timeout
    while True:
        state = manager.state(name)
        if state is None or state.state != pending or clock() >= deadline:
            return state
        sleep(POLL_SECONDS)


def log_tail(log_file: Path, since: float, lines: int = LOG_LINES) -> list[str]:
    """The last lines of the log file when it was written to since ``since``."""
    try:
        if log_file.stat().st_mtime < since - 1:
            return []
        with open(log_file, encoding="utf-8", errors="replace") as log:
            return log.read()[-20000:].splitlines()[-lines:]
    except OSError:
        return []


def failure_reason(manager, name: str, options: ServerOptions, since: float) -> str:
    """Where to look and what it says: the Event Log entry, else the log's last lines."""
    event = manager.last_event(name, since)
    if event:
        return f"Event Log ({name}): {event.strip()}"
    tail = log_tail(Path(options.log_file), since)
    if tail:
        return f"last lines of {options.log_file}:\n    " + "\n    ".join(tail)
    return (f"nothing in the Event Log or {options.log_file}; `service.bat run` runs the server in this "
            "console as the service would, with the full error")


class ServiceCommands:
    """The commands, on a service manager; ``clock``/``sleep`` let the tests wait instantly."""

    def __init__(self, project: Project, manager, name: str, *, environ=None, base_prefix: str | None = None,
                 ask_password: Callable[[str], str] = getpass.getpass, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep, now: Callable[[], float] = time.time,
                 out=None) -> None:
        self.project = project
        self.manager = manager
        self.name = name
        self.environ = os.environ if environ is None else environ
        self.base_prefix = sys.base_prefix if base_prefix is None else base_prefix
        self.ask_password = ask_password
        self.clock, self.sleep, self.now = clock, sleep, now
        self.out = out or sys.stdout

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def state(self) -> ServiceState:
        state = self.manager.state(self.name)
        if state is None:
            raise CommandError(f"the service {self.name} is not installed (service.bat install installs it)",
                               ERROR_SERVICE_DOES_NOT_EXIST)
        return state

    def own_state(self, action: str) -> ServiceState:
        """The state of the service this folder installed; refused for another folder's."""
        state = self.state()
        check_owner(self.manager, self.name, self.project, action)
        return state

    def named(self) -> str:
        """What the commands of this service need on the command line: its --name."""
        return f" --name {self.name}" if self.name != self.project.slug else ""

    def run_native(self, commands: list[list[str]]) -> list[str]:
        """Run each command, printing it and, when it fails, its exit code and output; returns
        the failures, each as "`command` (exit code N: output)". A firewall rule that is not
        there to delete is no failure."""
        failures = []
        for command in commands:
            shown = subprocess.list2cmdline(command)
            self.say(f"> {shown}")
            code, output = self.manager.run(command)
            if code and command[:5] != windows_admin.firewall_close_command("")[:5]:
                self.say(f"  failed (exit code {code}): {output.strip()}")
                failures.append(f"`{shown}` (exit code {code}: {' '.join(output.split()) or 'no output'})")
        return failures

    # --- install ---------------------------------------------------------------------------

    def account_for(self, given: str | None, existing: bool) -> str:
        stored = self.manager.get_option(self.name, ACCOUNT_OPTION, None) if existing else None
        account = given or stored or windows_admin.virtual_account(self.name)
        return windows_admin.LOCAL_SYSTEM if windows_admin.account_kind(account) == "system" else account

    def check_python(self, account: str) -> None:
        """A Python installed for one user cannot be read by the service's own account."""
        profiles = ntpath.dirname(self.environ.get("USERPROFILE", "C:\\Users\\x").rstrip("\\"))
        kind = windows_admin.account_kind(account)
        if kind in ("virtual", "builtin") and windows_admin.per_user_python(self.base_prefix, profiles):
            raise CommandError(
                f"Python in {self.base_prefix} is installed for one user: the service account {account} "
                "cannot read it, and the service would die before it could log anything. Install Python "
                "\"for all users\" (python.org installer: Customize installation > Install Python for all "
                "users), delete .venv and run start_server.bat to make it again, then install; or keep "
                "this Python and run the service as LocalSystem or your own account: "
                "service.bat install --account LocalSystem (or --account DOMAIN\\user).")

    def password_for(self, account: str) -> str | None:
        if windows_admin.account_kind(account) != "user":
            return None
        password = self.environ.get(PASSWORD_VARIABLE)
        return password if password is not None else self.ask_password(f"Password of {account}: ")

    def installer(self) -> str:
        user = self.environ.get("USERNAME") or getpass.getuser()
        domain = self.environ.get("USERDOMAIN")
        return f"{domain}\\{user}" if domain else user

    def install(self, command: Command) -> int:
        try:
            options = build_options(self.project, command.server_args)  # refuse what the server would
        except ServiceError as exc:
            raise CommandError(f"bad server options: {exc}", USAGE) from None
        existing = self.manager.state(self.name) is not None
        if existing:
            check_owner(self.manager, self.name, self.project, command.command)
        else:
            check_one_service_per_folder(self.manager, self.name, self.project)
        account = self.account_for(command.account, existing)
        self.check_python(account)
        for folder in (self.project.data_dir, self.project.directory / "logs"):
            folder.mkdir(exist_ok=True)
        _, display, description = service_names(self.project)
        spec = ServiceSpec(self.name, display, description, class_string(self.project), account,
                           self.password_for(account), command.startup or "delayed")
        try:
            # What the service needs to run at all; a new service that cannot is removed again.
            (self.manager.update if existing else self.manager.create)(spec)
            self.manager.set_option(self.name, SERVER_ARGS_OPTION, shlex.join(command.server_args))
            self.manager.set_option(self.name, PYTHON_OPTION, worker_python(sys.executable))
            self.manager.set_option(self.name, ACCOUNT_OPTION, account)
            self.manager.prepare_host(self.name)
            if windows_admin.account_kind(account) == "user":
                self.manager.grant_logon_right(account)
            failures = []
            if windows_admin.account_kind(account) != "system":
                rights = windows_admin.folder_rights_commands(account, str(self.project.directory),
                                                              self.installer(), [self.base_prefix])
                # Kept for remove, with those of earlier installs (a .venv made since from another Python).
                folders = self.granted_folders() + [command[1] for command in rights]
                self.manager.set_option(self.name, RIGHTS_OPTION, json.dumps(list(dict.fromkeys(folders))))
                failures = self.run_native([windows_admin.service_sid_command(self.name), *rights])
        except ServiceManagerError as exc:
            if not existing:
                self.undo_install(f"{exc} (Windows error {exc.code})")
            raise
        if failures and not existing:
            return self.undo_install(f"{len(failures)} set-up command(s) failed: {'; '.join(failures)}")
        if failures:
            self.say(f"ERROR: {len(failures)} set-up command(s) failed: {'; '.join(failures)}. The service "
                     f"{self.name} is updated but may not start as {account}: fix the cause, then "
                     f"service.bat{self.named()} install again.")
            return FAILED
        # What makes it start at boot, restart, and be reached: it can run without them.
        failures = self.run_native(windows_admin.install_commands(self.name, options.host, options.port,
                                                                  delayed_start=spec.startup == "delayed"))
        database = sqlite_outside_data(self.project, os.environ.get("DATABASE_URL"))
        if database and windows_admin.account_kind(account) != "system":
            self.say(f"WARNING: the SQLite database {database} is not in data\\: {account} may not change it. "
                     "Stop the service, move db.sqlite3* into data\\ and point DATABASE_URL in .env at it "
                     "(docs/windows-service.md, \"A least-privilege account\").")
        self.manager.set_option(self.name, FIREWALL_OPTION, windows_admin.firewall_state(options.host, options.port))
        self.say(f"{'Updated' if existing else 'Installed'} the service {self.name}: runs {self.project.directory} "
                 f"as {account}, start {spec.startup}.")
        if command.server_args:
            self.say(f"Stored options (they win over .env): {shlex.join(command.server_args)}")
        if not windows_admin.serves_other_computers(options.host):
            self.say(f"No firewall rule: the service listens on {options.host} only.")
        if failures:
            self.say(f"ERROR: {len(failures)} set-up command(s) failed: {'; '.join(failures)}. The service "
                     f"{self.name} is {'updated' if existing else 'installed'} and can start, without what those "
                     f"set. Fix the cause, then service.bat{self.named()} install again (or "
                     f"service.bat{self.named()} remove).")
            return FAILED
        if existing and self.manager.state(self.name).state != "stopped":
            self.say("It runs with the old settings until service.bat restart.")
        else:
            self.say(f"Start it with: service.bat{self.named()} start")
        return OK

    def undo_install(self, reason: str) -> int:
        """Remove the service this install made but could not make usable; says what is left."""
        if self.manager.state(self.name) is None:  # not even made
            return FAILED
        self.say(f"ERROR: {reason}, so the service {self.name} cannot run. Removing it again.")
        left = self.take_back_rights()
        try:
            if not left:
                self.manager.delete(self.name)
            gone = wait_for(self.manager, self.name, "stopped", DELETE_TIMEOUT, self.clock, self.sleep) is None
        except ServiceManagerError as exc:
            self.say(f"  failed: {exc} (Windows error {exc.code})")
            gone = False
        if gone:
            self.say(f"The service {self.name} was not installed; nothing of it is left. Fix the cause (above), "
                     "then install again.")
        else:
            rights = f", with the rights of its account on {', '.join(left)}" if left else ""
            self.say(f"The service {self.name} was not installed, but it is left (stopped){rights}: "
                     f"service.bat{self.named()} remove removes it once the cause (above) is fixed.")
        return FAILED

    # --- start, stop, restart, reload, remove ---------------------------------------------------

    def sync_firewall(self, options: ServerOptions) -> list[str]:
        """The rule follows the port and host the service is about to serve."""
        failures = self.run_native(windows_admin.firewall_sync_commands(self.name, options.host, options.port))
        if not failures:
            self.manager.set_option(self.name, FIREWALL_OPTION, windows_admin.firewall_state(options.host,
                                                                                            options.port))
        return failures

    def start(self, command: Command) -> int:
        state = self.own_state("start")
        if state.state != "stopped":
            raise CommandError(f"the service {self.name} is already {describe(state.state)}",
                               ERROR_SERVICE_ALREADY_RUNNING)
        options = service_options(self.project, self.manager, self.name, command.server_args)
        self.sync_firewall(options)
        since = self.now()
        self.manager.start(self.name, command.server_args)
        timeout = command.wait or START_TIMEOUT
        state = wait_for(self.manager, self.name, "start_pending", timeout, self.clock, self.sleep)
        if state is not None and state.state == "running":
            self.say(f"{self.name}: running, {listening_url(options)} (log: {options.log_file})")
            return OK
        if state is not None and state.state == "start_pending":
            self.say(f"ERROR: {self.name} is still starting after {timeout:.0f} s; "
                     + failure_reason(self.manager, self.name, options, since))
            return FAILED
        self.say(f"ERROR: {self.name} did not start; " + failure_reason(self.manager, self.name, options, since))
        return FAILED

    def stop(self, command: Command) -> int:
        state = self.own_state("stop")
        if state.state == "stopped":
            raise CommandError(f"the service {self.name} is not running", ERROR_SERVICE_NOT_ACTIVE)
        options = service_options(self.project, self.manager, self.name)
        timeout = command.wait or options.drain_timeout + STOP_MARGIN
        since = self.now()
        if state.state != "stop_pending":
            self.manager.stop(self.name)
        state = wait_for(self.manager, self.name, "stop_pending", timeout, self.clock, self.sleep)
        if state is not None and state.state == "stop_pending":
            self.say(f"ERROR: {self.name} is still stopping after {timeout:.0f} s (requests in flight get "
                     f"{options.drain_timeout:.0f} s); " + failure_reason(self.manager, self.name, options, since))
            return FAILED
        if state is not None and state.state != "stopped":
            self.say(f"ERROR: {self.name} is {describe(state.state)}, not stopped")
            return FAILED
        if state is not None and state.exit_code:
            self.say(f"{self.name}: stopped, with exit code {state.exit_code}; "
                     + failure_reason(self.manager, self.name, options, since))
            return OK
        self.say(f"{self.name}: stopped")
        return OK

    def restart(self, command: Command) -> int:
        if self.own_state("restart").state != "stopped":
            code = self.stop(Command("stop", wait=command.wait))
            if code:
                return code
        return self.start(command)

    def reload(self, command: Command) -> int:
        from .control import run_client

        if self.own_state("reload").state != "running":
            raise CommandError(f"the service {self.name} is not running", ERROR_SERVICE_NOT_ACTIVE)
        return run_client(self.project, service_options(self.project, self.manager, self.name), "reload")

    def remove(self, command: Command) -> int:
        state = self.own_state("remove")
        if state.state != "stopped":
            code = self.stop(Command("stop", wait=command.wait))
            if code:
                self.say(f"ERROR: {self.name} was not removed: it did not stop.")
                return code
        # While the service is there: the name of its account resolves only then.
        left = self.take_back_rights()
        if left:
            self.say(f"ERROR: {self.name} was not removed: the rights of {windows_admin.virtual_account(self.name)} "
                     f"on {', '.join(left)} could not be taken back (above). Once that is fixed: "
                     f"service.bat{self.named()} remove")
            return FAILED
        self.manager.delete(self.name)
        if wait_for(self.manager, self.name, "stopped", DELETE_TIMEOUT, self.clock, self.sleep) is not None:
            self.say(f"ERROR: {self.name} is marked for deletion: Windows removes it once every program "
                     "that has it open (the Services console, Event Viewer) is closed.")
            return FAILED
        self.run_native(windows_admin.remove_commands(self.name))
        self.say(f"{self.name}: removed, with its firewall rule and the folder rights of "
                 f"{windows_admin.virtual_account(self.name)}.")
        return OK

    def granted_folders(self) -> list[str]:
        """The folders installs gave the account rights on; for a service installed without that
        record, those install gives today."""
        try:
            return list(json.loads(self.manager.get_option(self.name, RIGHTS_OPTION, None) or "[]"))
        except ValueError:
            return []

    def take_back_rights(self) -> list[str]:
        """Take the virtual account's folder rights back (a named account keeps its own: it
        may need them elsewhere; remove says how to take them back). Returns the folders where
        that failed; a folder that no longer exists is passed over."""
        folders = self.granted_folders() or [
            command[1] for command in windows_admin.folder_rights_commands(
                "-", str(self.project.directory), "-", [self.base_prefix])]
        account = self.manager.get_option(self.name, ACCOUNT_OPTION, None) or ""
        if windows_admin.account_kind(account) == "user":
            self.say(f"{account} keeps its folder rights and \"Log on as a service\" (it may serve elsewhere); "
                     f"to take them back: icacls <folder> /remove {account}, for {', '.join(folders)}")
        left = []
        for folder in folders:
            command = windows_admin.rights_removal_command(windows_admin.virtual_account(self.name), folder)
            self.say(f"> {subprocess.list2cmdline(command)}")
            code, output = self.manager.run(command)
            if code and Path(folder.replace("\\", "/")).exists():
                self.say(f"  failed (exit code {code}): {output.strip()}")
                left.append(folder)
        return left

    def status(self, command: Command) -> int:
        """What the service manager says of the service (state, PID, account, start type, the
        options stored at install), then what the server itself says (server_status.py), reached
        on the port those options give. Exit code 0 running, 3 not (not installed included)."""
        from . import server_status

        state, details = self.manager.state(self.name), self.manager.details(self.name)
        facts: dict = {"installed": False}
        if state is not None and details is not None:
            facts = {"installed": True, "state": describe(state.state), "pid": details.pid,
                     "account": details.account, "start_type": START_TYPES.get(details.startup, details.startup),
                     "stored_options": stored_args(self.manager, self.name)}
        try:  # the port and log file the service was installed with
            options = build_options(self.project, facts.get("stored_options") or [])
        except ServiceError as exc:
            raise CommandError(f"the service's settings are wrong: {exc}", USAGE) from None
        report = server_status.collect(self.project, options, facts, self.name)
        self.say(json.dumps(report, indent=2) if command.as_json else server_status.render(report))
        return server_status.exit_code(report)

    def run(self, command: Command) -> int:
        handler = {"install": self.install, "update": self.install, "start": self.start, "stop": self.stop,
                   "restart": self.restart, "reload": self.reload, "remove": self.remove,
                   "status": self.status}[command.command]
        return handler(command)


def describe(state: str) -> str:
    return {"start_pending": "starting", "stop_pending": "stopping"}.get(state, state)


def main(project: Project, argv: list[str], manager, **kwargs) -> int:
    """``tornado_server.py service ARGS`` but ``run``: parse, act, report; the exit code."""
    try:
        command = parse(argv)
        name = service_name(project, command.name)
        return ServiceCommands(project, manager, name, **kwargs).run(command)
    except CommandError as exc:
        print(f"ERROR: {exc}", file=kwargs.get("out") or sys.stderr, flush=True)
        return exc.code
    except ServiceManagerError as exc:
        print(f"ERROR: {exc} (Windows error {exc.code})", file=kwargs.get("out") or sys.stderr, flush=True)
        return exc.code or FAILED
