"""`status` for a person and for scripts, and start failures that reach the log file."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tornado_wsgi_server import __version__, server_status, service_control, windows_service
from tornado_wsgi_server.project import load_project

from ..conftest import PROJECT_DIR, free_port
from .service_fakes import FakeManager

PROJECT = load_project(PROJECT_DIR)
# `status --json`: scripts rely on these keys, present whatever the state.
REPORT_KEYS = {
    "name", "state", "detail", "pid", "host", "port", "scheme", "urls", "processes", "threads",
    "workers", "started", "uptime_seconds", "requests", "last_error", "version", "version_on_disk",
    "project", "log_file", "service",
}


# build_options() loads .env into os.environ, as the service does: undone after each test.
pytestmark = pytest.mark.usefixtures("restored_environ")


def status(port: int, *args: str, env: dict) -> subprocess.CompletedProcess:
    """``python tornado_server.py status ARGS --port P`` in the project folder, as a person types it."""
    return subprocess.run([sys.executable, "tornado_server.py", "status", *args, "--port", str(port)],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60)


def status_json(port: int, env: dict) -> tuple[int, dict]:
    completed = status(port, "--json", env=env)
    return completed.returncode, json.loads(completed.stdout)


def fact(text: str, label: str) -> str:
    """The value on the line ``label`` of the printed status."""
    found = re.search(rf"^  {re.escape(label)} +(.*)$", text, re.MULTILINE)
    assert found, f"no {label!r} line in:\n{text}"
    return found[1]


@pytest.mark.parametrize("workers", ["1", "2"])
def test_status_of_a_running_server_then_of_the_stopped_one(start_server, server_env, tmp_path, workers):
    log_file = tmp_path / "server.log"
    log_file.write_text("2020-01-01 00:00:00,000 1 ERROR [earlier] an older error\n", encoding="utf-8")
    server = start_server("--workers", workers, "--log-file", str(log_file))
    with httpx.Client(timeout=30) as client:
        for _ in range(3):
            assert client.get(f"{server.url}/healthz").status_code == 200
        assert client.get(f"{server.url}/__test__/view-error").status_code == 500
    deadline = time.monotonic() + 30  # workers tell their counts once a second
    while (report := status_json(server.port, server_env)[1])["requests"] < 4:
        assert time.monotonic() < deadline, report
        time.sleep(0.2)

    completed = status(server.port, env=server_env)
    assert completed.returncode == 0, completed
    text = completed.stdout
    assert text.splitlines()[0] == f"{PROJECT.name}: running", text
    assert fact(text, "PID") == str(server.process.pid)
    assert fact(text, "Address") == f"http://127.0.0.1:{server.port}/"
    assert fact(text, "Workers").startswith(f"{workers} process"), text
    assert fact(text, "Requests") == "4 answered since it started"
    assert re.fullmatch(r"\d+ s \(since .+\)", fact(text, "Up")), text
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \[django.request\] "
                        r"Internal Server Error: /__test__/view-error", fact(text, "Last error")), text
    assert fact(text, "Server") == f"tornado_wsgi_server {__version__}"
    assert fact(text, "Folder") == str(PROJECT_DIR)
    assert fact(text, "Log") == str(log_file)

    code, report = status_json(server.port, server_env)
    assert code == 0 and set(report) == REPORT_KEYS, report
    assert (report["state"], report["pid"], report["port"], report["processes"]) == (
        "running", server.process.pid, server.port, int(workers))
    assert report["urls"] == [f"http://127.0.0.1:{server.port}/"]
    assert report["requests"] == 4 and 0 <= report["uptime_seconds"] < 300, report
    if workers == "2":
        assert len(report["workers"]) == 2 and sum(w["requests"] for w in report["workers"]) == 4, report
    assert report["log_file"] == str(log_file) and report["service"] is None

    assert server.stop() == 0
    completed = status(server.port, "--log-file", str(log_file), env=server_env)
    assert completed.returncode == 3, completed
    assert completed.stdout.splitlines()[0] == f"{PROJECT.name}: stopped"
    assert "Internal Server Error" in fact(completed.stdout, "Last error")  # still in the log
    code, report = status_json(server.port, server_env)
    assert code == 3 and set(report) == REPORT_KEYS, report
    assert (report["state"], report["pid"], report["requests"], report["urls"]) == ("stopped", None, None, [])


def test_status_when_another_program_holds_the_port(server_env):
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        completed = status(port, env=server_env)
    assert completed.returncode == 3, completed
    assert completed.stdout.splitlines()[0] == f"{PROJECT.name}: not answering", completed.stdout
    assert f"something accepts connections on port {port}" in completed.stdout


def test_status_of_a_server_whose_control_channel_hangs(monkeypatch, tmp_path):
    """A server that took the status request but never answers: "not answering", at once."""
    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen()
    held = []
    threading.Thread(target=lambda: held.append(hung.accept()), daemon=True).start()
    project = type(PROJECT)("Hung", "hung", tmp_path, PROJECT.settings)
    port = free_port()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / f"server-{port}.control").write_text(json.dumps(
        {"pid": os.getpid(), "port": hung.getsockname()[1], "token": "t"}), encoding="utf-8")
    monkeypatch.setattr(server_status, "ANSWER_TIMEOUT", 1.0)
    options = windows_service.build_options(project, ["--port", str(port)])
    try:
        started = time.monotonic()
        report = server_status.collect(project, options)
        assert time.monotonic() - started < 10
    finally:
        hung.close()
    assert report["state"] == "not answering" and "did not answer within 1s" in report["detail"], report
    assert server_status.exit_code(report) == 3


def service_manager(state: str | None, stored: list[str] = (), pid: int | None = None,
                    account: str = r"NT SERVICE\site", startup: str = "delayed") -> FakeManager:
    """The service manager seam as the service commands see it, with one service or none."""
    manager = FakeManager(installed_from=PROJECT_DIR, state=state) if state else FakeManager()
    if state:
        manager.services[PROJECT.slug].update(pid=pid, account=account, startup=startup)
        manager.services[PROJECT.slug]["options"][service_control.SERVER_ARGS_OPTION] = shlex.join(stored)
    return manager


def service_status(manager: FakeManager, as_json: bool) -> tuple[int, str]:
    out = io.StringIO()
    code = service_control.main(PROJECT, ["status", "--json"] if as_json else ["status"], manager, out=out)
    return code, out.getvalue()


def test_service_status_shows_account_start_type_and_stored_options(start_server, tmp_path):
    log_file = tmp_path / "server.log"
    server = start_server("--log-file", str(log_file))
    stored = ["--port", str(server.port), "--log-file", str(log_file)]
    # The stored options name the port: status finds the server there, not on .env's.
    manager = service_manager("running", stored, pid=server.process.pid)
    code, text = service_status(manager, as_json=False)
    assert code == 0 and text.splitlines()[0] == f"{PROJECT.slug}: running", text
    assert fact(text, "PID") == str(server.process.pid)
    assert fact(text, "Address") == f"http://127.0.0.1:{server.port}/"
    assert fact(text, "Account") == r"NT SERVICE\site"
    assert fact(text, "Start type") == "automatic (delayed)"
    assert fact(text, "Stored options").startswith(f"--port {server.port} --log-file {log_file} (set at install")
    code, text = service_status(manager, as_json=True)
    report = json.loads(text)
    assert code == 0 and set(report) == REPORT_KEYS and report["state"] == "running", report
    assert report["service"]["stored_options"] == ["--port", str(server.port), "--log-file", str(log_file)]
    assert report["requests"] == 0 and report["log_file"] == str(log_file)

    assert server.stop() == 0
    code, text = service_status(service_manager("stopped", stored, startup="manual"), as_json=False)
    assert code == 3 and text.splitlines()[0] == f"{PROJECT.slug}: stopped", text
    assert fact(text, "Account") == r"NT SERVICE\site" and fact(text, "Start type") == "manual"

    code, text = service_status(service_manager(None), as_json=True)
    report = json.loads(text)
    assert code == 3 and report["state"] == "not installed" and set(report) == REPORT_KEYS, report
    assert "service.bat install" in report["detail"]


def test_service_status_when_the_service_runs_but_its_server_does_not_answer(tmp_path):
    """The service manager says running, yet nothing answers on the stored port (a start that
    hangs, say): not answering, and exit code 3."""
    manager = service_manager("running", ["--port", str(free_port()), "--log-file", str(tmp_path / "x.log")],
                              pid=4242, account="LocalSystem", startup="manual")
    code, text = service_status(manager, as_json=False)
    assert code == 3 and text.splitlines()[0] == f"{PROJECT.slug}: not answering", text
    assert fact(text, "PID") == "4242"


# --- Start failures reach the log file ------------------------------------------------------


def log_text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_taken_at_start_is_in_the_log_file(start_server, tmp_path, workers):
    log_file = tmp_path / "server.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = start_server("--workers", workers, "--log-file", str(log_file), port=port, wait=False)
        assert server.process.wait(60) != 0
    assert f"ERROR: cannot listen on 127.0.0.1:{port}" in server.output()
    lines = [line for line in log_text(log_file).splitlines() if "Could not start" in line]
    assert len(lines) == 1, log_text(log_file)
    assert f"ERROR [tornado_server] Could not start: cannot listen on 127.0.0.1:{port}" in lines[0]


def test_bad_setting_at_start_is_in_the_log_file_with_its_traceback(start_server, tmp_path):
    log_file = tmp_path / "server.log"
    server = start_server("--log-file", str(log_file), env={"DJANGO_TIME_ZONE": "W. Europe Standard Time"},
                          wait=False)
    assert server.process.wait(60) != 0
    assert "Traceback" not in server.output()  # the console keeps its one ERROR line
    text = log_text(log_file)
    assert re.search(r"ERROR \[tornado_server\] Could not start: Django settings .*"
                     r"DJANGO_TIME_ZONE='W. Europe Standard Time'", text), text
    assert "Traceback" in text and "ImproperlyConfigured" in text, text


def test_worker_that_cannot_start_says_why_in_the_log_file(start_server, tmp_path):
    log_file = tmp_path / "server.log"
    server = start_server("--workers", "2", "--log-file", str(log_file),
                          env={"DJANGO_TIME_ZONE": "W. Europe Standard Time"}, wait=False)
    assert server.process.wait(90) != 0
    text = log_text(log_file)
    assert re.search(r"ERROR \[tornado_server\] Worker \d+ failed to start: .*DJANGO_TIME_ZONE", text), text


def test_bad_value_in_env_is_in_the_log_file(server_env, tmp_path):
    log_file = tmp_path / "server.log"
    env = {**server_env, "SERVER_THREADS": "lots", "SERVER_LOG_FILE": str(log_file)}
    completed = subprocess.run([sys.executable, "tornado_server.py"], cwd=PROJECT_DIR, env=env,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2 and "SERVER_THREADS='lots'" in completed.stderr, completed
    assert re.search(r"ERROR \[tornado_server\] Could not start: SERVER_THREADS='lots'", log_text(log_file))


@pytest.mark.parametrize("problem", ["port taken", "bad .env value"])
def test_service_start_failure_is_in_the_log_file(server_env, tmp_path, problem):
    """`service run` takes the service's start path: its failures reach the file too."""
    log_file = tmp_path / "server.log"
    env, args = {**server_env, "SERVER_LOG_FILE": str(log_file)}, ["--settings", "tests.settings"]
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        if problem == "bad .env value":
            env["SERVER_THREADS"], port = "lots", free_port()
        completed = subprocess.run([sys.executable, "tornado_server.py", "service", "run", "--port", str(port), *args],
                                   cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode != 0, completed
    reason = "SERVER_THREADS='lots'" if problem == "bad .env value" else f"cannot listen on 127.0.0.1:{port}"
    text = log_text(log_file)
    assert re.search(rf"ERROR \[tornado_server\] Could not start: .*{re.escape(reason)}", text), (completed, text)
    assert "Traceback" not in text, text  # a mistake in the options, not in the code


def test_service_whose_stored_options_are_bad_says_why_in_the_log_file(monkeypatch, tmp_path):
    """Options the server refuses stop the service before its runner: Event 102 and the log file."""
    log_file = tmp_path / "server.log"
    monkeypatch.setenv("SERVER_LOG_FILE", str(log_file))
    events = []

    class Status:
        def report(self, state, wait_hint, exit_code) -> None:
            pass

        def event(self, event_id, level, text) -> None:
            events.append((event_id, text))

    assert windows_service.ServiceLifecycle(PROJECT, Status(), ["--threads", "lots"]).run() == 1
    assert events and events[0][0] == 102 and "--threads" in events[0][1], events
    text = log_text(log_file)
    assert re.search(r"ERROR \[tornado_server\] Could not start: .*--threads", text), text
    assert "Traceback" not in text, text
