"""--workers N: spawned processes share the port, are respawned, and never outlive the supervisor."""

from __future__ import annotations

import os
import re
import signal
import socket
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil
import pytest
from tornado import netutil

from tornado_wsgi_server.connections import TornadoServer
from tornado_wsgi_server.container import ThreadedWSGIContainer
from tornado_wsgi_server.options import ServerOptions
from tornado_wsgi_server.process import new_event_loop

from ..conftest import IS_WINDOWS, ONE_AT_A_TIME, wait_until_busy


def whoami_pid(url: str) -> int | None:
    try:  # a new connection each time, so the kernel may hand it to either process
        with httpx.Client(timeout=10) as http:
            return http.get(f"{url}/__test__/whoami").json()["pid"]
    except httpx.HTTPError:
        return None  # a worker that was just killed


def collect_pids(url: str, wanted: int, seconds: float = 20, exclude: frozenset = frozenset()) -> set[int]:
    pids: set[int] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        pid = whoami_pid(url)
        if pid is not None and pid not in exclude:
            pids.add(pid)
            if len(pids) >= wanted:
                break
    return pids


def alive(pid: int) -> bool:
    try:  # a zombie waiting for a parent that does not reap is gone as far as we care
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill(pid: int) -> None:
    """SIGKILL; TerminateProcess on Windows. Nothing the process could catch."""
    try:
        psutil.Process(pid).kill()
    except psutil.NoSuchProcess:
        pass


def wait_gone(pids, seconds: float) -> set[int]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        remaining = {pid for pid in pids if alive(pid)}
        if not remaining:
            return remaining
        time.sleep(0.1)
    return {pid for pid in pids if alive(pid)}


def test_two_workers_serve_and_stop_gracefully(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    assert "2 threads x 2 processes" in server.output()
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2, f"only {pids} answered"
    assert server.process.pid not in pids
    assert server.stop() == 0
    assert wait_gone(pids, 5) == set()
    assert "Stopping 2 worker(s)" in server.output()


def own_console() -> None:
    """In the server's process before it starts: a process group of its own, as a console
    gives the program it runs, and Ctrl+C's signal not ignored (as it is in a background job,
    whose children would otherwise ignore it whatever the server does)."""
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_in_the_console_lets_the_workers_finish_their_requests(start_server):
    """Ctrl+C (Ctrl+Break) in a console reaches every process of it, the workers too: they
    leave it to the supervisor, which drains them, and a request in flight gets its answer."""
    server = start_server("--workers", "2", *ONE_AT_A_TIME,
                          preexec_fn=None if IS_WINDOWS else own_console)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(httpx.get, f"{server.url}/__test__/block?seconds=3", timeout=60)
        wait_until_busy(server.port)
        if IS_WINDOWS:
            server.signal_stop()  # CTRL_BREAK_EVENT goes to the whole process group
        else:
            os.killpg(server.process.pid, signal.SIGINT)
        response = slow.result(timeout=90)
    assert response.status_code == 200
    assert response.text.startswith("slept 3")
    assert server.process.wait(60) == 0
    # No process of the group died of the signal, the idle worker included.
    assert "Traceback" not in server.output(), server.output()


def test_killed_worker_is_respawned(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2
    victim = min(pids)
    kill(victim)
    replacement = collect_pids(server.url, 1, seconds=30, exclude=frozenset(pids))
    assert replacement, f"no new worker appeared:\n{server.output()}"
    assert "exited unexpectedly" in server.output()
    # Service went on, from the survivor and the newcomer.
    assert len(collect_pids(server.url, 2, exclude=frozenset({victim}))) == 2
    assert server.stop() == 0
    assert wait_gone(pids | replacement, 5) == set()


def test_workers_exit_when_supervisor_is_killed(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2
    # The workers' parent: the server process itself, or on Windows the Python that a
    # virtual environment's python.exe starts in turn.
    supervisors = {psutil.Process(pid).ppid() for pid in pids}
    assert len(supervisors) == 1
    supervisor = supervisors.pop()
    assert supervisor == server.process.pid or supervisor in {
        child.pid for child in psutil.Process(server.process.pid).children()}
    kill(supervisor)
    server.process.wait(10)
    remaining = wait_gone(pids, 10)
    for pid in remaining:  # do not leave them behind even when the test fails
        kill(pid)
    assert remaining == set(), "workers outlived their supervisor"


def read_chunked(sock: socket.socket, data: bytes) -> bytes:
    """The body of a chunked response whose head is already read; ``data`` is what followed
    it. Fails unless the body ends with the last chunk (the response was complete)."""
    body = b""
    while True:
        while b"\r\n" not in data:
            part = sock.recv(65536)
            assert part, f"connection closed mid-response after {body!r}"
            data += part
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        while len(data) < size + 2:
            part = sock.recv(65536)
            assert part, f"connection closed mid-chunk after {body + data!r}"
            data += part
        if size == 0:
            return body
        body, data = body + data[:size], data[size + 2:]


@pytest.mark.skipif(sys.platform == "win32", reason="not on Windows: it cannot send SIGTERM to a process")
def test_worker_finishes_its_request_on_sigterm(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    pids = collect_pids(server.url, 2)
    assert len(pids) == 2
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        # Eight parts, one every 0.5 s: when the first one is here the view is running.
        sock.sendall(b"GET /__test__/stream?chunks=8&delay=0.5 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            part = sock.recv(65536)
            assert part, head
            head += part
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert b"transfer-encoding: chunked" in head.lower()
        # Whichever of the two serves it: both are told to stop, as `kill` or systemd would.
        for pid in pids:
            psutil.Process(pid).send_signal(signal.SIGTERM)
        body = read_chunked(sock, rest)
    assert body == b"".join(str(i).encode() * 10 for i in range(8))
    assert wait_gone(pids, 15) == set()
    # Each stopped by itself with exit code 0; the supervisor starts new ones.
    output = server.wait_for_output("exited unexpectedly with code 0", count=2)
    assert "Shutting down (SIGTERM)" in output
    assert len(collect_pids(server.url, 2, exclude=frozenset(pids))) == 2
    assert server.stop() == 0


def test_settings_error_stops_supervisor(start_server):
    server = start_server("--workers", "2", "--settings", "tests.no_such_settings", wait=False)
    returncode = server.process.wait(60)
    output = server.output()
    assert returncode == 1, output
    assert "cannot import Django settings 'tests.no_such_settings'" in output
    # The supervisor's line says which worker and why.
    assert re.search(r"Worker \d+ failed to start: cannot import Django settings 'tests.no_such_settings'", output)
    # One failure stops everything; the bad worker was not started again and again.
    assert output.count("ERROR: cannot import Django settings") <= 2


@pytest.mark.parametrize(("workers", "taken_in_one_turn"), [(2, 1), (1, 10)])
def test_worker_takes_one_new_connection_per_loop_turn(workers, taken_in_one_turn):
    """Worker processes all wake up for a new connection. One that took every waiting
    connection at once would leave its siblings idle through a burst, so a worker takes one
    per loop turn; a single process takes the whole backlog (the control case).

    In-process: a real listening socket and the server's own accept path, driven for exactly
    one event-loop turn with ten connections waiting in the backlog.
    """
    loop = new_event_loop()  # the server's own: a selector loop on Windows too
    listener = netutil.bind_sockets(0, "127.0.0.1")[0]
    clients = []

    async def start() -> TornadoServer:
        container = ThreadedWSGIContainer(None, ServerOptions(workers=workers, threads=1))
        server = TornadoServer(container, max_connections=100)
        server.add_sockets([listener])
        return server

    try:
        server = loop.run_until_complete(start())
        port = listener.getsockname()[1]
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(10)]
        time.sleep(0.3)  # all ten handshakes are done: they wait in the backlog
        loop.call_soon(loop.stop)  # run_forever() then runs exactly one turn
        loop.run_forever()
        assert server.open_connections() == taken_in_one_turn
        server.stop()
        server.container.stop_queue(wait=False)
    finally:
        for client in clients:
            client.close()
        listener.close()
        loop.close()
