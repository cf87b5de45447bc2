"""Every Windows-only call the CI checks make, behind one class.

``Windows`` runs the real programs: ``sc.exe``, ``netsh``, ``icacls``, the service commands
of ``tornado_server.py``, the Event Log (pywin32), Ctrl+Break, ``cmd.exe``. ``FakeWindows``
stands in for it elsewhere: it records each call in ``calls`` and answers with scripted
outcomes, keeps the services installed in a dict as the service manager would, runs a
started service as ``tornado_server.py service run`` (the service's own code path) and
``start_server.bat`` as ``start_server.sh``. So the checks run on Linux as far as they can,
and a wrong command or a wrong test of an exit code fails there first.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import status

PROJECT_DIR = Path(__file__).resolve().parent.parent
IS_WINDOWS = sys.platform == "win32"

# What pywin32's command line returns when the service manager refuses (winerror.h).
ERROR_SERVICE_DOES_NOT_EXIST = 1060
ERROR_SERVICE_NOT_ACTIVE = 1062
ERROR_SERVICE_ALREADY_RUNNING = 1056


@dataclass
class Outcome:
    code: int
    output: str = ""


def venv_python(folder: Path) -> Path:
    return Path(folder) / (".venv/Scripts/python.exe" if IS_WINDOWS else ".venv/bin/python")


class Windows:
    """The real calls (on Windows)."""

    def run(self, args: list, cwd: Path | None = None, timeout: float = 180, shown: list | None = None) -> Outcome:
        """``shown``: what to print for the command instead (without a password)."""
        args = [str(a) for a in args]
        print(">", subprocess.list2cmdline([str(a) for a in shown or args]), flush=True)
        try:
            # No input: a command that asks a question fails instead of waiting for an answer.
            done = subprocess.run(args, cwd=cwd or PROJECT_DIR, timeout=timeout, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace",
                                  check=False)
        except subprocess.TimeoutExpired:
            return Outcome(-1, f"timed out after {timeout}s")
        if done.stdout.strip():
            print(done.stdout.rstrip(), flush=True)
        return Outcome(done.returncode, done.stdout)

    def sc(self, *args: str) -> Outcome:
        return self.run(["sc.exe", *args])

    def netsh(self, *args: str) -> Outcome:
        return self.run(["netsh", *args])

    def icacls(self, path: Path, *args: str) -> Outcome:
        return self.run(["icacls", path, *args])

    def service(self, *args: str, folder: Path = PROJECT_DIR, python: Path | None = None) -> Outcome:
        """``tornado_server.py service ARGS`` in ``folder`` (with that folder's virtual
        environment unless ``python`` names another)."""
        return self.run([python or venv_python(folder), "tornado_server.py", "service", *args], cwd=folder)

    def add_local_user(self, name: str, password: str) -> Outcome:
        return self.run(["net", "user", name, password, "/add"], shown=["net", "user", name, "*****", "/add"])

    def remove_local_user(self, name: str) -> Outcome:
        return self.run(["net", "user", name, "/delete"])

    def add_local_group(self, name: str) -> Outcome:
        return self.run(["net", "localgroup", name, "/add"])

    def add_to_local_group(self, group: str, user: str) -> Outcome:
        return self.run(["net", "localgroup", group, user, "/add"])

    def remove_local_group(self, name: str) -> Outcome:
        return self.run(["net", "localgroup", name, "/delete"])

    def local_domain(self) -> str:
        """The domain part of a local account's name (``COMPUTER\\user``): the computer's name."""
        return os.environ["COMPUTERNAME"]

    def signon_env(self, folder: Path) -> dict:
        """What the server needs to check local users' passwords: nothing, SSPI asks Windows."""
        return {}

    def service_folder(self, name: str) -> Path | None:
        """The project folder the installed service ``name`` runs: its PythonClass value
        (``<folder>\\tornado_wsgi_server.windows_service.<class>``) up to the last backslash."""
        import winreg

        try:
            value = winreg.QueryValue(winreg.HKEY_LOCAL_MACHINE, rf"SYSTEM\CurrentControlSet\Services\{name}\PythonClass")
        except OSError:
            return None
        return Path(value.rsplit("\\", 1)[0])

    def event_log_entries(self, source: str, since: float) -> list[tuple[int, str]]:
        """(event ID, text) of the Application log's entries from ``source`` since ``since``
        (a time.time() value), newest first."""
        import win32evtlog
        import win32evtlogutil

        log = win32evtlog.OpenEventLog(None, "Application")
        flags = win32evtlog.EVENTLOG_BACKWARDS_READ | win32evtlog.EVENTLOG_SEQUENTIAL_READ
        entries = []
        try:
            while records := win32evtlog.ReadEventLog(log, flags, 0):
                for record in records:
                    if record.TimeGenerated.timestamp() < int(since):
                        return entries
                    if record.SourceName == source:
                        entries.append((record.EventID & 0xFFFF,
                                        win32evtlogutil.SafeFormatMessage(record, "Application")))
        finally:
            win32evtlog.CloseEventLog(log)
        return entries

    def start_console(self, args: list, cwd: Path, env: dict, log) -> subprocess.Popen:
        """A console program in a process group of its own, as a console window runs it."""
        return subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                creationflags=subprocess.CREATE_NEW_PROCESS_GROUP)

    def interrupt(self, process: subprocess.Popen) -> None:
        """Ctrl+Break in that console: every process of the group gets it."""
        process.send_signal(signal.CTRL_BREAK_EVENT)

    def start_batch(self, folder: Path, args: list, env: dict, log) -> subprocess.Popen:
        """What a double-click on ``start_server.bat`` in ``folder`` runs, with arguments."""
        return self.start_console(["cmd.exe", "/c", "start_server.bat", *args], folder, env, log)

    def kill_tree(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            self.run(["taskkill", "/PID", process.pid, "/T", "/F"])
        process.wait(30)


class FakeServiceManager:
    """The service manager, as service_control.py sees it (its ``manager`` seam), on any OS: the
    services installed, their stored values, and a started service run as
    ``tornado_server.py service run`` (the service's own code path) with its stored options. Its
    state follows the process: "start_pending" until /healthz answers, "running", "stop_pending"
    once asked to stop, "stopped" when the process ended (an error entry in ``events`` when it
    ended with an error)."""

    def __init__(self, windows: FakeWindows) -> None:
        self.windows = windows
        self.services: dict[str, dict] = {}
        self.python: Path | None = None  # the interpreter the next install's service runs with

    def state(self, name: str):
        from tornado_wsgi_server.service_manager import ServiceState

        service = self.services.get(name)
        if service is None:
            return None
        process = service.get("process")
        if process is None:
            return ServiceState("stopped", service.get("exit_code", 0))
        code = process.poll()
        if code is not None:
            service["process"], service["exit_code"] = None, code
            if code == 0 and service.get("stopping"):
                self.windows.events.append((101, "stopped", name, time.time()))
            elif code:
                log = Path(service["folder"]) / "logs" / "service-run.log"
                tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:] if log.is_file() else []
                self.windows.events.append((102 if not service.get("serving") else 103,
                                            f"{name} could not start: " + " ".join(tail), name, time.time()))
            return ServiceState("stopped", code)
        if service.get("stopping"):
            return ServiceState("stop_pending")
        if service.get("serving") or status(service["port"], timeout=2) == 200:
            if not service.get("serving"):
                service["serving"] = True
                self.windows.events.append((100, "started", name, time.time()))
            return ServiceState("running")
        return ServiceState("start_pending")

    def details(self, name: str):
        from tornado_wsgi_server.service_manager import ServiceDetails

        service = self.services.get(name)
        if service is None:
            return None
        process = service.get("process")
        running = process is not None and process.poll() is None
        return ServiceDetails(process.pid if running else None, service["account"], service["startup"])

    def python_services(self) -> dict:
        return {name: service["class"] for name, service in self.services.items()}

    def installed_class(self, name: str):
        return self.services.get(name, {}).get("class")

    def create(self, spec) -> None:
        self.windows.calls.append(("create", spec.name, spec.account))
        self.services[spec.name] = {"options": {}}
        self.update(spec)

    def update(self, spec) -> None:
        folder = spec.class_string.rsplit("\\", 1)[0]
        self.services[spec.name].update(
            {"class": spec.class_string, "folder": Path(folder), "account": spec.account, "startup": spec.startup,
             "python": self.python or venv_python(Path(folder))})

    def get_option(self, name: str, option: str, default=None):
        return self.services[name]["options"].get(option, default)

    def set_option(self, name: str, option: str, value) -> None:
        self.services[name]["options"][option] = value

    def start(self, name: str, args) -> None:
        from tornado_wsgi_server.project import load_project
        from tornado_wsgi_server.service_manager import SERVER_ARGS_OPTION
        from tornado_wsgi_server.service_runner import build_options

        service = self.services[name]
        folder = service["folder"]
        server_args = [*shlex.split(service["options"].get(SERVER_ARGS_OPTION, "")), *args]
        service["port"] = build_options(load_project(folder), server_args).port
        (folder / "logs").mkdir(exist_ok=True)
        with open(folder / "logs" / "service-run.log", "ab") as log:
            service["process"] = subprocess.Popen(
                [str(service["python"]), "tornado_server.py", "service", "run", *server_args],
                cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        service.update(stopping=False, serving=False, exit_code=0)

    def stop(self, name: str) -> None:
        service = self.services[name]
        if service.get("process") is not None:
            service["stopping"] = True
            service["process"].send_signal(signal.SIGINT)

    def delete(self, name: str) -> None:
        self.windows.calls.append(("delete", name))
        self.kill(name)
        del self.services[name]
        self.windows.settings.clear()

    def kill(self, name: str) -> None:
        process = self.services.get(name, {}).get("process")
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(30)

    def prepare_host(self, name: str) -> None:
        self.windows.calls.append(("prepare_host", name))

    def grant_logon_right(self, account: str) -> None:
        self.windows.calls.append(("grant_logon_right", account))

    def last_event(self, name: str, since: float):
        for _, text, source, when in reversed(self.windows.events):
            if source == name and when >= since and "could not start" in text:
                return text
        return None

    def run(self, command: list[str]) -> tuple[int, str]:
        outcome = self.windows.run_native(command)
        return outcome.code, outcome.output


@dataclass
class FakeWindows(Windows):
    """Windows' answers on any OS (see the module's docstring). ``outcomes`` maps the first
    arguments of a call, e.g. ``("sc.exe", "qfailure")``, to its Outcome (the longest match
    wins); ``events`` is what the Event Log holds: (ID, text, source, time). The service commands
    run the project's own code (service_control.py) on ``manager``, a FakeServiceManager."""

    outcomes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    settings: dict = field(default_factory=dict)  # what sc.exe set: "failure", "failureflag", "start"
    rules: dict = field(default_factory=dict)  # firewall rule name -> its netsh arguments
    acls: dict = field(default_factory=dict)  # folder -> {trustee: rights} icacls granted
    manager: FakeServiceManager | None = None
    users: dict = field(default_factory=dict)  # local user name -> password, as net user keeps them
    groups: dict = field(default_factory=dict)  # local group name -> its members, as net localgroup keeps them

    def __post_init__(self) -> None:
        self.manager = FakeServiceManager(self)

    def scripted(self, *call: str) -> Outcome | None:
        self.calls.append(call)
        for size in range(len(call), 0, -1):
            if call[:size] in self.outcomes:
                return self.outcomes[call[:size]]
        return None

    def sc(self, *args: str) -> Outcome:
        """The sc.exe commands the project runs and the checks read, on the recorded state;
        any other command fails, as a misspelt one would."""
        scripted = self.scripted("sc.exe", *args)
        if scripted is not None:
            return scripted
        command, rest = (args[0], args[1:]) if args else ("", ())
        if not rest or rest[0] not in self.manager.services:
            return Outcome(ERROR_SERVICE_DOES_NOT_EXIST, "[SC] OpenService FAILED 1060")
        if command == "failure" and rest[1::2] == ("reset=", "actions="):
            self.settings["failure"] = rest[4]
        elif command == "failureflag" and rest[1:] in (("0",), ("1",)):
            self.settings["failureflag"] = rest[1] == "1"
        elif command == "sidtype" and rest[1:] in (("none",), ("unrestricted",), ("restricted",)):
            self.settings["sidtype"] = rest[1]
        elif command == "sdset" and len(rest) == 2 and rest[1].startswith("D:("):
            self.settings["sdset"] = rest[1]
        elif command == "config" and rest[1] == "start=":
            self.settings["start"] = rest[2]
        elif command == "qfailure":
            actions = self.settings.get("failure", "").split("/")
            return Outcome(0, "".join(f"FAILURE_ACTIONS : {kind.upper()} -- Delay = {delay} milliseconds.\n"
                                      for kind, delay in zip(actions[::2], actions[1::2], strict=False)))
        elif command == "qfailureflag":
            return Outcome(0, f"FAILURE_ACTIONS_ON_NONCRASH_FAILURES: {str(self.settings.get('failureflag', False)).upper()}")
        elif command == "qc":
            service = self.manager.services[rest[0]]
            start = {"delayed-auto": "2   AUTO_START  (DELAYED)", "auto": "2   AUTO_START"}.get(
                self.settings.get("start", "auto"), "3   DEMAND_START")
            return Outcome(0, f"SERVICE_NAME: {rest[0]}\n        START_TYPE         : {start}\n"
                              f"        BINARY_PATH_NAME   : {service['folder'] / '.venv' / 'pythonservice.exe'}\n"
                              f"        SERVICE_START_NAME : {service['account']}\n")
        else:
            return Outcome(1639, f"[SC] invalid command line: {' '.join(args)}")
        return Outcome(0, f"[SC] {command} SUCCESS")

    def netsh(self, *args: str) -> Outcome:
        """Firewall rules as ``netsh advfirewall firewall add|delete|show rule name=...``
        keeps them; any other command fails, as a misspelt one would."""
        scripted = self.scripted("netsh", *args)
        if scripted is not None:
            return scripted
        if args[:2] != ("advfirewall", "firewall") or args[3:4] != ("rule",) or not args[4:5] \
                or not args[4].startswith("name="):
            return Outcome(1, f"The following command was not found: {' '.join(args)}.")
        action, name = args[2], args[4].removeprefix("name=")
        if action == "add":
            fields = dict(arg.split("=", 1) for arg in args[5:])
            if not {"dir", "action", "protocol", "localport"} <= set(fields):
                return Outcome(1, "A specified value is not valid.")
            self.rules[name] = fields
            return Outcome(0, "Ok.")
        if action in ("show", "delete") and name not in self.rules:
            return Outcome(1, "No rules match the specified criteria.")
        if action == "delete":
            del self.rules[name]
            return Outcome(0, "Deleted 1 rule(s).\nOk.")
        if action == "show":
            return Outcome(0, f"Rule Name: {name}\n" + "".join(f"{key.title()}: {value}\n"
                                                                for key, value in self.rules[name].items()))
        return Outcome(1, f"The following command was not found: {' '.join(args)}.")

    def add_local_user(self, name: str, password: str) -> Outcome:
        """``net user NAME PASSWORD /add`` with Windows' refusals: a name of 1-20 characters
        without ``"/\\[]:;|=,+*?<>@``, not taken; a password over 14 characters (net user
        asks whether to go on)."""
        scripted = self.scripted("net", "user", name, "/add")
        if scripted is not None:
            return scripted
        if not 0 < len(name) <= 20 or any(char in name for char in '"/\\[]:;|=,+*?<>@'):
            return Outcome(2, "The syntax of this command is:\n\nNET USER")
        if name.lower() in (taken.lower() for taken in self.users):
            return Outcome(2, "The account already exists.")
        if len(password) > 14:  # Windows asks, and with no input the answer is no
            return Outcome(2, "The password entered is longer than 14 characters. ... (Y/N) [Y]: No valid response was provided.")
        self.users[name] = password
        return Outcome(0, "The command completed successfully.")

    def remove_local_user(self, name: str) -> Outcome:
        scripted = self.scripted("net", "user", name, "/delete")
        if scripted is not None:
            return scripted
        if self.users.pop(name, None) is None:
            return Outcome(2, "The user name could not be found.")
        return Outcome(0, "The command completed successfully.")

    def add_local_group(self, name: str) -> Outcome:
        """``net localgroup NAME /add`` with Windows' refusals: a name of 1-256 characters
        without ``"/\\[]:|<>+=;?*,``, not taken by a group or a user."""
        scripted = self.scripted("net", "localgroup", name, "/add")
        if scripted is not None:
            return scripted
        if not 0 < len(name) <= 256 or any(char in name for char in '"/\\[]:|<>+=;?*,'):
            return Outcome(2, "The syntax of this command is:\n\nNET LOCALGROUP")
        if name.lower() in (taken.lower() for taken in [*self.groups, *self.users]):
            return Outcome(2, "The account already exists.")
        self.groups[name] = []
        return Outcome(0, "The command completed successfully.")

    def add_to_local_group(self, group: str, user: str) -> Outcome:
        scripted = self.scripted("net", "localgroup", group, user, "/add")
        if scripted is not None:
            return scripted
        members = next((self.groups[name] for name in self.groups if name.lower() == group.lower()), None)
        if members is None:
            return Outcome(2, "The specified local group does not exist.")
        if user.lower() not in (name.lower() for name in self.users):
            return Outcome(2, f"There is no such global user or group: {user}.")
        if user.lower() in (member.lower() for member in members):
            return Outcome(2, "The specified account name is already a member of the group.")
        members.append(user)
        return Outcome(0, "The command completed successfully.")

    def remove_local_group(self, name: str) -> Outcome:
        scripted = self.scripted("net", "localgroup", name, "/delete")
        if scripted is not None:
            return scripted
        found = next((group for group in self.groups if group.lower() == name.lower()), None)
        if found is None:
            return Outcome(2, "The specified local group does not exist.")
        del self.groups[found]
        return Outcome(0, "The command completed successfully.")

    def local_domain(self) -> str:
        return "FAKEHOST"

    def signon_env(self, folder: Path) -> dict:
        """pyspnego's NTLM outside Windows checks passwords against NTLM_USER_FILE: the users
        net user made, as ``DOMAIN:user:password`` lines; their local groups go in
        NTLM_GROUP_FILE (``DOMAIN\\user: Group, Group``), where Windows has them in the token."""
        path = Path(folder) / "ntlm-users"
        path.write_text("".join(f"{self.local_domain()}:{name}:{password}\n"
                                for name, password in self.users.items()), encoding="utf-8")
        groups = Path(folder) / "ntlm-groups"
        groups.write_text("".join(
            f"{self.local_domain()}\\{user}: "
            + ", ".join(group for group, members in self.groups.items() if user in members) + "\n"
            for user in self.users), encoding="utf-8")
        return {"NTLM_USER_FILE": str(path), "NTLM_GROUP_FILE": str(groups)}

    def run_native(self, command: list[str]) -> Outcome:
        """A command the project's own code builds (windows_admin.py), through the fakes above."""
        program, *args = command
        if program == "sc.exe":
            return self.sc(*args)
        if program == "netsh":
            return self.netsh(*args)
        if program == "icacls" and args:
            return self.icacls(Path(args[0]), *args[1:])
        return Outcome(9009, f"'{program}' is not recognized as an internal or external command")

    def icacls(self, path: Path, *args: str) -> Outcome:
        """``icacls PATH [/inheritance:r] /grant[:r] TRUSTEE:RIGHTS...`` and ``icacls PATH
        /remove TRUSTEE`` kept per folder, and ``icacls PATH`` showing them as Windows does
        (``NT SERVICE\\x:(OI)(CI)(RX)``). A service's virtual account has a name only while the
        service exists; a folder that is not there is refused."""
        scripted = self.scripted("icacls", str(path), *args)
        if scripted is not None:
            return scripted
        key = str(path) if IS_WINDOWS else str(path).replace("\\", "/")  # the project's commands use \
        if not Path(key).exists():
            return Outcome(2, f"{path}: The system cannot find the file specified.\n"
                              "Successfully processed 0 files; Failed processing 1 files")
        for trustee in (arg.rsplit(":", 1)[0] if ":" in arg else arg for arg in args if not arg.startswith("/")):
            if trustee.casefold().startswith("nt service\\") and trustee.split("\\", 1)[1] not in self.manager.services:
                return Outcome(1332, f"{trustee}: No mapping between account names and security IDs was done.\n"
                                     "Successfully processed 0 files; Failed processing 1 files")
        if args[:1] == ("/remove",) and len(args) > 1:
            acl = self.acls.setdefault(key, {})
            for trustee in args[1:]:
                acl.pop(trustee, None)
            return Outcome(0, "processed file: " + key)
        if not args:
            grants = self.acls.get(key, {})
            shown = [f"{trustee}:{rights}" for trustee, rights in grants.items()]
            return Outcome(0, "\n".join(f"{key if n == 0 else ' ' * len(key)} {line}" for n, line in enumerate(shown))
                           + "\nSuccessfully processed 1 files; Failed processing 0 files\n")
        options = [arg for arg in args if arg.startswith("/")]
        grants = [arg for arg in args if not arg.startswith("/")]
        if not set(options) <= {"/inheritance:r", "/grant", "/grant:r"} or not grants \
                or not all(re.fullmatch(r"[^:]+:(\((OI|CI)\))*(F|M|RX|R)", grant) for grant in grants):
            return Outcome(87, "Invalid parameter")
        acl = {} if "/inheritance:r" in options else self.acls.setdefault(key, {})
        for grant in grants:
            trustee, rights = grant.rsplit(":", 1)
            flags, simple = re.fullmatch(r"((?:\((?:OI|CI)\))*)(\w+)", rights).groups()
            acl[trustee] = f"{flags}({simple})"
        self.acls[key] = acl
        return Outcome(0, "processed file: " + key)

    def service(self, *args: str, folder: Path = PROJECT_DIR, python: Path | None = None) -> Outcome:
        """``tornado_server.py service ARGS`` in ``folder``: the project's own command code on
        the fake service manager, in a fresh environment as a new process would have."""
        scripted = self.scripted("service", *args)
        if scripted is not None:
            return scripted
        from tornado_wsgi_server import service_control
        from tornado_wsgi_server.project import load_project

        self.manager.python = python or venv_python(folder)
        output, saved = io.StringIO(), dict(os.environ)
        try:
            with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
                code = service_control.main(load_project(Path(folder)), list(args), self.manager, out=output)
        finally:
            os.environ.clear()
            os.environ.update(saved)
        print(f"> service {' '.join(args)} (in {folder}) -> {code}\n{output.getvalue().rstrip()}", flush=True)
        return Outcome(code, output.getvalue())

    def service_folder(self, name: str) -> Path | None:
        self.calls.append(("service_folder", name))
        return self.manager.services.get(name, {}).get("folder")

    def event_log_entries(self, source: str, since: float) -> list[tuple[int, str]]:
        self.calls.append(("event_log_entries", source))
        return [(event_id, text) for event_id, text, name, when in reversed(self.events)
                if name == source and when >= since - 1]

    def start_console(self, args: list, cwd: Path, env: dict, log) -> subprocess.Popen:
        self.calls.append(("start_console", *map(str, args)))
        return subprocess.Popen([str(a) for a in args], cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)

    def interrupt(self, process: subprocess.Popen) -> None:
        """Ctrl+C in a terminal: SIGINT to the whole process group."""
        self.calls.append(("interrupt",))
        os.killpg(process.pid, signal.SIGINT)

    def start_batch(self, folder: Path, args: list, env: dict, log) -> subprocess.Popen:
        self.calls.append(("start_batch", str(folder), *map(str, args)))
        return subprocess.Popen(["bash", "start_server.sh", *map(str, args)], cwd=folder, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)

    def kill_tree(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)


def system() -> Windows:
    """The real calls on Windows; elsewhere the fake, so that a script runs as far as it can."""
    return Windows() if IS_WINDOWS else FakeWindows()
