"""reload, --max-requests and worker replacement: new worker first, old one drained, and
not one request fails; the control channel answers only its owner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from ..conftest import PROJECT_DIR

CLIENTS = 20


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
    status = run_command(server, "status", env=server_env)
    assert status.returncode == 0 and '"single"' in status.stdout
    assert server.stop() == 0
    assert not (PROJECT_DIR / f".server-{server.port}.control").exists()


def test_reload_without_a_server_says_so(start_server, server_env):
    server = start_server("--workers", "2", wait=True)
    server.kill()  # no clean-up: the control file is left behind
    result = run_command(server, "reload", env=server_env)
    assert result.returncode == 1
    assert "no server started from" in result.stderr and "left over" in result.stderr
    (PROJECT_DIR / f".server-{server.port}.control").unlink(missing_ok=True)
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
    path = PROJECT_DIR / f".server-{server.port}.control"
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
