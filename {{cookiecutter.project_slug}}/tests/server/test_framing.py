"""Message framing at the edges of HTTP/1.x: where a response ends, and what it may carry."""

import asyncio
import json
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server("--threads", "4")


def raw_exchange(server, request: bytes, timeout: float = 10) -> tuple[bytes, bool]:
    """Send raw bytes; return what came back and whether the server closed the connection."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except TimeoutError:
                return received, False
            if not data:
                return received, True
            received += data
        return received, False


def test_http10_keepalive_stream_ends_by_closing(server):
    """HTTP/1.0 has no chunked encoding: an unknown-length body ends when the connection does."""
    reply, closed = raw_exchange(
        server,
        b"GET /__test__/stream?chunks=3&size=4 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n",
        timeout=5,
    )
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b"transfer-encoding" not in head.lower()
    assert body == b"000011112222"
    assert closed, "the server kept an HTTP/1.0 connection open after a body of unknown length"


def read_response(sock: socket.socket) -> bytes:
    """One response with a Content-Length from ``sock``; b"" if the server closed first."""
    received = b""
    while b"\r\n\r\n" not in received:
        data = sock.recv(65536)
        if not data:
            return received
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head).group(1))
    while len(body) < length:
        data = sock.recv(65536)
        if not data:
            break
        body += data
    return head + b"\r\n\r\n" + body


def test_http10_keepalive_with_length_stays_open(server):
    """HTTP/1.0 with Connection: keep-alive and a body of known length: the connection
    stays usable, so a second request on it, seconds later, is answered too."""
    request = b"GET /healthz HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(request)
        first = read_response(sock)
        time.sleep(2.5)  # well under --idle-timeout (60 s)
        try:
            sock.sendall(request)
            second = read_response(sock)
        except ConnectionError:
            second = b""
    for reply in (first, second):
        assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"ok"), reply[:300]
        assert b"connection: keep-alive" in reply.lower()


def test_204_carries_no_content_length_and_keeps_the_connection(server):
    """A 204 with Content-Length is forbidden; sent anyway, it broke the next pipelined reply."""
    reply, _ = raw_exchange(
        server,
        b"GET /__test__/no-content HTTP/1.1\r\nHost: localhost\r\n\r\n"
        b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    first, _, rest = reply.partition(b"\r\n\r\n")
    assert first.startswith(b"HTTP/1.1 204")
    assert b"content-length" not in first.lower()
    assert rest.startswith(b"HTTP/1.1 200"), reply
    assert rest.endswith(b"ok")


def test_short_reads_from_a_pipe_are_not_the_end(server, client):
    response = client.get(f"{server.url}/__test__/pipe")
    assert response.status_code == 200
    assert response.content == b"p" * 5000


def test_header_value_outside_latin1_gets_500(server, client):
    response = client.get(f"{server.url}/__fault__/non-latin1-header")
    assert response.status_code == 500
    assert client.get(f"{server.url}/healthz").status_code == 200
    assert "X-Price" in server.output()


def test_server_port_without_port_in_host(server):
    """Without a port in Host, SERVER_PORT is the port the server listens on, not 80."""
    reply, _ = raw_exchange(
        server, b"GET /__test__/whoami HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["port"] == str(server.port)


def test_websockets_count_against_the_connection_limit(start_server):
    """A WebSocket leaves Tornado's connection list but still holds a socket."""
    from tornado.websocket import websocket_connect

    # WebSockets may take every slot here (by default only half), to fill them all.
    server = start_server("--max-connections", "3", "--max-websockets", "3")
    url = f"ws://127.0.0.1:{server.port}/ws/echo"

    def fourth_connection() -> bytes:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as extra:
            extra.settimeout(5)
            return extra.recv(64)

    async def with_three_websockets() -> bytes:
        sockets = [await websocket_connect(url) for _ in range(3)]
        try:
            return await asyncio.get_running_loop().run_in_executor(None, fourth_connection)
        finally:
            for ws in sockets:
                ws.close()

    # Refused with the server's fixed answer, before its request is read: never served.
    assert asyncio.run(with_three_websockets()).startswith(b"HTTP/1.1 503 "), (
        "a fourth connection was not refused at --max-connections 3"
    )
    assert "Connection limit (3) reached" in server.output()


# --- Nothing read after a response that closes the connection reaches the application ---

def read_until_closed(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while True:
        try:
            data = sock.recv(65536)
        except ConnectionError:
            return received
        if not data:
            return received
        received += data


def assert_never_ran(server, name: str, client) -> None:
    """``mark:name`` did not run: a later request's mark shows the application has caught up."""
    later = f"later-{name}"
    assert client.get(f"{server.url}/__test__/mark?name={later}").status_code == 200
    server.wait_for_output(f"mark:{later}")
    time.sleep(0.3)
    assert f"mark:{name}\n" not in server.output(), f"the application ran {name}"


def mark(name: str, method: str = "GET", extra: bytes = b"") -> bytes:
    return (f"{method} /__test__/mark?name={name} HTTP/1.1\r\nHost: localhost\r\n".encode()
            + extra + b"Content-Length: 0\r\n\r\n")


def test_request_pipelined_after_connection_close_never_runs(server, client):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(mark("close-first", extra=b"Connection: close\r\n") + mark("close-second", "POST"))
        reply = read_until_closed(sock)
    assert reply.count(b"HTTP/1.1 ") == 1 and reply.endswith(b"marked\n"), reply
    server.wait_for_output("mark:close-first")
    assert_never_ran(server, "close-second", client)


def test_request_pipelined_after_http10_close_delimited_body_never_runs(server, client):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /__test__/stream?chunks=3&size=4 HTTP/1.0\r\nHost: localhost\r\n"
                     b"Connection: keep-alive\r\n\r\n" + mark("after-http10", "POST"))
        reply = read_until_closed(sock)
    assert reply.endswith(b"000011112222"), reply
    assert_never_ran(server, "after-http10", client)


def test_request_pipelined_after_413_never_runs(start_server, client):
    server = start_server("--max-body-size", "1000")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n"
                     + b"x" * 2000 + mark("after-413", "POST"))
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 413 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert_never_ran(server, "after-413", client)


def test_request_pipelined_after_503_never_runs(start_server, client, tmp_path):
    """The refused body ends only once the thread is free again: the request behind it
    would then have run, had the server kept reading."""
    from ..conftest import ONE_AT_A_TIME

    server = start_server(*ONE_AT_A_TIME)
    held = tmp_path / "held"
    held.touch()
    with ThreadPoolExecutor(1) as pool:
        busy = pool.submit(client.get, f"{server.url}/__test__/hold?path={held}")
        deadline = time.monotonic() + 30
        while not (tmp_path / "held.started").exists():
            assert time.monotonic() < deadline, "the holding request never started"
            time.sleep(0.02)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
            assert sock.recv(12) == b"HTTP/1.1 503"
            held.unlink()
            assert busy.result().status_code == 200  # the thread is free again
            try:
                sock.sendall(b"defghij" + mark("after-503", "POST"))
            except ConnectionError:
                pass
            read_until_closed(sock)
    assert_never_ran(server, "after-503", client)


def test_http10_expect_continue_gets_no_100(server):
    """RFC 9110: a server must not send 100 Continue to an HTTP/1.0 client."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.0\r\nHost: localhost\r\nExpect: 100-continue\r\n"
                     b"Content-Length: 5\r\n\r\n")
        sock.settimeout(1.5)
        try:
            early = sock.recv(100)
        except TimeoutError:
            early = b""
        assert early == b"", f"sent before the body: {early!r}"
        sock.sendall(b"hello")
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:200]
    assert b" 100 " not in reply


# --- Chunked framing that another parser could read differently (RFC 9112 7.1) ------------

CHUNKED_POST = (b"POST /__test__/echo HTTP/1.1\r\nHost: localhost\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


def test_chunk_extension_with_a_bare_lf_is_refused(server, client):
    """A front end that ends the size line at the bare LF reads one request with a 0x43-byte
    chunk; the server must not read a two-byte chunk and then run the GET inside it."""
    body = (b"2;\nxx\r\n43\r\n0\r\n\r\n"
            b"GET /__test__/mark?name=smuggled-ext HTTP/1.1\r\nHost: localhost\r\n\r\n\r\n0\r\n\r\n")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(CHUNKED_POST + body)
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert_never_ran(server, "smuggled-ext", client)


def test_trailer_line_with_a_bare_lf_does_not_swallow_the_next_request(server, client):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(CHUNKED_POST + b"3\r\nabc\r\n0\r\nX-Sum: 1\n\r\n" + mark("after-trailer"))
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 400 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert_never_ran(server, "after-trailer", client)


@pytest.mark.parametrize("chunks", [
    b"3;a\x00b\r\nabc\r\n0\r\n\r\n",  # NUL in an extension
    b"3;a=\x7f\r\nabc\r\n0\r\n\r\n",  # DEL
    b"3;a=b c\r\nabc\r\n0\r\n\r\n",  # a space inside a token
    b'3;a="x\r\nabc\r\n0\r\n\r\n',  # an open quoted-string
    b"3;a\rb\r\nabc\r\n0\r\n\r\n",  # a bare CR
    b"3;\r\nabc\r\n0\r\n\r\n",  # no extension name
    b"3\nabc\r\n0\r\n\r\n",  # size line ended by a bare LF
    b"3\r\nabc\r\n0\r\nX-A: 1\rX-B: 2\r\n\r\n",  # bare CR in a trailer
    b"3\r\nabc\r\n0\r\n folded\r\n\r\n",  # not a field line
], ids=["nul", "del", "space", "open-quote", "bare-cr", "no-name", "bare-lf-size", "trailer-cr",
        "trailer-fold"])
def test_malformed_chunk_lines_get_400(server, chunks):
    reply, closed = raw_exchange(server, CHUNKED_POST + chunks)
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert closed


def test_valid_chunk_extensions_are_read(server):
    """Tokens, quoted strings (with a quoted pair), white space around ; and =."""
    reply, _ = raw_exchange(server, CHUNKED_POST.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
                            + b'3 ; a = "q \\" t" ;b=c;d\r\nabc\r\n2\t;x=1\r\nde\r\n0;end\r\nX-Sum: 5\r\n\r\n')
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert json.loads(reply.partition(b"\r\n\r\n")[2])["length"] == 5


# --- HTTP/1.x conformance: versions, Connection, Host, request targets ---------------------

def test_other_http1_versions_get_505(server):
    """HTTP/1.5 is neither 1.0 (close-delimited bodies) nor 1.1 (chunked): a streamed body
    to it had no framing at all."""
    reply, closed = raw_exchange(
        server, b"GET /__test__/stream?chunks=3&size=4 HTTP/1.5\r\nHost: localhost\r\n"
                b"Connection: keep-alive\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 505 "), reply[:200]
    assert closed


@pytest.mark.parametrize("method", ["POST", "GET"])
def test_http10_with_transfer_encoding_is_answered_then_closed(server, client, method):
    """RFC 9112 6.1: Transfer-Encoding from an HTTP/1.0 client is faulty framing."""
    after = f"after-http10-te-{method}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(method.encode() + b" /__test__/echo HTTP/1.0\r\nHost: localhost\r\n"
                     b"Connection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
                     + mark(after))
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert b"keep-alive" not in reply.lower()
    assert_never_ran(server, after, client)


def test_connection_header_is_a_token_list(server, client):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close, TE\r\nTE: trailers\r\n\r\n"
                     + mark("after-close-te"))
        reply = read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 200 ") and reply.count(b"HTTP/1.1 ") == 1, reply
    assert b"connection: close" in reply.lower()
    assert_never_ran(server, "after-close-te", client)


@pytest.mark.parametrize("host", [b"", b"Host: localhost\r\nHost: localhost\r\n"], ids=["none", "two"])
def test_http11_needs_exactly_one_host(server, host):
    reply, closed = raw_exchange(server, b"GET /healthz HTTP/1.1\r\n" + host + b"\r\n")
    assert reply.startswith(b"HTTP/1.1 400 "), reply[:200]
    assert closed


def test_options_asterisk_is_answered_by_the_server(server):
    reply, closed = raw_exchange(server, b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:200]
    assert reply.endswith(b"\r\n\r\n")  # no body: Django (which would 404 "/*") never saw it
    assert closed


@pytest.mark.parametrize("request_line, status", [
    (b"CONNECT localhost:22 HTTP/1.1", b"501"),
    (b"GET localhost:22 HTTP/1.1", b"400"),
    (b"GET * HTTP/1.1", b"400"),
], ids=["connect", "authority-form", "asterisk-get"])
def test_odd_request_targets_never_reach_django(server, request_line, status):
    reply, closed = raw_exchange(server, request_line + b"\r\nHost: localhost\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 " + status + b" "), reply[:200]
    assert closed
