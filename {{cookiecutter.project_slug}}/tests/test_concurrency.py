"""Blocking views run on the thread pool: one slow request does not hold up the others."""

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest


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
    # Serially this takes 8 s; on the pool about 1 s (a loaded machine may add a few).
    assert elapsed < 5, f"8 concurrent 1 s requests took {elapsed:.2f}s"


def test_one_thread_is_serial(start_server):
    """The control: with one thread the same requests queue, so the test above can fail."""
    server = start_server("--threads", "1")
    elapsed, statuses = fetch_all(f"{server.url}/__test__/block?seconds=1", 4)
    assert statuses == [200] * 4
    assert elapsed >= 3.5, f"4 requests on 1 thread took only {elapsed:.2f}s"


def wait_until_started(path, timeout: float = 30) -> None:
    """Until the hold view has begun on a thread (it touches ``<path>.started``)."""
    started = path.with_name(path.name + ".started")
    deadline = time.monotonic() + timeout
    while not started.exists():
        assert time.monotonic() < deadline, f"the request holding {path.name} never reached a thread"
        time.sleep(0.02)


def timed_get(url: str, timeout: float = 10) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.TimeoutException:
        pytest.fail(f"{url} got no answer in {timeout}s")
    return response, time.monotonic() - started


def test_event_loop_stays_free_while_threads_block(start_server, tmp_path):
    """With one of two threads held by a view, a health check is answered at once on the
    other; with both held, the event loop still answers (503, as --max-queue 0 asks) at once.
    The held views are released only after the checks, so nothing is answered by waiting."""
    server = start_server("--threads", "2", "--max-queue", "0")
    holds = [tmp_path / "first", tmp_path / "second"]
    for path in holds:
        path.touch()
    hold_url = f"{server.url}/__test__/hold?path="
    with ThreadPoolExecutor(2) as pool:
        try:
            first = pool.submit(httpx.get, hold_url + str(holds[0]), timeout=90)
            wait_until_started(holds[0])
            response, elapsed = timed_get(f"{server.url}/healthz")
            assert response.status_code == 200
            assert elapsed < 3, f"/healthz took {elapsed:.2f}s beside one held thread"

            second = pool.submit(httpx.get, hold_url + str(holds[1]), timeout=90)
            wait_until_started(holds[1])
            response, elapsed = timed_get(f"{server.url}/healthz")
            assert response.status_code == 503
            assert elapsed < 3, f"the 503 took {elapsed:.2f}s while both threads were held"
        finally:
            for path in holds:
                path.unlink()
        answers = [first.result(timeout=60), second.result(timeout=60)]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].text != answers[1].text  # "held on wsgi_0" and "held on wsgi_1"
