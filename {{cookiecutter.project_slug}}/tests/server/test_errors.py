"""An application that fails gets a logged error and a 500, and the server keeps serving."""

from __future__ import annotations

import concurrent.futures
import socket
import time

import httpx
import pytest

from .test_streaming import stream_with_unsent_tail


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
        ("two-lengths", "two different Content-Length values"),
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


def test_system_exit_in_a_view_gets_500_and_keeps_every_thread(start_server):
    """Django catches only Exception: sys.exit() in a view reaches the server, which must
    answer, log it and give the thread and its place in the queue back."""
    server = start_server("--threads", "2", "--max-queue", "0")
    for _ in range(3):  # one more than the server has places
        response = httpx.get(f"{server.url}/__test__/system-exit", timeout=10)
        assert response.status_code == 500
    output = server.wait_for_output("SystemExit raised while handling GET /__test__/system-exit", count=3)
    assert "Traceback (most recent call last)" in output
    # Both threads are still there: two 2-second requests run side by side (4 s on one).
    with httpx.Client(timeout=10) as client:
        started = time.monotonic()
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            statuses = list(pool.map(lambda _: client.get(f"{server.url}/__test__/block?seconds=2").status_code,
                                     range(2)))
    assert statuses == [200, 200]
    assert time.monotonic() - started < 3.5


def test_write_then_error_restart_never_puts_an_error_page_after_written_data(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__fault__/write-then-error HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    # write() committed the 200: the error can only break the connection, which the
    # client sees as a body without its last chunk.
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"partial-secret-data" in body
    assert b"error page" not in body
    assert not body.endswith(b"0\r\n\r\n")
    server.wait_for_output("failed after write() (on purpose)")
    assert_still_serving(server)


def test_data_written_while_the_result_is_iterated_is_sent_in_order(server):
    response = httpx.get(f"{server.url}/__fault__/write-while-iterating", timeout=10)
    assert response.status_code == 200
    assert response.content == b"ABCD"


def test_same_content_length_twice_is_sent_once(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__fault__/same-length-twice HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     b"Connection: close\r\n\r\n")
        data = read_until_closed(sock)
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.lower().count(b"content-length") == 1
    assert b"content-length: 2" in head.lower()
    assert body == b"ok"


def finished_count(server) -> int:
    return httpx.get(f"{server.url}/__test__/finished-count", timeout=10).json()["finished"]


@pytest.mark.parametrize("stream", ["tail unsent", "trickling"])
def test_response_is_closed_once_when_the_client_leaves(server, stream):
    """close() fires Django's request_finished: once per response, whether the client
    leaves while the end of a stream is still unsent or while it is being made."""
    before = finished_count(server)
    if stream == "tail unsent":
        path = stream_with_unsent_tail()
    else:
        path = "/__test__/stream?chunks=100&size=10&delay=0.05"
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        assert sock.recv(12) == b"HTTP/1.1 200"
        time.sleep(1)  # a tail unsent: the whole stream is made and waits to be read
    server.wait_for_output(f'"GET {path} HTTP/1.1" ')
    time.sleep(0.5)
    # One for the stream, one for the first count request.
    assert finished_count(server) - before == 2


def test_client_that_leaves_before_its_answer_costs_no_error_log(server, tmp_path):
    held = tmp_path / "hold"
    held.touch()
    target = f"/__test__/hold?path={held}&gone=1"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        started = held.with_name(held.name + ".started")
        deadline = time.monotonic() + 30
        while not started.exists():  # the view runs: the client leaves before its answer
            assert time.monotonic() < deadline, "the request never reached the view"
            time.sleep(0.02)
    held.unlink()
    output = server.wait_for_output(f'"GET {target} HTTP/1.1"')
    assert "Could not send the response" not in output
    assert "Traceback" not in output.split(target)[-1]
    assert_still_serving(server)
