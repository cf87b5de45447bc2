"""The stuck-request watchdog: --request-timeout answers 504, drops the late response, logs the
stuck thread's stack, and counts the thread as busy until it really returns."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tornado_wsgi_server.options import load_options
from tornado_wsgi_server.project import load_project

from ..conftest import ONE_AT_A_TIME, PROJECT_DIR, send_and_read_to_close

RETURNED = "has returned after"


def exchange(port: int, target: str, timeout: float = 30) -> tuple[bytes, float]:
    """Send a keep-alive GET and read until the server closes: (all bytes, seconds taken)."""
    started = time.monotonic()
    data = send_and_read_to_close(port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode(), timeout)
    return data, time.monotonic() - started


def access_lines(output: str, target: str) -> list[str]:
    return [line for line in output.splitlines() if f'"GET {target} HTTP/1.1"' in line]


def test_stuck_view_gets_504_its_stack_is_logged_and_its_late_answer_dropped(start_server):
    server = start_server("--request-timeout", "2", "--threads", "2")
    finished_before = httpx.get(f"{server.url}/__test__/finished-count", timeout=10).json()["finished"]
    target = "/__test__/block?seconds=10"
    data, took = exchange(server.port, target)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 504 "), data
    assert b"\r\nConnection: close" in head
    # The 504's body and then the end of the connection: the view's answer never follows.
    assert body == b"The server took too long to answer this request.\n", data
    assert took < 7, f"the 504 came after {took:.1f}s (--request-timeout 2; the view takes 10 s)"
    output = server.wait_for_output("Request stuck: GET /__test__/block?seconds=10 from 127.0.0.1")
    warning = output[output.index("Request stuck:"):]
    assert "(--request-timeout 2s); answered 504" in warning
    assert "time.sleep(seconds)" in warning and ", in block\n" in warning, warning
    # The view returns 10 s after it started: its thread comes back, its response is dropped,
    # and its close() (Django's request_finished) has run once, on that thread.
    output = server.wait_for_output(RETURNED, timeout=30)
    lines = access_lines(output, target)
    assert len(lines) == 1 and '" 504 ' in lines[0], lines
    finished_after = httpx.get(f"{server.url}/__test__/finished-count", timeout=10).json()["finished"]
    assert finished_after == finished_before + 2  # the first finished-count's close(), and the view's
    assert output.count("Request stuck:") == 1


def test_stuck_thread_stays_busy_until_it_returns(start_server):
    """One thread, no queue: while the timed-out view still runs, a new request gets 503 at
    once (the thread really is busy); once it returns, requests succeed again."""
    server = start_server(*ONE_AT_A_TIME, "--request-timeout", "1")
    with ThreadPoolExecutor(1) as pool:
        stuck = pool.submit(exchange, server.port, "/__test__/block?seconds=6")
        server.wait_for_output("Request stuck: GET /__test__/block")
        started = time.monotonic()
        busy = httpx.get(f"{server.url}/healthz", timeout=30)
        took = time.monotonic() - started
        assert busy.status_code == 503 and took < 5, (busy.status_code, took)  # the view takes 6 s
        data, _ = stuck.result(timeout=60)
        assert data.startswith(b"HTTP/1.1 504 "), data
    output = server.wait_for_output(RETURNED, timeout=30)
    assert output.count("All 1 threads of this process are stuck") == 1
    assert "only a restart frees threads that never do" in output
    for _ in range(3):  # its place came back once, not twice and not never
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_stream_stuck_mid_way_is_closed_and_a_lively_one_is_not(start_server):
    server = start_server("--request-timeout", "2")
    data, took = exchange(server.port, "/__test__/stall-stream?seconds=8")
    assert data.startswith(b"HTTP/1.1 200 "), data
    assert b"first part" in data and b"late part" not in data, data
    assert not data.endswith(b"0\r\n\r\n")  # cut short: no last chunk
    assert took < 6, f"the stuck stream was closed after {took:.1f}s"
    output = server.wait_for_output("Request stuck: GET /__test__/stall-stream?seconds=8")
    assert "closed its connection" in output[output.index("Request stuck:"):]
    # A stream that keeps producing is not stuck, however long it lasts in all.
    lively = httpx.get(f"{server.url}/__test__/stream?chunks=5&delay=0.8", timeout=30)
    assert lively.status_code == 200 and len(lively.content) == 50
    assert server.output().count("Request stuck:") == 1


@pytest.mark.parametrize(("raw", "seconds"), [("300", 300.0), ("0.5", 0.5), ("off", 0.0), ("0", 0.0)])
def test_request_timeout_values(raw, seconds):
    options = load_options(load_project(PROJECT_DIR), ["--request-timeout", raw], environ={})
    assert options.request_timeout == seconds


@pytest.mark.parametrize("raw", ["-1", "soon", "nan"])
def test_request_timeout_bad_value_is_refused(raw, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_options(load_project(PROJECT_DIR), ["--request-timeout", raw], environ={})
    assert exit_info.value.code == 2
    assert f"--request-timeout={raw!r}" in capsys.readouterr().err


def test_worker_with_every_thread_stuck_is_replaced_while_the_other_serves(start_server):
    """--workers: a worker whose only thread is stuck past --request-timeout is replaced by a
    fresh process; the other worker answers throughout."""
    server = start_server("--workers", "2", "--threads", "1", "--request-timeout", "1",
                          "--max-queue", "0")
    with httpx.Client(timeout=30) as http:
        stuck = http.get(f"{server.url}/__test__/block?seconds=20")
        assert stuck.status_code == 504
        output = server.wait_for_output("replaced by worker", timeout=60)
        assert "threads stuck past --request-timeout" in output
        # Whichever worker is left answers; a busy one would say 503 (no queue).
        statuses = [http.get(f"{server.url}/healthz", headers={"Connection": "close"}).status_code
                    for _ in range(20)]
    assert statuses.count(200) >= 10, statuses
    server.wait_for_output("stopped after", timeout=30)
    assert server.stop() == 0
