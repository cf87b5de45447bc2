"""Ctrl+C / SIGTERM: in-flight requests finish, new connections are refused, exit code 0."""

from __future__ import annotations

import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ..conftest import ONE_AT_A_TIME, wait_until_busy


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
        response = slow.result()
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
        response = slow.result()
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
        assert stuck.exception() is not None  # its connection was closed unanswered
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
