"""Overload: nobody waits forever for a thread, and the app never runs what nobody awaits."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from ..conftest import free_port, send_and_read_to_close
from .test_metrics import total, wait_for_metric


def get(port: int, target: str, timeout: float = 30) -> tuple[int, float, float]:
    """(status, wall-clock time sent, seconds until the answer); status 0 if none came."""
    sent = time.time()
    started = time.monotonic()
    data = send_and_read_to_close(
        port, f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode(), timeout)
    status = int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, sent, time.monotonic() - started


def ran(log: Path) -> dict[str, float]:
    """Tag -> wall-clock time the view started, as the record view wrote it."""
    if not log.exists():
        return {}
    return {tag: float(when) for tag, when in
            (line.split() for line in log.read_text(encoding="utf-8").splitlines())}


def wait_started(held: Path) -> None:
    started = held.with_name(held.name + ".started")
    deadline = time.monotonic() + 30
    while not started.exists():
        assert time.monotonic() < deadline, "the holding request never started"
        time.sleep(0.02)


def test_queue_wait_has_a_deadline(start_server, tmp_path):
    """200 requests of 2 s on 2 threads: all answered soon, none run after its deadline, and
    each one shed is counted as such."""
    metrics_port = free_port()
    server = start_server("--threads", "2", "--max-queue-wait", "3", "--max-queue", "300",
                          "--max-connections-per-ip", "1000",  # 200 clients from one address
                          "--metrics", str(metrics_port))
    log = tmp_path / "ran.log"

    def one(index: int):
        return get(server.port, f"/__test__/record?log={log}&tag={index}&seconds=2")

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(one, range(200)))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) >= 2
    assert statuses.count(503) >= 150  # queued past 3 s for a thread: shed, not run late
    # The deadline (3 s) plus one request's time (2 s) plus a margin for this machine.
    slowest = max(elapsed for _, _, elapsed in results)
    assert slowest < 3 + 2 + 2.5, f"a client waited {slowest:.1f}s for an answer"
    started = ran(log)
    assert len(started) == statuses.count(200)
    for tag, when in started.items():
        waited = when - results[int(tag)][1]
        assert waited < 3 + 1, f"request {tag} reached the app after waiting {waited:.1f}s"
    server.wait_for_output("after waiting too long for a thread (--max-queue-wait 3s")
    text = wait_for_metric(metrics_port, "tornado_server_requests_shed_total", statuses.count(503),
                           '{reason="deadline"}')
    assert total(text, "tornado_server_requests_shed_total", '{reason="queue_full"}') == 0, text
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_client_gone_while_queued_never_reaches_the_app(start_server, tmp_path):
    metrics_port = free_port()
    server = start_server("--threads", "1", "--max-queue", "5", "--metrics", str(metrics_port))
    log = tmp_path / "ran.log"
    held = tmp_path / "hold"
    held.touch()
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(get, server.port, f"/__test__/hold?path={held}")
        wait_started(held)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"GET /__test__/record?log={log}&tag=gone HTTP/1.1\r\n"
                         "Host: 127.0.0.1\r\n\r\n".encode())
            # Read and queued behind the held thread.
            wait_for_metric(metrics_port, "tornado_server_requests_in_flight", 2)
        time.sleep(0.5)  # the server sees the hang-up
        held.unlink()
        assert holder.result(timeout=60)[0] == 200
    server.wait_for_output("tag=gone HTTP/1.1\" 499")
    # A request after it runs, so the thread was free when the dropped one was reached.
    assert get(server.port, f"/__test__/record?log={log}&tag=after")[0] == 200
    assert list(ran(log)) == ["after"]
    wait_for_metric(metrics_port, "tornado_server_requests_shed_total", 1, '{reason="client_gone"}')


def one_warm_thread(start_server, tmp_path) -> tuple:
    """A one-thread server whose typical request takes milliseconds, the log its record view
    writes, and the file /__test__/hold waits on while it exists."""
    server = start_server("--threads", "1", "--max-queue-wait", "20")
    log = tmp_path / "ran.log"
    for index in range(5):
        assert get(server.port, f"/__test__/record?log={log}&tag=warm{index}")[0] == 200
    held = tmp_path / "hold"
    held.touch()
    return server, log, held


def test_standing_queue_serves_newest_first(start_server, tmp_path):
    """A queue that keeps growing (arrivals outrun the threads) sheds what has waited, so a
    fresh request still succeeds."""
    server, log, held = one_warm_thread(start_server, tmp_path)
    with ThreadPoolExecutor(12) as pool:
        holder = pool.submit(get, server.port, f"/__test__/hold?path={held}")
        wait_started(held)
        stale = []
        for index in range(8):  # one every 0.1 s: the queue grows while nothing leaves it
            stale.append(pool.submit(get, server.port, f"/__test__/record?log={log}&tag=stale{index}"))
            time.sleep(0.1)
        # FIFO would keep them queued until the thread is free (the deadline is 20 s):
        # a growing queue instead sheds them within about a second.
        for future in stale:
            status, _, elapsed = future.result(timeout=15)
            assert status == 503 and elapsed < 5, (status, elapsed)
        assert held.exists(), "the thread was freed too early for this test to mean anything"
        fresh = pool.submit(get, server.port, f"/__test__/record?log={log}&tag=fresh")
        time.sleep(0.1)
        held.unlink()
        assert fresh.result(timeout=15)[0] == 200
        assert holder.result(timeout=15)[0] == 200
    assert not [tag for tag in ran(log) if tag.startswith("stale")]


def test_a_burst_that_drains_is_served_in_order(start_server):
    """Requests that arrive in two bursts while one thread works through them: two typical
    requests later the queue is no longer than it was, so nothing is shed."""
    server = start_server("--threads", "1", "--max-queue-wait", "20")
    target = "/__test__/block?seconds=1"  # once one has finished, a typical request takes 1 s
    with ThreadPoolExecutor(4) as pool:
        first = [pool.submit(get, server.port, target) for _ in range(2)]
        time.sleep(0.8)
        second = [pool.submit(get, server.port, target) for _ in range(2)]
        statuses = [future.result(timeout=30)[0] for future in first + second]
    assert statuses == [200] * 4


def test_clients_that_wait_for_their_answers_are_not_an_overload(start_server):
    """Clients that each wait for their answer before asking again keep the queue from
    emptying but cannot make it grow (a browser, a benchmark, a script): nobody is shed,
    though each waits longer than the overload mode's short wait."""
    server = start_server("--threads", "1", "--max-queue-wait", "20")
    target = "/__test__/block?seconds=0.15"  # 4 clients, 1 thread: up to 0.45 s in the queue
    deadline = time.monotonic() + 6

    def client(pause: float) -> list[int]:
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(get(server.port, target)[0])
            time.sleep(pause)  # the queue's length moves, as with real clients
        return statuses

    with ThreadPoolExecutor(4) as pool:
        clients = [pool.submit(client, pause) for pause in (0, 0.02, 0.05, 0.08)]
        statuses = [status for future in clients for status in future.result(timeout=60)]
    assert len(statuses) >= 20, statuses
    assert statuses.count(200) == len(statuses), statuses


def test_a_queue_that_stops_growing_is_not_an_overload(start_server, tmp_path):
    """Two requests wait behind a thread that is busy for a while and nothing else arrives:
    a queue that is not growing is no overload, so they are served, not shed after 0.25 s."""
    server, log, held = one_warm_thread(start_server, tmp_path)
    with ThreadPoolExecutor(3) as pool:
        holder = pool.submit(get, server.port, f"/__test__/hold?path={held}")
        wait_started(held)
        waiting = [pool.submit(get, server.port, f"/__test__/record?log={log}&tag=queued{index}")
                   for index in range(2)]
        time.sleep(2)  # four times the overload mode's standing time, its short wait eight times
        held.unlink()
        assert holder.result(timeout=15)[0] == 200
        assert [future.result(timeout=15)[0] for future in waiting] == [200, 200]
    assert {"queued0", "queued1"} <= set(ran(log))
