"""The Windows service as an operator uses it, checked end to end.

Run by the Windows job of .github/workflows/ci.yml (``python ci/windows_service_checks.py``),
after the test suite: it prepares the project as ``start_server.bat`` would (.env, .venv,
database in ``data``), then installs, starts, restarts, reloads, stops and removes the service
and checks each outcome and exit code (each command waits: the site answers right after
``start`` and is gone right after ``stop``), a failed start reported with its reason, the
restart actions, delayed start and firewall rule, the rule following a port change in ``.env``,
the Event Log, the service's own account and what it may write (and no longer, once removed),
and a second install from another folder (or under a second name from the same folder)
refused. Exits 0 when every check passed, else 1.

Every Windows-only call goes through ``ci/windows.py``; elsewhere its fake answers them and
the service runs as ``tornado_server.py service run``, so this script runs on Linux too.
"""

from __future__ import annotations

import http.cookiejar
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import CheckFailed, CheckSuite, expect, status, wait_for  # noqa: E402
from windows import PROJECT_DIR, Windows, system, venv_python  # noqa: E402

# The account the service runs as: its own virtual account, which may read the project and
# change only data\ and logs\ (check_service_account reads the folders' rights).
SERVICE_ACCOUNT = "NT SERVICE\\{name}"
# An install from a second copy of the project, under the same service name, is refused;
# under a name of its own (--name) it is a second service.
SECOND_INSTALL_REFUSED = True
# Event Log IDs (tornado_wsgi_server/service_runner.py EVENT_IDS) a start and stop write.
STARTED, STOPPED = 100, 101
# Exit codes of the service commands when Windows refuses (winerror.h).
ERROR_SERVICE_ALREADY_RUNNING, ERROR_SERVICE_DOES_NOT_EXIST, ERROR_SERVICE_NOT_ACTIVE = 1056, 1060, 1062


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_name(project_dir: Path) -> str:
    sys.path.insert(0, str(project_dir))
    from tornado_wsgi_server.project import load_project

    return load_project(project_dir).slug


class NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class ServiceChecks(CheckSuite):
    def __init__(self, windows: Windows, project_dir: Path = PROJECT_DIR) -> None:
        self.windows = windows
        self.project_dir = Path(project_dir)
        self.name = service_name(self.project_dir)
        self.began = time.time()
        self.scratch = Path(tempfile.mkdtemp(prefix="service-checks-"))

    # --- steps -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """.env as start_server.bat makes it, with a SQLite file so that /healthz needs no
        database server; then bootstrap.py (.venv, requirements, migrate, collectstatic)."""
        from tornado_wsgi_server.bootstrap import ensure_env_file

        ensure_env_file()
        env_file = self.project_dir / ".env"
        data = self.project_dir / "data"
        data.mkdir(exist_ok=True)
        database = (data / "service-ci.sqlite3").as_posix()
        lines = [line for line in env_file.read_text(encoding="utf-8").splitlines()
                 if not line.startswith("DATABASE_URL=")]
        env_file.write_text("\n".join([f"DATABASE_URL=sqlite:///{database}", *lines]) + "\n", encoding="utf-8")
        done = subprocess.run([sys.executable, "bootstrap.py"], cwd=self.project_dir, timeout=900, check=False)
        expect(done.returncode == 0, f"bootstrap.py exited with {done.returncode}")
        expect(venv_python(self.project_dir).exists(), "bootstrap.py made no .venv")

    def service(self, *args: str, wanted: int | None = 0) -> str:
        """Run ``service ARGS``; with ``wanted`` None any non-zero exit code is expected."""
        outcome = self.windows.service(*args, folder=self.project_dir)
        if wanted is None:
            expect(outcome.code != 0, f"`service {' '.join(args)}` exited 0: {outcome.output.strip()}")
        else:
            expect(outcome.code == wanted, f"`service {' '.join(args)}` exited {outcome.code}, not {wanted}: "
                                           f"{outcome.output.strip()}")
        return outcome.output

    def wait_serving(self, port: int, timeout: float = 90) -> None:
        if not wait_for(lambda: status(port) == 200, timeout):
            self.show_logs()
            raise CheckFailed(f"/healthz on port {port} never answered 200 in {timeout}s")

    def show_logs(self) -> None:
        for log in sorted((self.project_dir / "logs").glob("*.log")):
            print(f"--- {log}\n{log.read_text(encoding='utf-8', errors='replace')[-5000:]}", flush=True)
        for event_id, text in self.windows.event_log_entries(self.name, self.began)[:20]:
            print(f"--- Event {event_id}: {text}", flush=True)

    # --- checks ------------------------------------------------------------------------------

    def round_trip(self, workers: int) -> None:
        """install, start, /healthz, status, stop, remove: each exits 0, and start and stop
        return once done; a second start, a stop of a stopped service and a start after remove
        exit with Windows' error numbers."""
        port = free_port()
        self.service("install", "--", "--port", str(port), "--workers", str(workers))
        self.service("start")
        expect(status(port) == 200, "`service start` returned before the site answered")
        expect("running" in self.service("status"), "status does not say running")
        self.service("start", wanted=ERROR_SERVICE_ALREADY_RUNNING)
        self.service("stop")
        expect(status(port) is None, "still answering after `service stop` returned")
        self.service("stop", wanted=ERROR_SERVICE_NOT_ACTIVE)
        self.service("remove")
        self.service("start", wanted=ERROR_SERVICE_DOES_NOT_EXIST)
        log = self.project_dir / "logs" / "server.log"
        expect(log.is_file() and "Stopped." in log.read_text(encoding="utf-8", errors="replace"),
               "logs/server.log has no clean stop")

    def restart_and_reload(self) -> None:
        """restart and reload exit 0 and the site answers right after each."""
        port = free_port()
        self.service("install", "--", "--port", str(port), "--workers", "2")
        try:
            self.service("start")
            self.service("restart")
            expect(status(port) == 200, "not answering right after `service restart`")
            self.service("reload")
            expect(status(port) == 200, "not answering after reload")
            self.service("stop")
        finally:
            self.windows.service("remove", folder=self.project_dir)

    def admin_signs_in_and_saves(self) -> None:
        """Under the service's own account (which may change only data\\ and logs\\): an admin
        signs in through the login form and adds a group, which lands in the database."""
        password, group = "Ci-service-pw-2718", f"service-ci-{int(time.time())}"
        manage = [str(venv_python(self.project_dir)), "manage.py"]
        made = subprocess.run([*manage, "createsuperuser", "--noinput", "--username", "ci-admin",
                               "--email", "ci@example.com"], cwd=self.project_dir, timeout=300, check=False,
                              capture_output=True, text=True, env={**os.environ, "DJANGO_SUPERUSER_PASSWORD": password})
        expect(made.returncode == 0 or "already taken" in made.stderr, f"createsuperuser: {made.stderr[-2000:]}")
        port = free_port()
        self.service("install", "--", "--port", str(port))
        try:
            self.service("start")
            browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                                  NoRedirects())
            base = f"http://127.0.0.1:{port}"

            def post(path: str, fields: dict) -> int:
                page = browser.open(base + path, timeout=30).read().decode("utf-8", "replace")
                token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page)
                expect(token is not None, f"no CSRF token on {path}")
                body = urllib.parse.urlencode({**fields, "csrfmiddlewaretoken": token.group(1)}).encode()
                try:
                    return browser.open(urllib.request.Request(base + path, data=body), timeout=30).status
                except urllib.error.HTTPError as answer:
                    return answer.code

            expect(post("/admin/login/?next=/admin/", {"username": "ci-admin", "password": password,
                                                       "next": "/admin/"}) == 302, "the admin login failed")
            expect(post("/admin/auth/group/add/", {"name": group}) == 302, "adding a group in the admin failed")
            self.service("stop")
        finally:
            self.windows.service("remove", folder=self.project_dir)
        found = subprocess.run([*manage, "shell", "-c", "from django.contrib.auth.models import Group; "
                                f"print(Group.objects.filter(name={group!r}).exists())"],
                               cwd=self.project_dir, timeout=300, check=False, capture_output=True, text=True)
        expect(found.stdout.strip().endswith("True"), f"the group is not in the database: {found.stdout}{found.stderr}")

    def failed_start(self) -> None:
        """A port taken by another program: start exits 1 and says why, from the Event Log
        (or the log file)."""
        with socket.socket() as holder:
            holder.bind(("127.0.0.1", 0))
            holder.listen()
            port = holder.getsockname()[1]
            self.service("install", "--", "--port", str(port))
            try:
                output = self.service("start", wanted=1)
                expect("did not start" in output and str(port) in output,
                       f"the failed start does not say why: {output.strip()}")
            finally:
                self.windows.service("remove", folder=self.project_dir)

    def event_log(self) -> None:
        """The starts and stops above are in the Application log under the service's name."""
        ids = {event_id for event_id, _ in self.windows.event_log_entries(self.name, self.began)}
        expect({STARTED, STOPPED} <= ids, f"Event Log IDs from {self.name}: {sorted(ids)}, "
                                          f"wanted {STARTED} (started) and {STOPPED} (stopped)")

    def install_settings_and_firewall(self) -> None:
        """Install sets restart on failure, the failure flag, delayed start and a firewall rule
        for the port; installing again with another port moves the rule; remove deletes it."""
        rule = f"name={self.name}-web"
        first, second = free_port(), free_port()
        try:
            self.service("install", "--", "--host", "0.0.0.0", "--port", str(first))
            failure = self.windows.sc("qfailure", self.name)
            expect("RESTART -- Delay = 5000" in failure.output, "no restart actions")
            expect("TRUE" in self.windows.sc("qfailureflag", self.name).output, "no failure flag")
            expect("DELAYED" in self.windows.sc("qc", self.name).output, "not a delayed start")
            shown = self.windows.netsh("advfirewall", "firewall", "show", "rule", rule)
            expect(shown.code == 0 and str(first) in shown.output, f"no firewall rule for port {first}")
            self.service("install", "--", "--host", "0.0.0.0", "--port", str(second))
            shown = self.windows.netsh("advfirewall", "firewall", "show", "rule", rule)
            expect(shown.code == 0 and str(second) in shown.output and str(first) not in shown.output,
                   f"the firewall rule did not follow the port from {first} to {second}")
        finally:
            self.service("remove")
        shown = self.windows.netsh("advfirewall", "firewall", "show", "rule", rule)
        expect(shown.code != 0, "the firewall rule outlived the service")

    def firewall_follows_env(self) -> None:
        """SERVER_PORT changed in .env, then stop and start: the rule opens the new port."""
        rule = f"name={self.name}-web"
        env_file = self.project_dir / ".env"
        original = env_file.read_text(encoding="utf-8")
        first, second = free_port(), free_port()

        def use_port(port: int) -> None:
            lines = [line for line in original.splitlines() if not line.startswith(("SERVER_PORT=", "SERVER_HOST="))]
            env_file.write_text("\n".join([*lines, "SERVER_HOST=0.0.0.0", f"SERVER_PORT={port}"]) + "\n",
                                encoding="utf-8")

        try:
            use_port(first)
            self.service("install")
            self.service("start")
            self.service("stop")
            use_port(second)
            self.service("start")
            expect(status(second) == 200, f"not serving the new port {second}")
            shown = self.windows.netsh("advfirewall", "firewall", "show", "rule", rule)
            expect(shown.code == 0 and str(second) in shown.output and str(first) not in shown.output,
                   f"the firewall rule did not follow SERVER_PORT from {first} to {second}")
            self.service("stop")
        finally:
            env_file.write_text(original, encoding="utf-8")
            self.windows.service("remove", folder=self.project_dir)

    def second_install_from_another_folder(self) -> None:
        """A second service name from the same folder is refused. A copy of the project
        (staging beside live) installing the same service name is refused, naming both folders;
        under a name of its own it installs beside it."""
        copy = self.scratch / "staging copy"
        shutil.copytree(self.project_dir, copy, ignore=shutil.ignore_patterns(
            ".venv", ".git", "logs", "data", "staticfiles", "__pycache__", "*.sqlite3"))
        self.service("install", "--", "--port", str(free_port()))
        try:
            # A second name from the same folder would share its data\ and logs\: refused.
            other = self.windows.service("--name", f"{self.name}_second", "install")
            expect(other.code == 2 and f"already runs the service {self.name}" in other.output
                   and self.windows.service_folder(f"{self.name}_second") is None,
                   f"a second service name from the same folder was not refused: {other.output.strip()}")
            second = self.windows.service("install", "--", "--port", str(free_port()), folder=copy,
                                          python=venv_python(self.project_dir))
            # Resolved: a temporary folder may be named by its short (8.3) name on Windows.
            installed = self.windows.service_folder(self.name)
            installed = installed and installed.resolve()
            copy = copy.resolve()
            if SECOND_INSTALL_REFUSED:
                expect(second.code != 0, "a second folder took over the service")
                expect(str(self.project_dir) in second.output and str(copy) in second.output
                       and "--name" in second.output, "the refusal does not name both folders and --name")
                expect(installed == self.project_dir.resolve(), f"the service now runs {installed}")
                removed = self.windows.service("remove", folder=copy, python=venv_python(self.project_dir))
                expect(removed.code != 0 and self.windows.service_folder(self.name) is not None,
                       "`service remove` in the copy removed the live service")
                named = self.windows.service("--name", f"{self.name}_copy", "install", folder=copy,
                                             python=venv_python(self.project_dir))
                expect(named.code == 0, f"install --name from the copy exited {named.code}")
                expect(self.windows.service_folder(f"{self.name}_copy").resolve() == copy,
                       "the named service does not run the copy")
                self.windows.service("--name", f"{self.name}_copy", "remove", folder=copy,
                                     python=venv_python(self.project_dir))
            else:
                expect(second.code == 0, f"the second install exited {second.code}")
                expect(installed == copy, f"the service runs {installed}, not the second folder")
        finally:
            self.windows.service("remove", folder=self.project_dir)

    def check_service_account(self) -> None:
        """The service runs as SERVICE_ACCOUNT, which may read and run the project and change
        only data\\ and logs\\; so set up, it serves (and writes its database in data\\)."""
        account = SERVICE_ACCOUNT.format(name=self.name)
        port = free_port()
        self.service("install", "--", "--port", str(port))
        try:
            config = self.windows.sc("qc", self.name).output
            expect(f"SERVICE_START_NAME : {account}" in config, f"not run as {account}")
            rights = {folder: self.rights(account, self.project_dir / folder) for folder in ("", "data", "logs")}
            expect(rights[""] and all("(RX)" in r for r in rights[""]),
                   f"{account} on the project folder: {rights['']}, wanted read and run only")
            for folder in ("data", "logs"):
                expect("(M)" in " ".join(rights[folder]), f"{account} may not change {folder}: {rights[folder]}")
            self.service("start")
            expect(status(port) == 200, f"not serving as {account}")
            self.service("stop")
        finally:
            self.service("remove")

    def remove_takes_back_the_rights(self) -> None:
        """After ``service remove`` icacls lists the service's account on none of the folders
        install gave it rights on."""
        account = SERVICE_ACCOUNT.format(name=self.name)
        folders = [self.project_dir / folder for folder in ("", "data", "logs")]
        self.service("install", "--", "--port", str(free_port()))
        try:
            expect(all(self.rights(account, folder) for folder in folders),
                   f"install gave {account} no rights on one of {folders}")
        finally:
            output = self.service("remove")
        left = {str(folder): self.rights(account, folder) for folder in folders}
        expect(not any(left.values()), f"{account} keeps rights after remove: {left}; {output.strip()}")

    def rights(self, account: str, folder: Path) -> list[str]:
        """The rights ``icacls FOLDER`` lists for ``account``, e.g. ["(OI)(CI)(RX)"]."""
        shown = self.windows.icacls(folder).output
        return [line.split(f"{account}:", 1)[1].strip() for line in shown.splitlines()
                if f"{account}:".casefold() in line.casefold()]

    def cleanup(self) -> None:
        self.windows.service("remove", folder=self.project_dir)
        shutil.rmtree(self.scratch, ignore_errors=True)

    def checks(self) -> list:
        return [
            ("prepare the project as start_server.bat does", self.prepare),
            ("service round trip with --workers 1", lambda: self.round_trip(1)),
            ("service round trip with --workers 2", lambda: self.round_trip(2)),
            ("service restart and reload", self.restart_and_reload),
            ("an admin signs in and saves a change under the service's account", self.admin_signs_in_and_saves),
            ("a failed start exits non-zero with the reason", self.failed_start),
            ("Event Log entries", self.event_log),
            ("restart actions, delayed start, firewall rule following the port", self.install_settings_and_firewall),
            ("firewall rule following a port change in .env", self.firewall_follows_env),
            ("second install from another folder", self.second_install_from_another_folder),
            ("service account", self.check_service_account),
            ("remove takes back the account's folder rights", self.remove_takes_back_the_rights),
        ]


def main(windows: Windows | None = None, project_dir: Path = PROJECT_DIR) -> int:
    return ServiceChecks(windows or system(), project_dir).run()


if __name__ == "__main__":
    sys.exit(main())
