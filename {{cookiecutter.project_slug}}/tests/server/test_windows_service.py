"""The Windows service module: everything but the pywin32 shell, run the way the service
runs it (the server on a thread of a Python process, stopped through ServiceRunner.stop())."""

from __future__ import annotations

import importlib
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tornado_wsgi_server import windows_service
from tornado_wsgi_server.project import Project, load_project

from ..conftest import IS_WINDOWS, ONE_AT_A_TIME, PROJECT_DIR, READY_LINE, free_port, wait_until_busy

PROJECT = load_project(PROJECT_DIR)

# Runs in a fresh Python process: the runner serves on a thread; a line on stdin asks for
# the stop the service manager would ask for.
DRIVER = """
import sys
sys.path.insert(0, {project!r})
from tornado_wsgi_server import windows_service
from tornado_wsgi_server.project import load_project
project = load_project({project!r})
options = windows_service.build_options(project, sys.argv[1:])
runner = windows_service.ServiceRunner(project, options).start()
runner.ready.wait(60)
print("ready:", runner.is_running(), flush=True)
sys.stdin.readline()
runner.stop("service stop")
code = runner.wait(90)
print("exit code:", code, "error:", runner.error, "unfinished:", runner.unfinished, flush=True)
runner.exit_if_unfinished(99 if code is None else code)
sys.exit(99 if code is None else code)
"""


# build_options() loads .env into os.environ, as the service does: undone after each test.
pytestmark = pytest.mark.usefixtures("restored_environ")


def test_service_name_comes_from_the_project():
    name, display, description = windows_service.service_names(PROJECT)
    assert name == "{{ cookiecutter.project_slug }}"
    assert "{{ cookiecutter.project_name }}" in display
    assert str(PROJECT_DIR) in description


def test_options_come_from_env_file_whatever_the_current_directory(tmp_path, monkeypatch):
    project = tmp_path / "project"
    project.mkdir()
    (project / ".env").write_text("SERVER_THREADS=3\nSERVER_DRAIN_TIMEOUT=7\n", encoding="utf-8")
    elsewhere = tmp_path / "System32"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for name in ("SERVER_THREADS", "SERVER_DRAIN_TIMEOUT", "SERVER_LOG_FILE", "SERVER_PORT"):
        monkeypatch.delenv(name, raising=False)
    elsewhere_project = Project(name="Elsewhere", slug="elsewhere", directory=project,
                                settings="tests.settings")
    options = windows_service.build_options(elsewhere_project, ["--port", "8123"])
    assert (options.threads, options.drain_timeout, options.port) == (3, 7.0, 8123)
    # A service has no console: it always logs to a file, by default in the project.
    assert Path(options.log_file) == project / "logs" / "server.log"


def test_relative_log_file_is_taken_from_the_project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SERVER_LOG_FILE", raising=False)
    options = windows_service.build_options(PROJECT, ["--log-file", "logs/site.log"])
    assert Path(options.log_file) == PROJECT_DIR / "logs" / "site.log"


def test_bad_option_is_a_clear_error_not_an_exit():
    with pytest.raises(windows_service.ServiceError, match="--threads"):
        windows_service.build_options(PROJECT, ["--threads", "none"])


def test_worker_python_prefers_the_stored_interpreter(tmp_path):
    python = tmp_path / "python.exe"
    python.write_bytes(b"")
    assert windows_service.worker_python(str(python)) == str(python)
    # Without one: a Python that exists (the venv's or the base one's), never the service host.
    found = Path(windows_service.worker_python(str(tmp_path / "missing.exe")))
    assert found.is_file(), found
    assert found.name.lower() in {"python.exe", Path(sys.executable).name.lower()}, found


def test_service_command_without_arguments_shows_usage():
    completed = subprocess.run([sys.executable, "tornado_server.py", "service"], cwd=PROJECT_DIR,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "install|start|stop|restart|reload|remove|status|run" in completed.stderr


def test_service_host_finds_the_class_in_the_package():
    folder, _, dotted = windows_service.service_class_string(PROJECT).rpartition("\\")
    module_name, _, class_name = dotted.rpartition(".")
    assert Path(folder) == PROJECT_DIR
    module = importlib.import_module(module_name)
    assert module is windows_service
    # pywin32 exists only on Windows; there the class the service host will load is real.
    assert hasattr(module, class_name) == IS_WINDOWS


@pytest.mark.skipif(IS_WINDOWS, reason="not on Windows: installing needs an Administrator; the "
                    "CI job installs the service for real")
def test_install_outside_windows_says_what_to_do_instead():
    assert not hasattr(windows_service, "DjangoTornadoService")  # pywin32 is not imported here
    completed = subprocess.run([sys.executable, "tornado_server.py", "service", "install"], cwd=PROJECT_DIR,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "tornado_server.py service run" in completed.stderr


def port_of(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def start_service_like(server_env, tmp_path, *args):
    port = free_port()
    log_file = tmp_path / "logs" / "server.log"
    process = subprocess.Popen(
        [sys.executable, "-c", DRIVER.format(project=str(PROJECT_DIR)), "--settings", "tests.settings",
         "--port", str(port), "--log-file", str(log_file), *args],
        cwd=tmp_path,  # like a service: not the project folder
        env={**server_env, "SERVER_ACCESS_LOG": "true"},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    # The driver prints "ready: ..." within 60 s.
    seen = read_until(process, lambda line: line.startswith("ready:"), timeout=90)
    if not seen.endswith("ready: True\n"):
        process.kill()
        process.wait(10)
        pytest.fail("the server did not start:\n" + seen)
    return process, f"http://127.0.0.1:{port}", log_file


def read_until(process: subprocess.Popen, last, timeout: float) -> str:
    """What ``process`` prints up to the first line ``last`` accepts (or its end), at most
    ``timeout`` seconds. Read on a thread, which stops after that line: a child that never
    prints it fails the test instead of hanging it, and the rest is left to the caller."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in process.stdout:
            lines.put(line)
            if last(line):
                break
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    seen = ""
    deadline = time.monotonic() + timeout
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return seen
        seen += line
        if not line or last(line):
            return seen


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_service_stop_lets_in_flight_requests_finish(server_env, tmp_path, workers):
    process, url, log_file = start_service_like(server_env, tmp_path, "--workers", workers, *ONE_AT_A_TIME)
    try:
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"{url}/__test__/block?seconds=2", timeout=60)
            wait_until_busy(port_of(url))  # the request is on a worker thread now
            stop_asked = time.monotonic()
            process.stdin.write("stop\n")
            process.stdin.flush()
            response = slow.result(timeout=90)
        assert response.status_code == 200
        assert response.text.startswith("slept 2")
        output, _ = process.communicate(timeout=90)
        assert process.returncode == 0, output
        assert "exit code: 0 error: None" in output
        assert time.monotonic() - stop_asked < 60
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthz", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = log_file.read_text(encoding="utf-8")
    assert "GET /__test__/block" in text  # the access log reached the file
    assert "Stopped." in text


@pytest.mark.slow
def test_service_stop_returns_when_a_request_outlives_the_drain_timeout(server_env, tmp_path):
    # The runner must come back (so the service can report "stopped") instead of the
    # server ending the process; ending it is left to the caller.
    process, url, log_file = start_service_like(server_env, tmp_path, "--drain-timeout", "1", *ONE_AT_A_TIME)
    try:
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(httpx.get, f"{url}/__test__/block?seconds=60", timeout=90)
            wait_until_busy(port_of(url))
            stop_asked = time.monotonic()
            process.stdin.write("stop\n")
            process.stdin.flush()
            output, _ = process.communicate(timeout=45)
            with pytest.raises(httpx.HTTPError):
                stuck.result(timeout=120)  # cut off, not answered
        assert "exit code: 0 error: None unfinished: 1" in output, output
        assert process.returncode == 0, output
        assert time.monotonic() - stop_asked < 30
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    text = log_file.read_text(encoding="utf-8")
    assert "Stopped." in text
    assert "Ending the process: 1 request(s) did not finish" in text


@pytest.mark.slow
def test_log_file_rotates_while_the_service_holds_it(server_env, tmp_path):
    process, url, log_file = start_service_like(server_env, tmp_path, "--log-max-bytes", "4K",
                                                "--log-backups", "2")
    try:
        with httpx.Client(timeout=30) as client:
            for _ in range(150):
                assert client.get(f"{url}/healthz").status_code == 200
        process.stdin.write("stop\n")
        process.stdin.flush()
        output, _ = process.communicate(timeout=90)
        assert process.returncode == 0, output
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    rotated = sorted(p.name for p in log_file.parent.glob("server.log*") if not p.name.endswith(".lock"))
    assert {"server.log", "server.log.1", "server.log.2"} <= set(rotated), rotated
    assert log_file.stat().st_size <= 4096 + 1024
    assert "Stopped." in log_file.read_text(encoding="utf-8")


@pytest.mark.slow
def test_run_command_stops_gracefully_on_ctrl_c(server_env, tmp_path):
    """`tornado_server.py service run`: the service's code path in a console."""
    port = free_port()
    flags = subprocess.CREATE_NEW_PROCESS_GROUP if IS_WINDOWS else 0
    process = subprocess.Popen(
        [sys.executable, "tornado_server.py", "service", "run", "--settings", "tests.settings", "--port", str(port),
         "--log-file", str(tmp_path / "run.log"), *ONE_AT_A_TIME],
        cwd=PROJECT_DIR, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        creationflags=flags,
    )
    try:
        seen = read_until(process, lambda line: READY_LINE in line, timeout=60)
        assert READY_LINE in seen, seen
        url = f"http://127.0.0.1:{port}"
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"{url}/__test__/block?seconds=1.5", timeout=60)
            wait_until_busy(port)
            process.send_signal(signal.CTRL_BREAK_EVENT if IS_WINDOWS else signal.SIGINT)
            assert slow.result(timeout=90).status_code == 200
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert "Stopped." in (tmp_path / "run.log").read_text(encoding="utf-8")



def test_service_path_extends_the_machine_path():
    own = [r"C:\Python312", r"C:\Python312\Lib\site-packages\pywin32_system32", r"C:\Windows\System32"]
    machine = r"C:\WINDOWS\system32;C:\Windows;C:\Program Files\Git\cmd;;C:\Program Files\PostgreSQL\17\bin"
    assert windows_service.service_path(own, machine).split(";") == [
        *own, r"C:\Windows", r"C:\Program Files\Git\cmd", r"C:\Program Files\PostgreSQL\17\bin"]


# ServiceLifecycle with a stand-in for pywin32's status calls (the only thing faked): each
# call is printed as a JSON line after "@@ ", with whether the port accepts connections at that moment.
# Lines on stdin are the service manager's controls.
LIFECYCLE_DRIVER = """
import json, socket, sys, threading
sys.path.insert(0, {project!r})
from tornado_wsgi_server.windows_service import ServiceLifecycle
from tornado_wsgi_server.project import load_project

port = int(sys.argv[1])

def port_open():
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return True
    except OSError:
        return False

def say(event):
    # One write per line: print() writes its parts one by one, and a line from another
    # thread could land between them and hide the event.
    sys.stdout.write("@@ " + json.dumps(event) + "\\n")
    sys.stdout.flush()

class Status:
    def report(self, state, wait_hint, exit_code):
        say(["report", state, exit_code, port_open()])
    def event(self, event_id, level, text):
        say([level, text, event_id])

lifecycle = ServiceLifecycle(load_project({project!r}), Status(), sys.argv[1:] and sys.argv[2:])

def controls():
    for line in sys.stdin:
        getattr(lifecycle, line.strip())()

threading.Thread(target=controls, daemon=True).start()
code = lifecycle.run()
say(["returned", code, lifecycle.state])
"""


class LifecycleDriver:
    def __init__(self, server_env, tmp_path, port, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-c", LIFECYCLE_DRIVER.format(project=str(PROJECT_DIR)), str(port),
             "--settings", "tests.settings", "--port", str(port), "--log-file", str(tmp_path / "server.log"), *args],
            cwd=tmp_path, env=server_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.events = []
        # Read on a thread, so that an event that never comes fails the test instead of
        # hanging it.
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put("")

    def next_event(self, timeout: float = 90) -> list:
        while True:  # other lines are the server's own output
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no event for {timeout}s; so far: {self.events}") from None
            assert line, f"the driver ended: {self.events}"
            if line.startswith("@@ "):
                self.events.append(json.loads(line[3:]))
                return self.events[-1]

    def until(self, *wanted) -> list:
        while self.next_event()[:len(wanted)] != list(wanted):
            pass
        return self.events[-1]

    def control(self, name: str) -> None:
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])
def test_service_reports_running_once_it_serves_and_its_real_state_when_asked(server_env, tmp_path, workers):
    port = free_port()
    driver = LifecycleDriver(server_env, tmp_path, port, "--workers", workers, *ONE_AT_A_TIME)
    try:
        assert driver.next_event() == ["report", "start_pending", 0, False]
        assert driver.until("report", "running") == ["report", "running", 0, True]
        assert all(event[1] == "start_pending" for event in driver.events[:-1] if event[0] == "report")
        driver.control("interrogate")
        assert driver.until("report") == ["report", "running", 0, True]
        with ThreadPoolExecutor(1) as pool:
            slow = pool.submit(httpx.get, f"http://127.0.0.1:{port}/__test__/block?seconds=3", timeout=60)
            wait_until_busy(port)
            driver.control("stop")
            assert driver.until("report")[:2] == ["report", "stop_pending"]
            driver.control("interrogate")  # mid-drain: still stopping, not "running"
            assert driver.until("report")[:2] == ["report", "stop_pending"]
            assert slow.result(timeout=90).status_code == 200
        assert driver.until("returned") == ["returned", 0, "stopped"]
        assert driver.process.wait(30) == 0
        stopping = next(i for i, e in enumerate(driver.events) if e[:2] == ["report", "stop_pending"])
        assert "running" not in [e[1] for e in driver.events[stopping:] if e[0] == "report"], driver.events
    finally:
        driver.close()


@pytest.mark.slow
def test_service_that_cannot_bind_stops_with_a_clear_error(server_env, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        driver = LifecycleDriver(server_env, tmp_path, port)
        try:
            error = driver.until("error")
            assert "could not start" in error[1] and f"127.0.0.1:{port}" in error[1], error
            assert driver.until("returned") == ["returned", 1, "stopped"]
            assert driver.process.wait(30) == 0
            assert "running" not in [event[1] for event in driver.events if event[0] == "report"]
        finally:
            driver.close()


@pytest.mark.slow
def test_windows_shutdown_drains_briefly(server_env, tmp_path):
    """At system shutdown Windows waits only seconds: the drain is cut to a few."""
    port = free_port()
    driver = LifecycleDriver(server_env, tmp_path, port, "--drain-timeout", "60", *ONE_AT_A_TIME)
    try:
        driver.until("report", "running")
        with ThreadPoolExecutor(1) as pool:
            stuck = pool.submit(httpx.get, f"http://127.0.0.1:{port}/__test__/block?seconds=120", timeout=180)
            wait_until_busy(port)
            asked = time.monotonic()
            driver.control("shutdown")
            # Requests still running at the end of the short drain: "stopped", then the process ends.
            assert driver.until("report", "stopped")[:2] == ["report", "stopped"]
            assert driver.process.wait(30) == 0
            assert time.monotonic() - asked < windows_service.SHUTDOWN_DRAIN_TIMEOUT + 15
            with pytest.raises(httpx.HTTPError):
                stuck.result(timeout=200)
    finally:
        driver.close()


def test_every_event_has_its_own_id_and_the_manual_lists_it():
    from tornado_wsgi_server.service_runner import EVENT_IDS, event_record

    assert len(set(EVENT_IDS.values())) == len(EVENT_IDS)
    page = (PROJECT_DIR / "docs" / "windows-service.md").read_text(encoding="utf-8")
    for kind, event_id in EVENT_IDS.items():
        assert f"| {event_id} |" in page, kind
    assert event_record("worker_crash", "x") == (120, "warning", "x")
    assert event_record("reloaded", "x") == (110, "info", "x")
    assert event_record("reload_failed", "x") == (111, "error", "x")


@pytest.mark.slow
def test_service_reload_control_replaces_the_workers_and_logs_it(server_env, tmp_path):
    port = free_port()
    driver = LifecycleDriver(server_env, tmp_path, port, "--workers", "2")
    try:
        driver.until("report", "running")
        assert driver.until("info")[2] == 100  # started
        with httpx.Client(timeout=30) as http:
            before = {http.get(f"http://127.0.0.1:{port}/__test__/whoami",
                               headers={"Connection": "close"}).json()["pid"] for _ in range(10)}
            driver.control("reload")
            reloaded = driver.until("info")
            assert reloaded[2] == 110 and "2 worker(s) replaced" in reloaded[1], reloaded
            after = {http.get(f"http://127.0.0.1:{port}/__test__/whoami",
                              headers={"Connection": "close"}).json()["pid"] for _ in range(10)}
        assert not before & after
        driver.control("stop")
        assert driver.until("returned") == ["returned", 0, "stopped"]
        assert [e for e in driver.events if e[0] == "info"][-1][2] == 101  # stopped
    finally:
        driver.close()


def test_reload_controls_share_one_waiting_thread_and_merge():
    """However many reload controls come (`sc control NAME 128` in a loop), one thread waits for
    the reload under way and one more reload follows it: the rest are merged into that one."""
    from tornado_wsgi_server.service_runner import ServiceLifecycle

    class Status:  # pywin32's side: what the service reports, dropped
        def report(self, *args):
            pass

        def event(self, *args):
            events.append(args)

    class Runner:  # the supervisor's reload: each call blocks until the test lets it end
        _supervisor = object()

        def __init__(self):
            self.calls = 0
            self.go_on = threading.Semaphore(0)

        def reload(self):
            self.calls += 1
            assert self.go_on.acquire(timeout=30)
            return {"ok": True, "replaced": 2}

    events: list = []
    lifecycle = ServiceLifecycle(PROJECT, Status(), [])
    lifecycle.runner, lifecycle.state = Runner(), "running"
    for _ in range(50):
        lifecycle.reload()
    waiting = [thread for thread in threading.enumerate() if thread.name == "reload"]
    assert len(waiting) == 1
    lifecycle.runner.go_on.release(2)  # the reload under way ends, then the merged one
    waiting[0].join(30)
    assert not waiting[0].is_alive()
    assert lifecycle.runner.calls == 2
    assert [event[0] for event in events] == [110, 110]
