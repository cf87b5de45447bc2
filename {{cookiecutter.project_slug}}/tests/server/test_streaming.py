"""Responses are streamed as produced, large files cost little memory, HEAD and 304 carry no body."""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

GIB = 1024**3


def test_stream_arrives_as_produced(start_server):
    server = start_server()
    arrivals = []
    with httpx.stream("GET", f"{server.url}/__test__/stream?chunks=5&delay=0.5", timeout=30) as response:
        assert response.status_code == 200
        started = time.monotonic()
        for part in response.iter_raw():
            arrivals.append((time.monotonic() - started, part))
    body = b"".join(part for _, part in arrivals)
    assert body == b"".join(str(i).encode() * 10 for i in range(5))
    first, last = arrivals[0][0], arrivals[-1][0]
    # Produced every 0.5 s: buffered, all would arrive together after 2.5 s.
    assert len(arrivals) >= 4
    assert last - first > 1.2, f"first part at {first:.2f}s, last at {last:.2f}s"


def rss_kib(process: psutil.Process) -> int:
    """Resident memory (the working set on Windows)."""
    return process.memory_info().rss // 1024


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_1gb_download_uses_little_memory(start_server, tmp_path):
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(GIB)  # sparse on Linux; on Windows never written, so reads cost no disk
    server = start_server("--threads", "2", env={"TEST_FILE": str(big)})
    # The process that serves: on Windows, python.exe of a virtual environment starts the
    # real Python as its child, so the started process is not always the server.
    pid = httpx.get(f"{server.url}/__test__/whoami", timeout=10).json()["pid"]
    serving = psutil.Process(pid)
    baseline = peak = rss_kib(serving)

    received = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
        sock.sendall(b"GET /__test__/file HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(65536)
        head, _, rest = head.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK")
        assert f"content-length: {GIB}".encode() in head.lower()
        received = len(rest)
        next_check = 0
        started = time.monotonic()
        while True:
            part = sock.recv(1024 * 1024)
            if not part:
                break
            received += len(part)
            if received >= next_check:
                peak = max(peak, rss_kib(serving))
                next_check += 16 * 1024 * 1024
                # A slow-ish client (300 MB/s): the server has to wait for it, not buffer ahead.
                ahead = received / (300 * 1024 * 1024) - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
    assert received == GIB
    growth_mib = (peak - baseline) / 1024
    assert growth_mib <= 64, f"server RSS grew by {growth_mib:.0f} MiB serving 1 GiB"
    print(f"1 GiB in {time.monotonic() - started:.1f}s; server RSS grew by {growth_mib:.1f} MiB")


def test_head_has_headers_but_no_body(start_server):
    server = start_server()
    get = httpx.get(f"{server.url}/", timeout=10)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"HEAD / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"HEAD /__test__/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = read_all(sock)
    home, stream, rest = data.split(b"\r\n\r\n", 2)
    assert home.startswith(b"HTTP/1.1 200 OK")
    assert f"content-length: {len(get.content)}".encode() in home.lower()
    assert stream.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding" not in stream.lower()
    # Had either HEAD answer carried a body, it would stand before this response.
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nok")


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while True:
        part = sock.recv(65536)
        if not part:
            return data
        data += part


def test_not_modified_has_no_body(start_server, server_env):
    server = start_server()
    manifest = json.loads((Path(server_env["DJANGO_STATIC_ROOT"]) / "staticfiles.json").read_text())
    path = f"/static/{manifest['paths']['css/site.css']}"
    etag = httpx.get(f"{server.url}{path}", timeout=10).headers["etag"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nIf-None-Match: {etag}\r\n\r\n"
                     "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = read_all(sock)
    not_modified, rest = data.split(b"\r\n\r\n", 1)
    assert not_modified.startswith(b"HTTP/1.1 304 ")
    assert b"transfer-encoding" not in not_modified.lower()
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nok")


def test_not_modified_from_a_view_has_no_content_length(start_server):
    """Django's CommonMiddleware gives a view's 304 the 0 of its own empty body, which a
    cache could take for the length of what the 304 stands for."""
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__test__/not-modified HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = read_all(sock)
    not_modified, rest = data.split(b"\r\n\r\n", 1)
    assert not_modified.startswith(b"HTTP/1.1 304 ")
    assert b"content-length" not in not_modified.lower()
    assert rest.startswith(b"HTTP/1.1 200 OK")


def test_small_file_response_is_sent_whole(start_server, tmp_path):
    small = tmp_path / "small.bin"
    payload = os.urandom(1000)
    small.write_bytes(payload)
    server = start_server(env={"TEST_FILE": str(small)})
    response = httpx.get(f"{server.url}/__test__/file", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-length"] == "1000"
    assert response.content == payload


# --- Clients that do not read -----------------------------------------------------------

def open_non_reading(port: int, path: str, count: int, version: str = "1.1") -> list[socket.socket]:
    """``count`` connections that ask for ``path`` and never read (a tiny receive window)."""
    sockets = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/{version}\r\nHost: 127.0.0.1\r\n\r\n".encode())
        sockets.append(sock)
    return sockets


@pytest.fixture
def big_file(tmp_path):
    path = tmp_path / "big.bin"
    with open(path, "wb") as handle:
        handle.truncate(20 * 1024 * 1024)
    return path


def kernel_send_capacity() -> int:
    """What this system's kernel takes from a sender whose (loopback) peer does not read."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.socket()
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        client.connect(listener.getsockname())
        sender, _ = listener.accept()
        with client, sender:
            sender.setblocking(False)
            taken = 0
            for _ in range(25):
                try:
                    while taken < 64 * 1024 * 1024:  # a bound, should a system never block
                        taken += sender.send(b"x" * 65536)
                except BlockingIOError:
                    pass
                time.sleep(0.02)
    return taken


def stream_with_unsent_tail() -> str:
    """A stream that ends while about 512 KB of it waits in the server for the client:
    more than the kernel takes, less than the 1 MB a worker buffers before it waits."""
    chunks = (kernel_send_capacity() + 512 * 1024) // 100000 + 1
    return f"/__test__/stream?chunks={chunks}&size=100000"


def test_clients_that_do_not_read_a_file_hold_no_thread(start_server, big_file):
    """FileResponse and WhiteNoise files are sent by the event loop, no thread held."""
    server = start_server("--threads", "2", env={"TEST_FILE": str(big_file)})
    attackers = open_non_reading(server.port, "/__test__/file", 6)
    try:
        for sock in attackers:  # each has its answer started (read 12 bytes of it)
            sock.settimeout(20)
            assert sock.recv(12) == b"HTTP/1.1 200"
        started = time.monotonic()
        for _ in range(3):
            response = httpx.get(f"{server.url}/healthz", timeout=10)
            assert response.status_code == 200
        assert time.monotonic() - started < 3
    finally:
        for sock in attackers:
            sock.close()


def bytes_read_per_thread(pid: int) -> dict[int, int]:
    """Linux: what each thread of process ``pid`` has read by read(2) and the like."""
    counts = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            counts[int(task.name)] = int(re.search(r"rchar: (\d+)", (task / "io").read_text()).group(1))
        except (OSError, AttributeError):
            pass  # the thread has just ended
    return counts


@pytest.mark.skipif(not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/io").is_file(),
                    reason="per-thread read counts come from Linux's /proc")
def test_large_files_are_read_off_the_event_loop(start_server, big_file):
    """A slow disk or network share must not hold up the loop: it sends a large file, but
    its blocks are read by other threads."""
    server = start_server(env={"TEST_FILE": str(big_file)})
    pid = httpx.get(f"{server.url}/__test__/whoami", timeout=10).json()["pid"]
    before = bytes_read_per_thread(pid)
    response = httpx.get(f"{server.url}/__test__/file", timeout=60)
    assert len(response.content) == big_file.stat().st_size
    after = bytes_read_per_thread(pid)
    # The event loop runs on the main thread, whose id is the process's.
    on_loop = after[pid] - before[pid]
    assert on_loop < 1024 * 1024, f"the event loop read {on_loop} bytes"
    elsewhere = sum(count - before.get(thread, 0) for thread, count in after.items() if thread != pid)
    assert elsewhere >= big_file.stat().st_size


def test_clients_that_do_not_read_a_stream_end_hold_no_thread(start_server):
    """A stream that is made to its end leaves its thread: the loop sends the rest."""
    server = start_server("--threads", "2")
    path = stream_with_unsent_tail()
    attackers = open_non_reading(server.port, path, 4)
    try:
        server.wait_for_output(f'"GET {path} HTTP/1.1" 200', count=4)
        started = time.monotonic()
        for _ in range(3):
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        assert time.monotonic() - started < 3
    finally:
        for sock in attackers:
            sock.close()


def test_clients_that_do_not_read_a_long_stream_lose_it_after_the_write_timeout(start_server):
    """A stream holds its thread while it is made; the write timeout gives it back."""
    server = start_server("--threads", "2", "--write-timeout", "2")
    path = "/__test__/stream?chunks=500&size=100000"
    attackers = open_non_reading(server.port, path, 4)
    try:
        started = time.monotonic()
        assert httpx.get(f"{server.url}/healthz", timeout=20).status_code == 200
        assert time.monotonic() - started < 15
        server.wait_for_output("it read nothing of the response", count=4)
        # Closed while being made: the worker waited on the client instead of buffering
        # the whole stream. (Its 499 is logged once the worker has noticed, just after.)
        output = server.wait_for_output(f'"GET {path} HTTP/1.1" 499', count=4, timeout=10)
        assert f'"GET {path} HTTP/1.1" 200' not in output
    finally:
        for sock in attackers:
            sock.close()


def test_a_client_that_reads_too_slowly_loses_its_stream_and_the_thread_serves_again(start_server):
    """A steady reader of about 500 bytes/s never stalls a 64 KB slice for --write-timeout,
    yet it would hold the only thread for a day: --min-send-rate (1 KB/s) closes it."""
    server = start_server("--threads", "1", "--body-rate-window", "2")
    path = "/__test__/stream?chunks=500&size=100000"
    [sock] = open_non_reading(server.port, path, 1)
    stop = threading.Event()

    def read_slowly() -> None:
        sock.settimeout(1)
        while not stop.is_set():
            try:
                if not sock.recv(250):
                    return
            except TimeoutError:
                continue
            except OSError:
                return
            stop.wait(0.5)

    reader = threading.Thread(target=read_slowly, daemon=True)
    reader.start()
    try:
        output = server.wait_for_output("slower than --min-send-rate", timeout=20)
        assert f"it took the response to GET {path} at" in output
        # The only thread is free again: the worker stopped waiting on that client.
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        server.wait_for_output(f'"GET {path} HTTP/1.1" 499', timeout=10)
    finally:
        stop.set()
        reader.join(5)
        sock.close()
    assert "it read nothing of the response" not in server.output()


def read_until_closed(sock: socket.socket, timeout: float) -> tuple[int, bool]:
    """Bytes read until the server closed (True) or ``timeout`` passed (False)."""
    sock.settimeout(timeout)
    received = 0
    try:
        while part := sock.recv(1024 * 1024):
            received += len(part)
    except ConnectionResetError:
        pass
    except TimeoutError:
        return received, False
    return received, True


@pytest.mark.parametrize("path", [
    "/__test__/stream?chunks=200&size=100000",  # a worker thread waits on this one
    "/__test__/big-page",  # buffered whole on the loop
    "/__test__/file",  # sent from the loop block by block
])
def test_write_timeout_closes_a_stalled_response(start_server, big_file, path):
    server = start_server("--threads", "1", "--write-timeout", "1",
                          env={"TEST_FILE": str(big_file)})
    [sock] = open_non_reading(server.port, path, 1)
    with sock:
        output = server.wait_for_output("it read nothing of the response", timeout=20)
        received, closed = read_until_closed(sock, timeout=10)
    assert closed, "the stalled connection is still open"
    assert received < 20 * 1024 * 1024
    assert f"Closed the connection of 127.0.0.1: it read nothing of the response to GET {path}" in output
    # The thread is free again (one thread only), and the stall was logged once.
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    time.sleep(1.5)
    assert server.output().count("it read nothing of the response") == 1


def read_head_and_body(sock: socket.socket) -> tuple[bytes, bytes]:
    data = read_all(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    return head.lower(), body


def test_http10_keep_alive_client_gets_close_for_a_body_ended_by_close(start_server):
    """HTTP/1.0 has no chunked encoding: a body of unknown length ends with the
    connection, and the head must say so even to a client that asked for keep-alive."""
    server = start_server()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__test__/stream HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     b"Connection: keep-alive\r\n\r\n")
        head, body = read_head_and_body(sock)  # returns only at EOF
    assert head.startswith(b"http/1.1 200")
    assert b"connection: close" in head
    assert b"keep-alive" not in head
    assert b"transfer-encoding" not in head
    assert body == b"".join(str(i).encode() * 10 for i in range(5))


def test_http10_keep_alive_client_is_told_of_the_close_during_shutdown(start_server, tmp_path):
    server = start_server("--threads", "1")
    hold = tmp_path / "hold"
    hold.touch()
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(f"GET /__test__/hold?path={hold} HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                     "Connection: keep-alive\r\n\r\n".encode())
        deadline = time.monotonic() + 20
        while not Path(f"{hold}.started").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        server.signal_stop()
        server.wait_for_output("Shutting down")
        hold.unlink()
        head, body = read_head_and_body(sock)  # returns only at EOF
    assert head.startswith(b"http/1.1 200")
    assert b"connection: close" in head
    assert b"keep-alive" not in head
    assert body.startswith(b"held on")
