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

import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class FakeWindows(Windows):
    """Windows' answers on any OS (see the module's docstring). ``outcomes`` maps the first
    arguments of a call, e.g. ``("sc.exe", "qfailure")``, to its Outcome (the longest match
    wins); ``events`` is what the Event Log holds."""

    outcomes: dict = field(default_factory=dict)
    events: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    installed: dict = field(default_factory=dict)  # "folder", "python", "args" of the service
    process: subprocess.Popen | None = None
    settings: dict = field(default_factory=dict)  # what sc.exe set: "failure", "failureflag", "start"
    rules: dict = field(default_factory=dict)  # firewall rule name -> its netsh arguments
    users: dict = field(default_factory=dict)  # local user name -> password, as net user keeps them

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
        if not self.installed or not rest:
            return Outcome(ERROR_SERVICE_DOES_NOT_EXIST, "[SC] OpenService FAILED 1060")
        if command == "failure" and rest[1::2] == ("reset=", "actions="):
            self.settings["failure"] = rest[4]
        elif command == "failureflag" and rest[1:] in (("0",), ("1",)):
            self.settings["failureflag"] = rest[1] == "1"
        elif command == "config" and rest[1] == "start=":
            self.settings["start"] = rest[2]
        elif command == "qfailure":
            actions = self.settings.get("failure", "").split("/")
            return Outcome(0, "".join(f"FAILURE_ACTIONS : {kind.upper()} -- Delay = {delay} milliseconds.\n"
                                      for kind, delay in zip(actions[::2], actions[1::2], strict=False)))
        elif command == "qfailureflag":
            return Outcome(0, f"FAILURE_ACTIONS_ON_NONCRASH_FAILURES: {str(self.settings.get('failureflag', False)).upper()}")
        elif command == "qc":
            start = {"delayed-auto": "2   AUTO_START  (DELAYED)", "auto": "2   AUTO_START"}.get(
                self.settings.get("start", "auto"), "3   DEMAND_START")
            return Outcome(0, f"SERVICE_NAME: {rest[0]}\n        START_TYPE         : {start}\n"
                              f"        BINARY_PATH_NAME   : {self.installed['folder'] / '.venv' / 'pythonservice.exe'}\n"
                              "        SERVICE_START_NAME : LocalSystem\n")
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

    def local_domain(self) -> str:
        return "FAKEHOST"

    def signon_env(self, folder: Path) -> dict:
        """pyspnego's NTLM outside Windows checks passwords against NTLM_USER_FILE: the users
        net user made, as ``DOMAIN:user:password`` lines."""
        path = Path(folder) / "ntlm-users"
        path.write_text("".join(f"{self.local_domain()}:{name}:{password}\n"
                                for name, password in self.users.items()), encoding="utf-8")
        return {"NTLM_USER_FILE": str(path)}

    def run_native(self, command: list[str]) -> Outcome:
        """A command the project's own code builds (windows_admin.py), through the fakes above."""
        program, *args = command
        if program == "sc.exe":
            return self.sc(*args)
        if program == "netsh":
            return self.netsh(*args)
        return Outcome(9009, f"'{program}' is not recognized as an internal or external command")

    def icacls(self, path: Path, *args: str) -> Outcome:
        return self.scripted("icacls", str(path), *args) or Outcome(0)

    def service(self, *args: str, folder: Path = PROJECT_DIR, python: Path | None = None) -> Outcome:
        """What pywin32's command line answers, from the state of a one-service manager."""
        scripted = self.scripted("service", *args)
        if scripted is not None:
            return scripted
        options = list(args[:args.index("--")] if "--" in args else args)
        while options[:1] == ["--wait"]:  # pywin32's options come before the command
            options = options[2:]
        command = options[0] if options else ""
        server_args = list(args[args.index("--") + 1:]) if "--" in args else []
        running = self.process is not None and self.process.poll() is None
        if command != "install" and not self.installed:
            return Outcome(ERROR_SERVICE_DOES_NOT_EXIST, "The specified service does not exist as an installed service.")
        if command == "install":  # an existing service is updated (pywin32's "install" falls through)
            self.installed = {"folder": Path(folder), "python": python or venv_python(folder), "args": server_args}
            return self.after_install(Path(folder), server_args)
        elif command == "start":
            if running:
                return Outcome(ERROR_SERVICE_ALREADY_RUNNING, "An instance of the service is already running.")
            self.start_service()
        elif command == "restart":
            self.stop_service()
            self.start_service()
        elif command == "stop":
            if not running:
                return Outcome(ERROR_SERVICE_NOT_ACTIVE, "The service has not been started.")
            self.stop_service()
        elif command == "remove":
            self.stop_service()
            self.installed, self.settings = {}, {}
            from tornado_wsgi_server import windows_admin

            for native in windows_admin.remove_commands(self.service_name(Path(folder))):
                self.run_native(native)
        elif command == "reload":  # what the service's reload does, through the control channel
            return self.run([self.installed["python"], "tornado_server.py", "reload", *self.installed["args"]],
                            cwd=self.installed["folder"])
        elif command == "status":
            return Outcome(0, "running" if running else "stopped")
        return Outcome(0)

    @staticmethod
    def service_name(folder: Path) -> str:
        from tornado_wsgi_server.project import load_project

        return load_project(folder).slug

    def after_install(self, folder: Path, server_args: list[str]) -> Outcome:
        """What ``service install`` runs once pywin32 made the service (windows_service.py
        after_install_or_remove): the project's own commands, here through the fakes."""
        from tornado_wsgi_server import windows_admin
        from tornado_wsgi_server.project import load_project
        from tornado_wsgi_server.service_runner import ServiceError, build_options

        try:
            options = build_options(load_project(folder), server_args)
        except ServiceError as exc:
            return Outcome(1, f"ERROR: {exc}")
        commands = windows_admin.install_commands(self.service_name(folder), options.host, options.port, True)
        # As windows_admin.run_commands: deleting a rule that is not there is no failure.
        failed = [native for native in commands if self.run_native(native).code
                  and native[:5] != windows_admin.firewall_close_command("")[:5]]
        return Outcome(0, "Service installed" + "".join(f"\n  failed: {native}" for native in failed))

    def start_service(self) -> None:
        folder = self.installed["folder"]
        (folder / "logs").mkdir(exist_ok=True)
        with open(folder / "logs" / "service-run.log", "ab") as log:
            self.events.append((100, "started"))
            self.process = subprocess.Popen(
                [str(self.installed["python"]), "tornado_server.py", "service", "run", *self.installed["args"]],
                cwd=folder, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def stop_service(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                if self.process.wait(60) == 0:
                    self.events.append((101, "stopped"))
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def service_folder(self, name: str) -> Path | None:
        self.calls.append(("service_folder", name))
        return self.installed.get("folder")

    def event_log_entries(self, source: str, since: float) -> list[tuple[int, str]]:
        self.calls.append(("event_log_entries", source))
        return list(self.events)

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
