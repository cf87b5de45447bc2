"""Fixtures that run the real tornado_server.py in a subprocess on a free port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
IS_WINDOWS = sys.platform == "win32"
READY_LINE = "is running at"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(*args: str, env: dict) -> None:
    subprocess.run([sys.executable, "manage.py", *args, "--settings", "tests.settings"],
                   cwd=PROJECT_DIR, env=env, check=True)


class RunningServer:
    """A tornado_server.py process; ``url`` is its base URL, ``output()`` what it printed."""

    def __init__(self, args: list[str], env: dict, port: int, scheme: str = "http") -> None:
        self.port = port
        self.url = f"{scheme}://127.0.0.1:{port}"
        self.log = tempfile.NamedTemporaryFile("w+b", suffix=".log", delete=False)
        flags = subprocess.CREATE_NEW_PROCESS_GROUP if IS_WINDOWS else 0
        self.process = subprocess.Popen(
            [sys.executable, "tornado_server.py", *args], cwd=PROJECT_DIR, env=env,
            stdout=self.log, stderr=subprocess.STDOUT, creationflags=flags,
        )

    def output(self) -> str:
        return Path(self.log.name).read_bytes().decode("utf-8", "replace")

    def wait_ready(self, timeout: float = 60) -> RunningServer:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY_LINE in self.output():
                return self
            if self.process.poll() is not None:
                pytest.fail(f"server exited with {self.process.returncode}:\n{self.output()}")
            time.sleep(0.05)
        self.kill()
        pytest.fail(f"server did not start in {timeout}s:\n{self.output()}")

    def signal_stop(self) -> None:
        """What Ctrl+C (Ctrl+Break on Windows) does."""
        if self.process.poll() is None:
            self.process.send_signal(signal.CTRL_BREAK_EVENT if IS_WINDOWS else signal.SIGINT)

    def stop(self, timeout: float = 60) -> int:
        self.signal_stop()
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"server did not stop in {timeout}s:\n{self.output()}")

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def close(self) -> None:
        self.kill()
        self.log.close()
        try:
            os.unlink(self.log.name)
        except OSError:
            pass


@pytest.fixture(scope="session")
def server_env(tmp_path_factory) -> dict:
    """Environment for test servers: throwaway database and static files, migrated."""
    tmp = tmp_path_factory.mktemp("server")
    env = dict(os.environ)
    env.update({
        "DJANGO_SECRET_KEY": "test-only-" + "s" * 60,
        "DJANGO_DEBUG": "false",
        "DJANGO_STATIC_ROOT": str(tmp / "staticfiles"),
        "PYTHONUNBUFFERED": "1",
    })
    env.setdefault("DATABASE_URL", f"sqlite:///{(tmp / 'db.sqlite3').as_posix()}")
    manage("migrate", "--noinput", "--verbosity", "0", env=env)
    manage("collectstatic", "--noinput", "--verbosity", "0", env=env)
    return env


@pytest.fixture
def start_server(server_env):
    """start_server('--threads', '2', env={...}) -> RunningServer, stopped after the test."""
    servers: list[RunningServer] = []

    def start(*args: str, env: dict | None = None, wait: bool = True, scheme: str = "http",
              port: int | None = None) -> RunningServer:
        port = port or free_port()
        server = RunningServer(
            ["--settings", "tests.settings", "--port", str(port), *args],
            {**server_env, **(env or {})}, port, scheme,
        )
        servers.append(server)
        return server.wait_ready() if wait else server

    yield start
    for server in servers:
        server.close()


@pytest.fixture
def client():
    with httpx.Client(timeout=30) as http:
        yield http


@pytest.fixture(scope="module")
def start_module_server(server_env):
    """start_server for a server that several tests of one module share."""
    servers: list[RunningServer] = []

    def start(*args: str, env: dict | None = None, scheme: str = "http") -> RunningServer:
        port = free_port()
        server = RunningServer(
            ["--settings", "tests.settings", "--port", str(port), *args],
            {**server_env, **(env or {})}, port, scheme,
        )
        servers.append(server)
        return server.wait_ready()

    yield start
    for server in servers:
        server.close()
