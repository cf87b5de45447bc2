"""An application that fails gets a logged error and a 500, and the server keeps serving."""

from __future__ import annotations

import socket
import time

import httpx
import pytest


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server("--threads", "2")


def assert_still_serving(server) -> None:
    response = httpx.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 200
    assert response.text == "ok"


@pytest.mark.parametrize(
    ("fault", "logged"),
    [
        ("raise-before", "failed before start_response (on purpose)"),
        ("raise-after", "failed after start_response (on purpose)"),
        ("bad-status", "invalid status 'OK-ish'"),
        ("bad-header", "invalid header 'X-Injected'"),
        ("no-start-response", "did not call start_response"),
    ],
)
def test_broken_application_gets_500(server, fault, logged):
    response = httpx.get(f"{server.url}/__fault__/{fault}", timeout=10)
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    # Nothing the application tried to send leaks out, injected headers least of all.
    assert "set-cookie" not in response.headers
    assert "x-injected" not in response.headers
    output = server.wait_for_output(logged)
    if fault.startswith("raise"):
        assert "Traceback (most recent call last)" in output
        assert "RuntimeError" in output
    assert f"/__fault__/{fault}" in output
    assert_still_serving(server)


def test_head_to_broken_application_gets_500_without_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"HEAD /__fault__/raise-before HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = read_until_closed(sock)
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    # The next response follows at once: the HEAD answer carried no body.
    assert rest.startswith(b"HTTP/1.1 200 OK")
    assert rest.endswith(b"\r\n\r\nok")


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            break
        if not part:
            break
        data += part
    return data


def test_error_while_streaming_closes_connection(server):
    """Once the headers are out a 500 is impossible: the client must see a broken body,
    not a complete-looking one."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__test__/stream-error HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"transfer-encoding: chunked" in head.lower()
    assert b"first part\n" in body
    # No terminating zero-length chunk: the client can tell the body is incomplete.
    assert not body.endswith(b"0\r\n\r\n")
    output = server.wait_for_output("broken while streaming (on purpose)")
    assert "Error while streaming GET /__test__/stream-error" in output

    with pytest.raises(httpx.RemoteProtocolError):
        httpx.get(f"{server.url}/__test__/stream-error", timeout=10)
    assert_still_serving(server)


def test_client_leaving_mid_stream_is_harmless(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__test__/stream?chunks=50&size=100000&delay=0.01 HTTP/1.1\r\n"
                     b"Host: 127.0.0.1\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    server.wait_for_output('"GET /__test__/stream?chunks=50&size=100000&delay=0.01 HTTP/1.1" 499')
    assert_still_serving(server)


def test_slow_stream_stops_soon_after_client_leaves(server):
    """A trickling stream (server-sent events, progress output) must not hold a thread
    for its whole length once nobody is listening."""
    path = "/__test__/stream?chunks=200&size=10&delay=0.05"  # 10 s if run to the end
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(100).startswith(b"HTTP/1.1 200")
    left = time.monotonic()
    server.wait_for_output(f'"GET {path} HTTP/1.1" 499', timeout=8)
    assert time.monotonic() - left < 3
