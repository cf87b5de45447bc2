"""Ctrl+C / SIGTERM: in-flight requests finish, new connections are refused, exit code 0."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..conftest import ONE_AT_A_TIME, PROJECT_DIR, wait_until_busy


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:  # ConnectionRefusedError; a timeout on some Windows setups
        return True


def send_stop(server, how: str) -> None:
    if how == "SIGTERM":  # what systemd, Docker and kill send
        server.process.send_signal(signal.SIGTERM)
    else:
        server.signal_stop()


STOP_SIGNALS = [
    pytest.param("Ctrl+C", id="ctrl-c"),
    # On Windows a process cannot be sent SIGTERM: send_signal() ends it (TerminateProcess).
    pytest.param("SIGTERM", id="sigterm", marks=pytest.mark.skipif(
        sys.platform == "win32", reason="not on Windows: it cannot send SIGTERM to a process")),
]


@pytest.mark.parametrize("how", STOP_SIGNALS)
def test_graceful_stop_finishes_requests_in_flight(start_server, how):
    server = start_server(*ONE_AT_A_TIME)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=3", timeout=30)
        wait_until_busy(server.port)
        send_stop(server, how)
        deadline = time.monotonic() + 2
        while not refused(server.port):
            assert time.monotonic() < deadline, "still accepting connections after the stop signal"
            time.sleep(0.05)
        assert not slow.done(), "the slow request ended before the listener closed"
        response = slow.result(timeout=90)
    assert response.status_code == 200
    assert response.text.startswith("slept 3.0s")
    assert response.headers["connection"] == "close"
    assert server.process.wait(15) == 0
    output = server.output()
    assert "Shutting down" in output and "Stopped." in output
    if how == "SIGTERM":
        assert "Shutting down (SIGTERM)" in output


def test_idle_keep_alive_connection_is_closed_while_a_request_drains(start_server):
    server = start_server(*ONE_AT_A_TIME)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as idle, \
            ThreadPoolExecutor(1) as pool:
        idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b"\r\n\r\nok"):
            part = idle.recv(4096)
            assert part, answer
            answer += part
        assert answer.startswith(b"HTTP/1.1 200 OK")  # and the connection stays open: keep-alive
        slow = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=6", timeout=30)
        wait_until_busy(server.port)
        stop_sent = time.monotonic()
        server.signal_stop()
        idle.settimeout(20)
        try:
            closed = idle.recv(100) == b""
        except ConnectionResetError:
            closed = True
        waited = time.monotonic() - stop_sent
        # Closed at the stop itself, not when the drain ends about 5 s later.
        assert closed
        assert not slow.done(), "the idle connection stayed open until the drain ended"
        assert waited < 2.5, f"the idle keep-alive connection was closed {waited:.1f}s after the stop"
        response = slow.result(timeout=90)
    assert response.status_code == 200
    assert response.text.startswith("slept 6.0s")
    assert server.process.wait(15) == 0


def test_drain_timeout_bounds_shutdown(start_server):
    server = start_server("--drain-timeout", "1", *ONE_AT_A_TIME)
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=10", timeout=30)
        wait_until_busy(server.port)
        started = time.monotonic()
        server.signal_stop()
        returncode = server.process.wait(15)
        elapsed = time.monotonic() - started
        assert stuck.exception(timeout=90) is not None  # its connection was closed unanswered
    assert elapsed < 5, f"took {elapsed:.1f}s to stop with --drain-timeout 1"
    assert returncode == 0
    assert "still running after 1s" in server.output()


def test_second_signal_forces_exit(start_server):
    server = start_server(*ONE_AT_A_TIME)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=10", timeout=30)
        wait_until_busy(server.port)
        server.signal_stop()
        server.wait_for_output("Shutting down")  # the first signal has been handled
        server.signal_stop()
        started = time.monotonic()
        returncode = server.process.wait(10)
    assert time.monotonic() - started < 3
    assert returncode == 1
    assert "Forced stop." in server.output()


# Stops a Server from another thread at many points of its start-up, the way the service
# manager's thread stops the server thread of a Windows service that has just started.
STOP_DURING_START_UP = """
import random, sys, threading, time
sys.path.insert(0, {project!r})
from tornado import netutil
from tornado_wsgi_server.application import setup_django
from tornado_wsgi_server.options import load_options
from tornado_wsgi_server.process import Server
from tornado_wsgi_server.project import load_project

options = load_options(load_project({project!r}), sys.argv[1:])
application = setup_django(options)
sys.setswitchinterval(1e-6)  # switch threads as often as possible
lost = 0
for attempt in range({attempts}):
    server = Server(options, netutil.bind_sockets(0, "127.0.0.1"), hard_exit=False)
    thread = threading.Thread(target=server.run, args=(application,), daemon=True)
    thread.start()
    if attempt % 2:
        time.sleep(random.uniform(0, 0.02))  # anywhere in the start-up
    else:
        for _ in range(random.randrange(attempt % 200 + 1)):  # right after run() began
            pass
    server.stop("test")
    thread.join(10)
    if thread.is_alive():
        lost += 1
        server.stop("again")  # let it end
        thread.join(10)
    server.stop("after run() returned")  # must not raise
print("lost stops:", lost, flush=True)
"""


@pytest.mark.slow
def test_stop_during_start_up_is_never_lost(server_env):
    completed = subprocess.run(
        [sys.executable, "-c", STOP_DURING_START_UP.format(project=str(PROJECT_DIR), attempts=300),
         "--settings", "tests.settings", "--drain-timeout", "1"],
        cwd=PROJECT_DIR, env=server_env, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "lost stops: 0" in completed.stdout, completed.stdout + completed.stderr
