"""reload, --max-requests and worker replacement: new worker first, old one drained, and
not one request fails; the control channel answers only its owner."""

from __future__ import annotations

import collections
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil
import pytest

from tornado_wsgi_server.control import ControlError

from ..conftest import PROJECT_DIR

CLIENTS = 20


def control_file(port: int, project: Path = PROJECT_DIR) -> Path:
    """Where a server started from ``project`` writes its control channel's port and token."""
    return project / "data" / f"server-{port}.control"


def run_command(server, *args: str, env: dict, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python tornado_server.py ARGS --port P`` in the project folder, as a user types it."""
    return subprocess.run([sys.executable, "tornado_server.py", *args, "--port", str(server.port)],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=timeout)


class Load:
    """``CLIENTS`` keep-alive clients asking for the code version in a loop."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[tuple[float, float, str]] = []  # (start, end, body or error)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.client, daemon=True) for _ in range(CLIENTS)]

    def client(self) -> None:
        with httpx.Client(timeout=30) as http:
            while not self.stopping.is_set():
                start = time.monotonic()
                try:
                    response = http.get(f"{self.url}/__test__/code-version")
                    outcome = response.text if response.status_code == 200 else f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    outcome = f"ERROR {type(exc).__name__}: {exc}"
                self.results.append((start, time.monotonic(), outcome))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(60)

    def failures(self) -> list[str]:
        return [outcome for _, _, outcome in self.results if not outcome.startswith(("v1 ", "v2 "))]


@pytest.fixture
def code_file(tmp_path) -> Path:
    path = tmp_path / "code.py"
    path.write_text('CODE_VERSION = "v1"\n', encoding="utf-8")
    return path


def running(pid: int) -> bool:
    """The process exists and has not exited (an exited child not yet reaped counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(900)
def test_reload_under_load_serves_new_code_and_fails_nothing(start_server, server_env, code_file):
    env = {"TEST_CODE_FILE": str(code_file)}
    server = start_server("--workers", "2", "--threads", "4", env=env)
    # Keep-alive connections left idle across the reload: the next request on each, once
    # reload has returned, must get the new code too.
    idle = [httpx.Client(timeout=30) for _ in range(10)]
    assert all(client.get(f"{server.url}/__test__/code-version").text.startswith("v1 ") for client in idle)
    old_workers = {int(client.get(f"{server.url}/__test__/code-version").text.split()[1]) for client in idle}
    with Load(server.url) as load:
        time.sleep(2)
        code_file.write_text('CODE_VERSION = "v2"\n', encoding="utf-8")
        began = time.monotonic()
        result = run_command(server, "reload", env={**server_env, **env})
        returned = time.monotonic()
        still_running = [pid for pid in old_workers if running(pid)]
        after_idle = [client.get(f"{server.url}/__test__/code-version").text for client in idle]
        time.sleep(2)
    for client in idle:
        client.close()
    assert all(body.startswith("v2 ") for body in after_idle), after_idle
    assert still_running == [], f"reload returned while old workers {still_running} still ran"
    assert result.returncode == 0, result.stdout + result.stderr + server.output()
    assert "Reloaded: 2 worker(s)" in result.stdout
    assert load.failures() == [], f"{len(load.failures())} of {len(load.results)} failed"
    before = [body for start, _, body in load.results if start < began]
    after = [body for start, _, body in load.results if start > returned]
    assert before and all(body.startswith("v1 ") for body in before)
    assert after and all(body.startswith("v2 ") for body in after), sorted(set(after))
    assert len({body.split()[1] for body in after}) == 2  # two new processes serve
    print(f"\nreload: {len(load.results)} requests, 0 failed; {result.stdout.strip()} "
          f"(reload command took {returned - began:.1f}s)")
    assert server.stop() == 0


def test_max_requests_recycles_workers_without_failing_requests(start_server, code_file):
    server = start_server("--workers", "2", "--threads", "4", "--max-requests", "150",
                          "--max-requests-jitter", "20", env={"TEST_CODE_FILE": str(code_file)})
    with Load(server.url) as load:
        deadline = time.monotonic() + 90
        while server.output().count("replaced by worker") < 6 and time.monotonic() < deadline:
            time.sleep(0.2)
    output = server.output()
    assert output.count("replaced by worker") >= 6, output
    assert "--max-requests 150" in output
    assert load.failures() == [], f"{len(load.failures())} of {len(load.results)} failed"
    print(f"\nmax-requests: {len(load.results)} requests, 0 failed, "
          f"{output.count('replaced by worker')} workers replaced")
    assert server.stop() == 0


def test_reload_with_broken_code_keeps_the_old_workers(start_server, server_env, code_file):
    env = {"TEST_CODE_FILE": str(code_file)}
    server = start_server("--workers", "2", "--threads", "2", env=env)
    code_file.write_text('CODE_VERSION = ("v2"\n', encoding="utf-8")
    with Load(server.url) as load:
        result = run_command(server, "reload", env={**server_env, **env})
        time.sleep(1)
    assert result.returncode != 0
    assert "old workers keep serving" in result.stderr
    assert "SyntaxError" in result.stderr, result.stderr
    assert "Reload failed" in server.output()
    assert load.failures() == []
    assert {body.split()[0] for _, _, body in load.results} == {"v1"}
    assert server.stop() == 0


def test_worker_that_asks_is_replaced_while_the_other_serves(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    with httpx.Client(timeout=30) as http:
        asked = http.get(f"{server.url}/__test__/ask-to-be-replaced?reason=all+threads+stuck").json()
    assert asked["asked"] is True
    output = server.wait_for_output("replaced by worker", timeout=60)
    assert "all threads stuck" in output
    assert [line for line in output.splitlines() if "replaced by worker" in line][0].count("WARNING") == 1
    server.wait_for_output("stopped after", timeout=30)
    with httpx.Client(timeout=30) as http:
        pids = {http.get(f"{server.url}/__test__/whoami", headers={"Connection": "close"}).json()["pid"]
                for _ in range(20)}
    assert asked["pid"] not in pids
    assert server.stop() == 0


def test_one_process_server_refuses_reload_and_is_not_a_worker(start_server, server_env):
    server = start_server()
    assert httpx.get(f"{server.url}/__test__/ask-to-be-replaced").json()["asked"] is False
    result = run_command(server, "reload", env=server_env)
    assert result.returncode == 1
    assert "--workers 2" in result.stderr
    status = run_command(server, "status", "--json", env=server_env)
    assert status.returncode == 0 and json.loads(status.stdout)["processes"] == 1, status
    assert server.stop() == 0
    assert not control_file(server.port).exists()


def test_reload_without_a_server_says_so(start_server, server_env):
    server = start_server("--workers", "2", wait=True)
    server.kill()  # no clean-up: the control file is left behind
    result = run_command(server, "reload", env=server_env)
    assert result.returncode == 1
    assert "no server started from" in result.stderr and "left over" in result.stderr
    control_file(server.port).unlink(missing_ok=True)
    result = run_command(server, "reload", env=server_env)
    assert result.returncode == 1 and "is missing" in result.stderr


def ask(port: int, message: bytes) -> dict:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(message)
        data = b""
        while not data.endswith(b"\n"):
            part = sock.recv(4096)
            if not part:
                break
            data += part
    return json.loads(data)


def test_control_channel_answers_only_with_the_token(start_server):
    server = start_server("--workers", "2")
    path = control_file(server.port)
    details = json.loads(path.read_text(encoding="utf-8"))
    if os.name == "posix":
        assert path.stat().st_mode & 0o777 == 0o600  # other local users cannot read the token
    port = details["port"]
    assert ask(port, b'{"command": "status"}\n')["ok"] is False
    wrong = json.dumps({"token": "x" * len(details["token"]), "command": "reload"}).encode()
    assert ask(port, wrong + b"\n") == {"ok": False, "error": "refused: no valid token"}
    assert ask(port, b"GET / HTTP/1.1\r\n\r\n")["ok"] is False
    right = json.dumps({"token": details["token"], "command": "status"}).encode()
    answer = ask(port, right + b"\n")
    assert answer["ok"] is True and len(answer["workers"]) == 2
    assert "Reload" not in server.output()  # the refused ones did nothing
    assert server.stop() == 0
    assert not path.exists()


def worker_pids(server) -> set[int]:
    """The server's live worker processes (multiprocessing's own helper left out)."""
    pids = set()
    for child in psutil.Process(server.process.pid).children():
        try:
            if running(child.pid) and "spawn_main" in " ".join(child.cmdline()):
                pids.add(child.pid)
        except psutil.Error:
            pass
    return pids


def settled_workers(server, env: dict, wanted: int, seconds: float = 30) -> tuple[set[int], dict]:
    """The worker processes and the server's own `status` once it has ``wanted`` workers
    serving and none leaving (or after ``seconds``)."""
    deadline = time.monotonic() + seconds
    while True:
        status = json.loads(run_command(server, "status", "--json", env=env, timeout=60).stdout or "{}")
        serving = [w for w in status.get("workers", []) if not w["retiring"]]
        pids = worker_pids(server)
        if (len(serving) == len(status.get("workers", [])) == len(pids) == wanted) or time.monotonic() > deadline:
            return pids, status
        time.sleep(0.5)


def versions_served(url: str, count: int = 20) -> set[str]:
    with httpx.Client(timeout=30) as http:
        return {http.get(f"{url}/__test__/code-version", headers={"Connection": "close"}).text
                for _ in range(count)}


def test_two_overlapping_reloads_both_return_and_leave_the_workers_asked_for(start_server, server_env, code_file):
    env = {"TEST_CODE_FILE": str(code_file)}
    server = start_server("--workers", "2", "--threads", "2", env=env)
    code_file.write_text('CODE_VERSION = "v2"\n', encoding="utf-8")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(run_command, server, "reload", env={**server_env, **env}, timeout=150)
        server.wait_for_output("Reload: replacing", timeout=60)  # the second comes mid-reload
        second = pool.submit(run_command, server, "reload", env={**server_env, **env}, timeout=150)
        results = [first.result(), second.result()]
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr + server.output()
        assert "Reloaded: 2 worker(s)" in result.stdout
    # The second waited for a reload of its own: one after the first (not a third worker).
    assert server.output().count("Reload: replacing 2 worker(s)") == 2, server.output()
    pids, status = settled_workers(server, {**server_env, **env}, 2)
    assert len(pids) == 2 and len(status["workers"]) == 2, (pids, status)
    assert {body.split()[0] for body in versions_served(server.url)} == {"v2"}
    assert server.stop() == 0


def test_reload_during_a_max_requests_recycle_leaves_the_workers_asked_for(start_server, server_env, code_file):
    # Each new worker takes 3 s to start: the reload comes while the recycle's new worker starts.
    code_file.write_text('import time\ntime.sleep(3)\nCODE_VERSION = "v1"\n', encoding="utf-8")
    env = {"TEST_CODE_FILE": str(code_file)}
    server = start_server("--workers", "2", "--threads", "2", "--max-requests", "30",
                          "--max-requests-jitter", "0", env=env)
    with httpx.Client(timeout=30) as http:
        deadline = time.monotonic() + 60
        while "asks to be replaced" not in server.output() and time.monotonic() < deadline:
            http.get(f"{server.url}/__test__/code-version", headers={"Connection": "close"})
    assert "asks to be replaced" in server.output()
    code_file.write_text('CODE_VERSION = "v2"\n', encoding="utf-8")
    result = run_command(server, "reload", env={**server_env, **env}, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr + server.output()
    assert server.output().count("replaced by worker") >= 3  # the recycle, then the reload's two
    pids, status = settled_workers(server, {**server_env, **env}, 2)
    assert len(pids) == 2 and len(status["workers"]) == 2, (pids, status, server.output())
    assert {body.split()[0] for body in versions_served(server.url)} == {"v2"}
    assert server.stop() == 0


def replacement_events(output: str) -> dict[str, list[tuple[datetime.datetime, str]]]:
    """{worker number: [(time, "asks" or "failed")]} from the server's log lines."""
    events = collections.defaultdict(list)
    for stamp, worker, what in re.findall(
            r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*?Worker (\d+) (asks to be|could not be) replaced",
            output, re.M):
        when = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        events[worker].append((when, "asks" if what == "asks to be" else "failed"))
    return events


def test_worker_whose_recycle_failed_serves_on_and_asks_again_later(start_server, code_file):
    env = {"TEST_CODE_FILE": str(code_file)}
    server = start_server("--workers", "2", "--threads", "2", "--max-requests", "20",
                          "--max-requests-jitter", "0", env=env)
    code_file.write_text('CODE_VERSION = ("v2"\n', encoding="utf-8")  # new workers cannot start
    bodies = set()

    def asked_again() -> list:
        return [kinds for kinds in replacement_events(server.output()).values()
                if [kind for _, kind in kinds][:3] == ["asks", "failed", "asks"]]

    with httpx.Client(timeout=30) as http:
        deadline = time.monotonic() + 90
        while not asked_again() and time.monotonic() < deadline:
            # About 20 requests a second: 20 more to one worker take about 2 s.
            bodies.add(http.get(f"{server.url}/__test__/code-version", headers={"Connection": "close"}).text)
            time.sleep(0.05)
    output = server.output()
    assert "could not be replaced" in output and "SyntaxError" in output
    # Not once and never again (it asked a second time), nor at once again: only after as
    # many requests more, a second or more after it was told.
    assert asked_again(), output
    (_, _), (failed, _), (again, _) = asked_again()[0][:3]
    assert (again - failed).total_seconds() >= 1.0, output
    assert {body.split()[0] for body in bodies} == {"v1"}
    assert server.stop() == 0


def test_a_reload_wait_ends_with_a_clear_message(tmp_path):
    """A server that never answers: the client gives up after its time-out and says why."""
    from tornado_wsgi_server.control import ControlError, reload_timeout, send_command
    from tornado_wsgi_server.options import ServerOptions
    from tornado_wsgi_server.project import Project

    project = Project("Silent", "silent", tmp_path, "tests.settings")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "server-8000.control").write_text(
            json.dumps({"pid": 1, "port": silent.getsockname()[1], "token": "t"}), encoding="utf-8")
        began = time.monotonic()
        with pytest.raises(ControlError, match="did not answer within 1s"):
            send_command(project, 8000, "reload", timeout=1)
        assert time.monotonic() - began < 10
    # The command's own bound: the drain time plus each worker's start-up, never forever.
    options = ServerOptions(workers=2, drain_timeout=30)
    assert 30 < reload_timeout(options) < 3600


def read_only_copy(tmp_path: Path, writable: tuple[str, ...]) -> Path:
    """A copy of the project whose folder the server cannot create files in, but for the
    sub-folders ``writable``: ``chattr +i`` as root (whom write bits do not stop), the write
    bits taken away for anyone else; undone by ``unlock``."""
    if sys.platform == "win32":
        pytest.skip("not on Windows: its folder rights are ACLs, set by the service install")
    as_root = os.geteuid() == 0
    if as_root and not shutil.which("chattr"):
        pytest.skip("as root only chattr +i makes a folder read-only, and chattr is missing")
    copy = tmp_path / "project"
    shutil.copytree(PROJECT_DIR, copy, ignore=shutil.ignore_patterns(
        "__pycache__", ".pytest_cache", ".ruff_cache", ".hypothesis", "data", "logs", ".venv", "*.control"))
    for name in writable:
        (copy / name).mkdir()
    if not as_root:
        copy.chmod(0o555)
    elif subprocess.run(["chattr", "+i", str(copy)], capture_output=True, timeout=30).returncode:
        pytest.skip("chattr +i is not supported on this file system")
    return copy


@pytest.fixture
def unlock():
    folders: list[Path] = []
    yield folders.append
    for folder in folders:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(folder)], check=False, timeout=30)
        else:
            folder.chmod(0o755)


def start_in(project: Path, env: dict, *args: str) -> tuple[subprocess.Popen, int, Path]:
    from ..conftest import free_port

    port = free_port()
    log = project.parent / f"server-{port}.out"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "tornado_server.py", "--settings", "tests.settings", "--port", str(port), *args],
            cwd=project, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "is running at" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start (exit {process.poll()}):\n{log.read_text(errors='replace')}")
        time.sleep(0.1)
    return process, port, log


def in_project(project: Path, port: int, *args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tornado_server.py", *args, "--port", str(port)],
                          cwd=project, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_server_runs_and_reloads_in_a_read_only_project_folder(tmp_path, server_env, unlock, workers):
    """Only data/ and logs/ may be written, as for a service with least privilege."""
    project = read_only_copy(tmp_path, ("data", "logs"))
    unlock(project)
    process, port, log = start_in(project, server_env, "--workers", workers, "--log-file", "logs/server.log")
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        assert control_file(port, project).exists()
        status = in_project(project, port, "status", env=server_env)
        assert status.returncode == 0, status.stderr
        if workers == "2":
            reload = in_project(project, port, "reload", env=server_env)
            assert reload.returncode == 0, reload.stdout + reload.stderr + log.read_text(errors="replace")
            assert "Reloaded: 2 worker(s)" in reload.stdout
        assert (project / "logs" / "server.log").stat().st_size > 0
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0
    assert not control_file(port, project).exists()


def test_server_without_a_writable_data_folder_serves_without_reload_and_says_so(tmp_path, server_env, unlock):
    project = read_only_copy(tmp_path, ())
    unlock(project)
    process, port, log = start_in(project, server_env)
    try:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=30).status_code == 200
        warnings = [line for line in log.read_text(errors="replace").splitlines() if "No control channel" in line]
        assert len(warnings) == 1 and "WARNING" in warnings[0], log.read_text(errors="replace")
        assert "reload" in warnings[0] and str(project / "data") in warnings[0]
        status = in_project(project, port, "status", env=server_env)
        assert status.returncode == 3 and "not answering" in status.stdout, status
        assert str(project / "data") in status.stdout, status.stdout
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0


def test_reload_finds_a_server_that_wrote_its_file_where_earlier_versions_did(tmp_path, server_env):
    """During an upgrade the new code's `reload` reaches a server started by the old code."""
    from tornado_wsgi_server.control import send_command
    from tornado_wsgi_server.project import Project

    project = Project("Old", "old", tmp_path, "tests.settings")
    with socket.socket() as gone:
        gone.bind(("127.0.0.1", 0))
        port = gone.getsockname()[1]
    (tmp_path / ".server-8000.control").write_text(json.dumps({"pid": 1, "port": port, "token": "t"}),
                                                  encoding="utf-8")
    with pytest.raises(ControlError, match="left over"):
        send_command(project, 8000, "status", timeout=5)
