"""Blocking views run on the thread pool: one slow request does not hold up the others."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx


def fetch_all(url: str, count: int) -> tuple[float, list[int]]:
    def one(_):
        with httpx.Client(timeout=60) as http:
            return http.get(url).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(count) as pool:
        statuses = list(pool.map(one, range(count)))
    return time.monotonic() - started, statuses


def test_blocking_requests_run_concurrently(start_server):
    server = start_server("--threads", "8")
    elapsed, statuses = fetch_all(f"{server.url}/__test__/block?seconds=1", 8)
    assert statuses == [200] * 8
    # Serially this takes 8 s; on the pool about 1 s.
    assert elapsed < 3, f"8 concurrent 1 s requests took {elapsed:.2f}s"


def test_one_thread_is_serial(start_server):
    """The control: with one thread the same requests queue, so the test above can fail."""
    server = start_server("--threads", "1")
    elapsed, statuses = fetch_all(f"{server.url}/__test__/block?seconds=1", 4)
    assert statuses == [200] * 4
    assert elapsed >= 3.5, f"4 requests on 1 thread took only {elapsed:.2f}s"


def test_event_loop_stays_free_while_threads_block(start_server, client):
    """A fast request is answered while every thread is busy... once one frees up,
    and health checks queue behind at most one blocked view."""
    server = start_server("--threads", "2")
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(lambda: httpx.get(f"{server.url}/__test__/block?seconds=2", timeout=30))
        time.sleep(0.3)
        started = time.monotonic()
        assert client.get(f"{server.url}/healthz").status_code == 200
        assert time.monotonic() - started < 1.5
        assert slow.result().status_code == 200
