"""--metrics: Prometheus text summed over every worker process, on a loopback-only listener."""

from __future__ import annotations

import collections
import re
import socket
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from ..conftest import ONE_AT_A_TIME, PROJECT_DIR, free_port, second_loopback_address, wait_until_busy


def scrape(port: int) -> str:
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return response.text


def samples(text: str, name: str) -> dict[str, float]:
    """{labels: value} of every sample of the metric ``name`` in Prometheus text."""
    found = {}
    pattern = "^" + re.escape(name) + r"(\{[^}]*\})? (\S+)$"
    for match in re.finditer(pattern, text, re.M):
        found[match.group(1) or ""] = float(match.group(2))
    return found


def total(text: str, name: str, labels: str | None = None) -> float:
    """The metric summed over its series, or the one series with ``labels``."""
    series = samples(text, name)
    return series.get(labels, 0) if labels is not None else sum(series.values())


def wait_for_metric(port: int, name: str, wanted: float, labels: str | None = None,
                    timeout: float = 20, at_least: bool = False) -> str:
    """The scrape once ``name`` is ``wanted`` (or more, with ``at_least``).

    Processes report once a second, so a count lags the requests by up to about two seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        text = scrape(port)
        value = total(text, name, labels)
        reached = value >= wanted if at_least else value == wanted
        if reached or time.monotonic() > deadline:
            assert reached, f"{name}{labels or ''} = {value}, wanted {wanted}:\n{text}"
            return text
        time.sleep(0.2)


def test_requests_over_two_workers_are_counted_once_each(start_server):
    metrics_port = free_port()
    server = start_server("--workers", "2", "--metrics", str(metrics_port))
    served_by: collections.Counter = collections.Counter()
    lock = threading.Lock()

    def send(count: int) -> None:
        for _ in range(count):
            with httpx.Client(timeout=10) as http:  # a new connection: either worker may take it
                pid = http.get(f"{server.url}/__test__/whoami").json()["pid"]
            with lock:
                served_by[pid] += 1

    deadline = time.monotonic() + 30
    while len(served_by) < 2 and time.monotonic() < deadline:
        senders = [threading.Thread(target=send, args=(10,)) for _ in range(4)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join(60)
            assert not sender.is_alive(), "requests still running after 60 s"
    assert len(served_by) == 2, f"one worker served everything: {served_by}"
    sent = sum(served_by.values())

    text = wait_for_metric(metrics_port, "tornado_server_requests_total", sent)
    assert samples(text, "tornado_server_requests_total") == {'{method="GET",status_class="2xx"}': sent}
    assert samples(text, "tornado_server_request_duration_seconds_count") == {"": sent}
    assert samples(text, "tornado_server_request_duration_seconds_bucket")['{le="+Inf"}'] == sent
    assert samples(text, "tornado_server_workers") == {"": 2}
    assert len(samples(text, "tornado_server_process_resident_memory_bytes")) == 2
    assert all(value > 10 * 1024 * 1024 for value in
               samples(text, "tornado_server_process_resident_memory_bytes").values())
    # Each worker's own count matches what it answered: nothing is counted twice.
    status = httpx.get(f"http://127.0.0.1:{metrics_port}/status.json", timeout=10).json()
    assert {worker["pid"]: worker["requests"] for worker in status["workers"]} == dict(served_by)


def test_shed_and_rejected_requests_are_counted_by_reason(start_server):
    metrics_port = free_port()
    server = start_server(*ONE_AT_A_TIME, "--max-body-size", "1K", "--metrics", str(metrics_port))
    holder = threading.Thread(target=httpx.get, args=(f"{server.url}/__test__/block?seconds=3",),
                              kwargs={"timeout": 30})
    holder.start()
    try:
        wait_until_busy(server.port)  # itself one 503 (queue full) or more
        busy = httpx.get(f"{server.url}/healthz", timeout=10)
        assert busy.status_code == 503
    finally:
        holder.join(60)
    text = wait_for_metric(metrics_port, "tornado_server_requests_shed_total", 2, '{reason="queue_full"}',
                           at_least=True)
    rejected = total(text, "tornado_server_requests_rejected_total", '{status="413"}')
    # The busy probes are refused before their size is looked at; a free server refuses
    # them with 413. One more oversized body, then one more 413 is counted.
    too_large = httpx.post(f"{server.url}/__test__/echo", content=b"x" * 4096, timeout=10)
    assert too_large.status_code == 413
    text = wait_for_metric(metrics_port, "tornado_server_requests_rejected_total", rejected + 1,
                           '{status="413"}')
    assert total(text, "tornado_server_requests_shed_total", '{reason="deadline"}') == 0
    assert total(text, "tornado_server_requests_total", '{method="GET",status_class="5xx"}') >= 1
    assert total(text, "tornado_server_requests_total", '{method="GET",status_class="2xx"}') == 1


def start_raw(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "tornado_server.py", "--settings", "tests.settings", *args],
                          cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=60)


def test_metrics_listener_refuses_a_public_address_unless_asked(server_env, start_server):
    refused = start_raw("--port", str(free_port()), "--metrics", f"0.0.0.0:{free_port()}", env=server_env)
    assert refused.returncode == 2
    assert "not a loopback address" in refused.stderr
    assert "--metrics-public" in refused.stderr and "SERVER_METRICS_PUBLIC" in refused.stderr
    refused = start_raw("--port", str(free_port()),
                        env={**server_env, "SERVER_METRICS": f"0.0.0.0:{free_port()}"})
    assert refused.returncode == 2 and "not a loopback address" in refused.stderr

    metrics_port = free_port()
    start_server("--metrics", f"0.0.0.0:{metrics_port}", "--metrics-public")
    assert "tornado_server_requests_total" in scrape(metrics_port)


def test_a_bare_port_listens_on_loopback_only(start_server):
    metrics_port = free_port()
    start_server(env={"SERVER_METRICS": str(metrics_port)})
    wait_for_metric(metrics_port, "tornado_server_workers", 1)
    if second_loopback_address():  # 127.0.0.1 only: another address of this host is refused
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", metrics_port), timeout=5).close()


def test_a_replaced_worker_is_counted_and_its_requests_stay_in_the_total(start_server):
    metrics_port = free_port()
    server = start_server("--workers", "2", "--metrics", str(metrics_port))
    with httpx.Client(timeout=10) as http:
        for _ in range(20):
            assert http.get(f"{server.url}/healthz").status_code == 200
    wait_for_metric(metrics_port, "tornado_server_requests_total", 20)
    # The workers by the PIDs the supervisor reports (on Windows a virtual environment's
    # python.exe is a launcher: the workers are its child's children, not its own).
    status = httpx.get(f"http://127.0.0.1:{metrics_port}/status.json", timeout=10).json()
    workers = [psutil.Process(worker["pid"]) for worker in status["workers"]]
    assert len(workers) == 2
    for worker in workers:  # both: whichever served the requests is among them
        worker.kill()
    server.wait_for_output("starting a new one", count=2)
    text = wait_for_metric(metrics_port, "tornado_server_worker_restarts_total", 2)
    # The dead workers' counts are kept: a counter never goes down.
    assert total(text, "tornado_server_requests_total") == 20
    assert total(text, "tornado_server_request_duration_seconds_count") == 20
    wait_for_metric(metrics_port, "tornado_server_workers", 2)


def test_open_connections_are_counted(start_server):
    metrics_port = free_port()
    server = start_server("--metrics", str(metrics_port))
    clients = []
    try:
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(12) == b"HTTP/1.1 200"
            clients.append(sock)  # kept open: idle keep-alive connections
        wait_for_metric(metrics_port, "tornado_server_open_connections", 3, '{kind="http"}')
    finally:
        for sock in clients:
            sock.close()
    wait_for_metric(metrics_port, "tornado_server_open_connections", 0, '{kind="http"}')


def test_idle_connections_to_the_listener_hold_no_thread(start_server):
    """100 sockets that send nothing add no thread each, and a real scrape still answers;
    a request that never ends is cut off at the size limit."""
    metrics_port = free_port()
    server = start_server("--metrics", str(metrics_port))
    scrape(metrics_port)
    process = psutil.Process(server.process.pid)
    before = process.num_threads()
    idle = [socket.create_connection(("127.0.0.1", metrics_port), timeout=10) for _ in range(100)]
    try:
        time.sleep(1)
        assert process.num_threads() < before + 10
        assert "tornado_server_requests_total" in scrape(metrics_port)
        with socket.create_connection(("127.0.0.1", metrics_port), timeout=10) as endless:
            endless.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 20000)
            endless.settimeout(5)  # well before the 10 s a request may take
            try:
                assert endless.recv(100) == b""
            except ConnectionResetError:
                pass
    finally:
        for sock in idle:
            sock.close()
    assert process.num_threads() < before + 10


def test_a_replaced_worker_keeps_the_worker_label(start_server):
    """The worker label is a slot, 1 to --workers: a replacement takes its predecessor's, so
    the label set stays the same whatever the number of replacements."""
    metrics_port = free_port()
    server = start_server("--workers", "2", "--metrics", str(metrics_port))
    name = "tornado_server_process_start_time_seconds"
    text = wait_for_metric(metrics_port, "tornado_server_workers", 2)
    deadline = time.monotonic() + 20
    while set(samples(text, name)) != {'{worker="1"}', '{worker="2"}'} and time.monotonic() < deadline:
        time.sleep(0.2)
        text = scrape(metrics_port)
    before = samples(text, name)
    assert set(before) == {'{worker="1"}', '{worker="2"}'}, text
    status = httpx.get(f"http://127.0.0.1:{metrics_port}/status.json", timeout=10).json()
    psutil.Process(status["workers"][0]["pid"]).kill()
    server.wait_for_output("starting a new one")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        after = samples(scrape(metrics_port), name)
        if after != before and len(after) == 2:
            break
        time.sleep(0.2)
    assert set(after) == set(before)
    assert after != before  # one slot now reports its new process's start time
