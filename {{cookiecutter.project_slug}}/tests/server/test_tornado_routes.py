"""Requests to the project's Tornado routes (TORNADO_ROUTES) get the limits Django's get: 413,
431 and 503, the body rate and timeout, and no body held in memory beyond the route's limit.
Forms with many parts reach Django and Tornado handlers whole."""

from __future__ import annotations

import socket
import time

import httpx
import psutil

# --body-timeout 8, --min-body-rate 1K over 2 s windows: a stalled body is closed in about 2 s.
SLOW_BODY = ("--body-rate-window", "2", "--min-body-rate", "1K", "--body-timeout", "8")


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def answer_to(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    data = b""
    try:
        while b"\r\n\r\n" not in data and (part := sock.recv(4096)):
            data += part
    except ConnectionResetError:
        pass
    return data


def test_a_stalled_body_to_a_tornado_route_is_closed(start_server):
    server = start_server(*SLOW_BODY)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /tornado/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Content-Length: 100000\r\n\r\n" + b"x" * 1000)
        started = time.monotonic()
        assert closed_within(sock, 15)
        assert time.monotonic() - started < 10
    server.wait_for_output("slower than 1024 bytes/s")


def test_bodies_over_a_tornado_routes_limit_get_413(start_server):
    """A huge declared body gets 413 at once; a handler that takes its body whole gets at
    most 1 MB; a WebSocket route takes no body at all."""
    server = start_server()
    for path, length in (("/tornado/hello", 100 * 1024 * 1024), ("/tornado/hello", 2 * 1024 * 1024),
                         ("/ws/echo", 10)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Content-Length: {length}\r\n\r\n".encode())
            assert answer_to(sock).startswith(b"HTTP/1.1 413 "), (path, length)
    with httpx.Client(timeout=10) as http:
        response = http.post(f"{server.url}/tornado/form", data={"a": "x" * 500_000})
        assert response.json() == {"fields": 1, "files": 0}


def test_bodies_sent_to_a_tornado_route_do_not_pile_up_in_memory(start_server):
    server = start_server(*SLOW_BODY)
    process = psutil.Process(server.process.pid)
    before = process.memory_info().rss
    senders = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(3)]
    try:
        for sock in senders:
            sock.sendall(b"POST /tornado/hello HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Content-Length: 104857600\r\n\r\n")
        block = b"x" * 65536
        for _ in range(160):  # 10 MB each
            for sock in senders:
                try:
                    sock.sendall(block)
                except OSError:
                    pass
        time.sleep(1)
        grown = process.memory_info().rss - before
        assert grown < 20 * 1024 * 1024, f"RSS grew by {grown / 2**20:.0f} MB"
    finally:
        for sock in senders:
            sock.close()


def many_part_form() -> tuple[dict, list]:
    """140 fields and 10 files: 150 parts, over Tornado's default of 100."""
    data = {f"field{number}": f"value {number}" for number in range(140)}
    files = [(f"file{number}", (f"f{number}.txt", b"content %d" % number, "text/plain"))
             for number in range(10)]
    return data, files


def test_a_form_of_150_parts_reaches_django_whole(start_server):
    """The request task hands the body to Django unparsed (Tornado's multipart parser, which
    stops at 100 parts, never sees it)."""
    server = start_server()
    data, files = many_part_form()
    response = httpx.post(f"{server.url}/__test__/form-fields", data=data, files=files, timeout=10)
    assert response.json() == {"fields": 140, "files": 10}


def test_a_form_of_150_parts_reaches_a_tornado_handler_whole(start_server):
    server = start_server()
    data, files = many_part_form()
    response = httpx.post(f"{server.url}/tornado/form", data=data, files=files, timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {"fields": 140, "files": 10}
