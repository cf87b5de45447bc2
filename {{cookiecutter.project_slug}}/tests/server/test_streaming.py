"""Responses are streamed as produced, large files cost little memory, HEAD and 304 carry no body."""

from __future__ import annotations

import json
import os
import socket
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


def test_small_file_response_is_sent_whole(start_server, tmp_path):
    small = tmp_path / "small.bin"
    payload = os.urandom(1000)
    small.write_bytes(payload)
    server = start_server(env={"TEST_FILE": str(small)})
    response = httpx.get(f"{server.url}/__test__/file", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-length"] == "1000"
    assert response.content == payload
