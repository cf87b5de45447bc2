"""The systemd unit in deploy/, and the server run the way it runs there: as an account that
may read the project but write only data/ and logs/ (docs/linux.md).

The least-privilege test needs root, or passwordless sudo (GitHub's Linux runners), to hand
a copy of the project to root and run the server as ``nobody``: an existing account, so the
test adds none to the machine. Without either it skips; with REQUIRE_SERVICES=1 (our CI and
the generated workflow's Linux job, which have one or the other) it fails instead.
"""

from __future__ import annotations

import os
import re
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from .conftest import IS_WINDOWS, PROJECT_DIR, SLUG, free_port, need, redis_problem

UNIT = PROJECT_DIR / "deploy" / f"{SLUG}.service"
# Where the unit expects the project; the tests put their own folder there.
UNIT_FOLDER = f"/srv/{SLUG}"
UNIT_PYTHON = f"{UNIT_FOLDER}/.venv/bin/python"


def unit_entries(path: Path = UNIT) -> dict[str, list[tuple[str, str]]]:
    """{section: [(key, value), ...]} of a systemd unit (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path}: not a unit line: {line!r}"
        current.append((key.strip(), value.strip()))
    return sections


def service_value(key: str) -> str:
    values = [value for name, value in unit_entries()["Service"] if name == key]
    assert len(values) == 1, f"{key}= appears {len(values)} times in {UNIT.name}"
    return values[0]


def command_in(folder: Path, python: str, line: str) -> list[str]:
    """An Exec*= line of the unit for a project in ``folder`` run by ``python``."""
    words = shlex.split(line)
    assert words[0] == UNIT_PYTHON, line
    return [python, *(word.replace(UNIT_FOLDER, str(folder)) for word in words[1:])]


def test_unit_runs_the_project_as_its_own_user_and_writes_only_data_and_logs():
    from tornado_wsgi_server.options import ServerOptions

    assert service_value("User") == SLUG
    assert service_value("WorkingDirectory") == UNIT_FOLDER
    assert service_value("Restart") == "on-failure"
    assert service_value("ReadWritePaths").split() == [f"{UNIT_FOLDER}/data", f"{UNIT_FOLDER}/logs"]
    for key, value in {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                       "NoNewPrivileges": "yes", "KillMode": "mixed"}.items():
        assert service_value(key) == value, key
    # systemd must not kill the server while it drains: the drain time plus a margin.
    stop_seconds = int(service_value("TimeoutStopSec"))
    assert stop_seconds >= ServerOptions().drain_timeout + 30
    # The commands name this project's files, and reload is the server's own command.
    assert command_in(PROJECT_DIR, sys.executable, service_value("ExecStart"))[1:] == ["tornado_server.py"]
    assert command_in(PROJECT_DIR, sys.executable, service_value("ExecReload"))[1:] == ["tornado_server.py", "reload"]
    reload = subprocess.run(command_in(PROJECT_DIR, sys.executable, service_value("ExecReload")) + ["--port", str(free_port())],
                            cwd=PROJECT_DIR, capture_output=True, text=True, timeout=60)
    assert reload.returncode == 1 and "ERROR: no server started from" in reload.stderr, reload.stderr


@pytest.mark.skipif(IS_WINDOWS, reason="systemd is Linux's")
def test_unit_passes_systemd_analyze_verify(tmp_path):
    """systemd's own check, on the unit with its paths pointed at this project."""
    analyze = shutil.which("systemd-analyze")
    need(analyze is not None, "systemd-analyze not found (the Debian package systemd)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(UNIT_PYTHON, sys.executable)
                    .replace(UNIT_FOLDER, str(PROJECT_DIR)), encoding="utf-8")
    verified = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    # Unknown keys and bad values are only printed: any line about the unit is a failure.
    complaints = [line for line in (verified.stdout + verified.stderr).splitlines() if UNIT.name in line]
    assert verified.returncode == 0 and complaints == [], verified.stdout + verified.stderr


# --- the project run as an account that may write only data/ and logs/ -------------------------

def privileged_prefix() -> list[str] | None:
    """[] as root, ``sudo -n`` with passwordless sudo, else None."""
    if os.geteuid() == 0:
        return []
    if shutil.which("sudo") and subprocess.run(["sudo", "-n", "true"], capture_output=True,
                                               timeout=30).returncode == 0:
        return ["sudo", "-n"]
    return None


def blocking_folders(paths: list[str]) -> list[Path]:
    """The folders on the way to ``paths`` that others may not enter, outermost first."""
    found: list[Path] = []
    for path in paths:
        path = Path(os.path.realpath(path))
        for folder in [*reversed(path.parents), path]:
            if folder.is_dir() and not folder.stat().st_mode & 0o001 and folder not in found:
                found.append(folder)
    return found


class LeastPrivilegeProject:
    """A copy of the project owned by root, with data/ and logs/ (and .env) the service
    account's, run as that account (``nobody``) the way the unit runs it."""

    def __init__(self, prefix: list[str]) -> None:
        import pwd

        self.prefix = prefix
        account = pwd.getpwnam("nobody")
        self.uid, self.gid = account.pw_uid, account.pw_gid
        # In /tmp, which every account can reach (TMPDIR may name a private folder).
        self.top = Path(tempfile.mkdtemp(prefix="least-privilege-", dir="/tmp"))
        self.top.chmod(0o755)  # mkdtemp makes it 0700: the account must reach the project
        self.folder = self.top / SLUG
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.output = self.top / "server.out"
        self.reach_python: list[str] = []

    def as_root(self, *command: str) -> None:
        subprocess.run([*self.prefix, *command], check=True, capture_output=True, timeout=120)

    def as_service(self, command: list[str]) -> list[str]:
        """``command`` run as the account, with the environment systemd gives a service: no
        DJANGO_/SERVER_ variables, so .env alone configures the server."""
        return [*self.prefix, *self.reach_python, "setpriv", f"--reuid={self.uid}", f"--regid={self.gid}",
                "--clear-groups", "env", "-i", f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}",
                "LANG=C.UTF-8", "PYTHONUNBUFFERED=1", *command]

    def python_reaching_wrapper(self) -> list[str]:
        """This test's Python may sit where the account cannot go (pyenv in /root, a venv in
        pytest's 0700 folders), unlike a service's Python (/usr, /opt, the project's .venv).
        For that case: a private mount namespace where those folders, seen through an
        overlay, have their execute bit for others; the real folders stay as they are."""
        blocking = blocking_folders([sys.executable, os.path.realpath(sys.executable), sys.prefix,
                                     sys.base_prefix])
        if not blocking:
            return []
        need(shutil.which("unshare") is not None, "unshare not found (the Debian package util-linux)")
        scratch = self.top / ".scratch"
        scratch.mkdir()
        tops = [folder for folder in blocking if not any(other in folder.parents for other in blocking)]
        lines = ["set -e", f"mount -t tmpfs -o mode=0700 tmpfs {shlex.quote(str(scratch))}"]
        for number, top in enumerate(tops):
            upper, work = scratch / f"{number}-upper", scratch / f"{number}-work"
            lines += [f"mkdir {shlex.quote(str(upper))} {shlex.quote(str(work))}",
                      f"mount -t overlay overlay -o {shlex.quote(f'lowerdir={top},upperdir={upper},workdir={work}')} "
                      f"{shlex.quote(str(top))}"]
        lines += [f"chmod o+x {shlex.quote(str(folder))}" for folder in blocking]
        lines.append('exec "$@"')
        return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", "\n".join(lines), "sh"]

    def prepare(self, admin: tuple[str, str]) -> None:
        shutil.copytree(PROJECT_DIR, self.folder, ignore=shutil.ignore_patterns(
            "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", ".venv", ".env", "data", "logs",
            "staticfiles", "db.sqlite3*", "*.control", "pytest-report.xml"))
        (self.folder / "data").mkdir()
        (self.folder / "logs").mkdir()
        settings = {
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "DJANGO_DEBUG": "false",
            "DATABASE_URL": f"sqlite:///{self.folder / 'data' / 'db.sqlite3'}",
            "SERVER_PORT": str(self.port),
            "SERVER_WORKERS": "2",  # so that the unit's reload replaces them
            "SERVER_LOG_FILE": "logs/server.log",
        }
        lines = [line for line in (PROJECT_DIR / ".env.example").read_text(encoding="utf-8").splitlines()
                 if line.partition("=")[0] not in settings]
        (self.folder / ".env").write_text(
            "\n".join([*lines, *(f"{key}={value}" for key, value in settings.items())]) + "\n", encoding="utf-8")
        # What the administrator does once, before the service starts (docs/linux.md).
        clean = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        for args in (["migrate", "--noinput"], ["collectstatic", "--noinput"],
                     ["createsuperuser", "--noinput", "--username", admin[0], "--email", "a@example.com"]):
            subprocess.run([sys.executable, "manage.py", *args, "--verbosity", "0"], cwd=self.folder, check=True,
                           env={**clean, "DJANGO_SUPERUSER_PASSWORD": admin[1]}, timeout=300)
        # The folder rights of docs/linux.md, "Folder rights".
        self.as_root("chown", "-R", "root:root", str(self.folder))
        self.as_root("chmod", "-R", "go-w", str(self.folder))
        owner = f"{self.uid}:{self.gid}"
        self.as_root("chown", "-R", owner, str(self.folder / "data"), str(self.folder / "logs"),
                     str(self.folder / ".env"))
        self.as_root("chmod", "700", str(self.folder / "data"), str(self.folder / "logs"))
        self.as_root("chmod", "600", str(self.folder / ".env"))

    def start(self) -> None:
        command = command_in(self.folder, sys.executable, service_value("ExecStart"))
        with open(self.output, "wb") as out:
            self.process = subprocess.Popen(self.as_service(command), cwd=self.folder, stdout=out,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 90
        while "is running at" not in self.printed():
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the server did not start (exit {self.process.poll()}):\n{self.printed()}")
            time.sleep(0.1)

    def printed(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def run_as_service(self, unit_key: str) -> subprocess.CompletedProcess:
        command = command_in(self.folder, sys.executable, service_value(unit_key))
        return subprocess.run(self.as_service(command), cwd=self.folder, capture_output=True, text=True,
                              timeout=300)

    def stop(self) -> int:
        """What systemctl stop does (KillSignal=SIGTERM); sudo passes the signal on."""
        self.process.terminate()
        return self.process.wait(90)

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            # Through sudo, kill() would end sudo alone: the server's own pid is in its control file.
            pids = [str(self.process.pid)]
            try:
                control = (self.folder / "data" / f"server-{self.port}.control").read_text()
                pids += re.findall(r'"pid": (\d+)', control)
            except OSError:
                pass
            subprocess.run([*self.prefix, "kill", "-KILL", *pids], capture_output=True, timeout=30)
            self.process.kill()
            self.process.wait(30)
        subprocess.run([*self.prefix, "rm", "-rf", str(self.top)], capture_output=True, timeout=120)

    def owned_by_service(self) -> set[str]:
        """The top-level names under which the account owns something."""
        owned = set()
        for folder, _, files in os.walk(self.folder):  # a folder it cannot enter is skipped
            for path in [Path(folder), *(Path(folder) / name for name in files)]:
                if path != self.folder and path.lstat().st_uid == self.uid:
                    owned.add(path.relative_to(self.folder).parts[0])
        return owned


def log_in(http: httpx.Client, username: str, password: str) -> None:
    form = http.get("/admin/login/")
    assert form.status_code == 200, form.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = http.post("/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": token, "username": username, "password": password, "next": "/admin/"})
    assert response.status_code == 302 and response.headers["location"] == "/admin/", response.text[:2000]


def add_group(http: httpx.Client, name: str) -> None:
    form = http.get("/admin/auth/group/add/")
    assert form.status_code == 200, form.text[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    response = http.post("/admin/auth/group/add/", data={"csrfmiddlewaretoken": token, "name": name, "_save": "Save"})
    assert response.status_code == 302, response.text[:3000]


@pytest.mark.skipif(IS_WINDOWS, reason="Linux accounts and file modes (the Windows job does this as the service's account)")
def test_server_runs_as_an_account_that_may_write_only_data_and_logs():
    prefix = privileged_prefix()
    need(prefix is not None, "running the server as another account needs root or passwordless sudo")
    need(shutil.which("setpriv") is not None, "setpriv not found (the Debian package util-linux)")
    if "REDIS_URL=" in (PROJECT_DIR / ".env.example").read_text(encoding="utf-8"):
        problem = redis_problem("redis://127.0.0.1:6379/0")
        need(problem is None, problem or "")
    project = LeastPrivilegeProject(prefix)
    try:
        project.reach_python = project.python_reaching_wrapper()
        readable = subprocess.run(project.as_service([sys.executable, "-c", "import django, tornado"]),
                                  cwd=project.top, capture_output=True, text=True, timeout=120)
        need(readable.returncode == 0, f"this test's Python ({sys.prefix}) cannot be used by nobody: "
             f"{readable.stderr.strip()[-300:]}")
        admin = (f"admin_{secrets.token_hex(3)}", secrets.token_urlsafe(16))
        project.prepare(admin)
        project.start()
        url = f"http://127.0.0.1:{project.port}"
        with httpx.Client(base_url=url, timeout=30, follow_redirects=False) as http:
            assert http.get("/healthz").status_code == 200
            log_in(http, *admin)  # writes the session and last_login
            group = f"written by the service {secrets.token_hex(3)}"
            add_group(http, group)
            listed = http.get("/admin/auth/group/")
            assert group in listed.text
        # The unit's reload: the server's own command, as the account, through data/.
        reloaded = project.run_as_service("ExecReload")
        assert reloaded.returncode == 0, reloaded.stdout + reloaded.stderr + project.printed()
        assert "Reloaded: 2 worker(s)" in reloaded.stdout
        with httpx.Client(base_url=url, timeout=30) as http:
            assert http.get("/healthz").status_code == 200
        assert "No control channel" not in project.printed()
        assert project.stop() == 0, project.printed()
        assert project.owned_by_service() <= {"data", "logs", ".env"}
        log_file = project.folder / "logs" / "server.log"
        assert subprocess.run([*prefix, "test", "-s", str(log_file)], timeout=30).returncode == 0
    finally:
        project.close()
