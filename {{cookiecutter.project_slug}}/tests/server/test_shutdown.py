"""Ctrl+C / SIGTERM: in-flight requests finish, new connections are refused, exit code 0."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:  # ConnectionRefusedError; a timeout on some Windows setups
        return True


def test_graceful_stop_finishes_requests_in_flight(start_server):
    server = start_server()
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=3", timeout=30)
        time.sleep(0.5)
        server.signal_stop()
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


def test_idle_keep_alive_connections_do_not_delay_stop(start_server):
    server = start_server()
    with httpx.Client(timeout=10) as http:  # keeps its connection open
        assert http.get(f"{server.url}/healthz").status_code == 200
        started = time.monotonic()
        assert server.stop() == 0
        assert time.monotonic() - started < 5


def test_drain_timeout_bounds_shutdown(start_server):
    server = start_server("--drain-timeout", "1")
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=10", timeout=30)
        time.sleep(0.5)
        started = time.monotonic()
        server.signal_stop()
        returncode = server.process.wait(15)
        elapsed = time.monotonic() - started
        assert stuck.exception() is not None  # its connection was closed unanswered
    assert elapsed < 5, f"took {elapsed:.1f}s to stop with --drain-timeout 1"
    assert returncode == 0
    assert "still running after 1s" in server.output()


def test_second_signal_forces_exit(start_server):
    server = start_server()
    with ThreadPoolExecutor(1) as pool:
        pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=10", timeout=30)
        time.sleep(0.5)
        server.signal_stop()
        time.sleep(0.3)
        server.signal_stop()
        started = time.monotonic()
        returncode = server.process.wait(10)
    assert time.monotonic() - started < 3
    assert returncode == 1
    assert "Forced stop." in server.output()
