"""Oversized and malformed requests are refused cleanly, and the server keeps serving."""

from __future__ import annotations

import hashlib
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import httpx
import pytest

MAX_BODY = 2 * 1024 * 1024
MAX_HEADER = 8 * 1024
# Past this (process.py: --max-header-size plus 4K) Tornado stops reading.
HARD_HEADER_CAP = MAX_HEADER + 4 * 1024


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server("--max-body-size", "2M", "--max-header-size", "8K")


class Reply(NamedTuple):
    data: bytes  # everything the server sent
    ended: str  # "closed" (by the server), "reset", or "open" (still open after the timeout)


def exchange(server, request: bytes, timeout: float = 10) -> Reply:
    """Send raw bytes; return what the server sent and how the connection ended."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except ConnectionError:
            pass  # closed before it read everything: what came back, if anything, still counts
        data = b""
        while True:
            try:
                part = sock.recv(65536)
            except ConnectionError:
                return Reply(data, "reset")
            except TimeoutError:
                return Reply(data, "open")
            if not part:
                return Reply(data, "closed")
            data += part


def assert_still_serving(server) -> None:
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200


def test_body_over_limit_with_content_length_gets_413(server):
    body = b"x" * (MAX_BODY + 1)
    response = httpx.post(f"{server.url}/__test__/echo", content=body, timeout=30)
    assert response.status_code == 413
    assert response.headers["connection"] == "close"
    assert_still_serving(server)


def test_declared_huge_body_gets_413_before_it_is_sent(server):
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Content-Length: 10000000000\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 ")
    assert ended == "closed"
    assert_still_serving(server)


def test_refused_body_is_read_before_closing(server):
    """A client that keeps uploading after the 413 must not be reset: on Windows a reset
    throws away the answer before the client reads it."""
    body = b"u" * (MAX_BODY + 500_000)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode())
        time.sleep(0.2)  # the 413 is already on its way
        sock.sendall(body)  # no reset while the rest of the body goes out
        data = b""
        while part := sock.recv(65536):
            data += part
    assert data.startswith(b"HTTP/1.1 413 ")
    assert data.endswith(b"bytes.\n")  # one complete answer, then a clean close


def test_refused_chunked_body_is_read_before_closing(server):
    chunk = b"c" * 65536
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(MAX_BODY // 65536 + 8))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        sock.sendall(chunks + b"0\r\n\r\n")
        data = b""
        while part := sock.recv(65536):
            data += part
    assert data.startswith(b"HTTP/1.1 413 ")
    assert data.endswith(b"Request body too large.\n")


def test_expect_continue_over_limit_gets_413_without_continue(server):
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                                   + f"Content-Length: {MAX_BODY + 1}\r\n\r\n".encode())
    assert data.startswith(b"HTTP/1.1 413 ")
    assert ended == "closed"
    assert b"100 (Continue)" not in data and b" 100 " not in data


def test_expect_continue_within_limit_is_served(server):
    payload = b"e" * 1000
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nExpect: 100-continue\r\n"
                     b"Connection: close\r\nContent-Length: 1000\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 100 ")
        sock.sendall(payload)
        data = b""
        while part := sock.recv(65536):
            data += part
    assert data.startswith(b"HTTP/1.1 200 OK")
    assert hashlib.sha256(payload).hexdigest().encode() in data


def test_chunked_body_over_limit_gets_413(server):
    def chunks():
        for _ in range(MAX_BODY // 65536 + 2):
            yield b"y" * 65536

    response = httpx.post(f"{server.url}/__test__/echo", content=chunks(), timeout=30)
    assert response.status_code == 413
    assert_still_serving(server)


def test_chunked_body_within_limit_is_accepted(server):
    payload = os.urandom(300_000)

    def chunks():
        for start in range(0, len(payload), 7000):
            yield payload[start:start + 7000]

    response = httpx.post(f"{server.url}/__test__/echo", content=chunks(), timeout=30)
    assert response.status_code == 200
    assert response.json() == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_headers_over_limit_get_431(server):
    response = httpx.get(f"{server.url}/healthz", headers={"X-Big": "h" * (MAX_HEADER + 100)}, timeout=10)
    assert response.status_code == 431
    assert_still_serving(server)


def test_long_request_line_gets_431(server):
    response = httpx.get(f"{server.url}/healthz?q={'a' * (MAX_HEADER + 100)}", timeout=10)
    assert response.status_code == 431


def test_headers_under_the_hard_cap_still_get_431(server):
    """Just past --max-header-size the server still reads the headers and answers."""
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"h" * (MAX_HEADER + 2000)
               + b"\r\n\r\n")
    data, ended = exchange(server, request)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert ended == "closed"


def test_enormous_headers_close_the_connection_unanswered(server):
    """Past --max-header-size plus 4 KB the server stops reading and closes the connection
    without an answer, instead of buffering the headers to answer 431."""
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Flood: " + b"f" * (HARD_HEADER_CAP * 8)
               + b"\r\n\r\n")
    data, ended = exchange(server, request)
    assert data == b"", f"answered instead of closed: {data[:200]!r}"
    assert ended in ("closed", "reset")
    assert_still_serving(server)


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /healthz HTTP/9.9\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nBroken header line\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: abc\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -5\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
    ids=["request-line", "version", "header-line", "length-text", "length-negative",
         "length-conflict", "length-and-chunked", "unknown-encoding", "bad-chunk"],
)
def test_malformed_request_gets_400(server, request_bytes):
    data, ended = exchange(server, request_bytes)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert ended == "closed"
    assert_still_serving(server)


def test_5mb_upload_is_received_intact(start_server):
    """Bodies past 64 KB wait in a temporary file; they must reach Django unchanged."""
    server = start_server()
    payload = os.urandom(5 * 1024 * 1024)
    response = httpx.post(f"{server.url}/__test__/echo", content=payload, timeout=60)
    assert response.status_code == 200
    assert response.json() == {"length": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}


def test_large_upload_waits_on_disk_not_in_memory(start_server):
    """Bodies over 64 KB wait in a temporary file: a 64 MiB upload, held by the server
    until the view has run, barely moves the server's resident memory."""
    server = start_server("--threads", "1")
    url = f"{server.url}/__test__/upload-memory"
    block, blocks = os.urandom(1024 * 1024), 64
    digest = hashlib.sha256()
    for _ in range(blocks):
        digest.update(block)

    def body():
        for _ in range(blocks):
            yield block

    with httpx.Client(timeout=120) as http:
        for _ in range(3):  # warm up Django, the view and a spooled 2 MB body
            before = http.post(url, content=b"w" * 2_000_000).json()
        after = http.post(url, content=body(), headers={"Content-Length": str(blocks * len(block))}).json()
    assert after["pid"] == before["pid"]  # one process held both (on Windows, not the launcher)
    assert (after["length"], after["sha256"]) == (blocks * len(block), digest.hexdigest())
    grew_mib = (after["rss_kib"] - before["rss_kib"]) / 1024
    # Held in memory, the body alone would add 64 MiB.
    assert grew_mib < 16, f"resident memory grew {grew_mib:.1f} MiB while a 64 MiB body was held"


def test_stalled_body_is_closed_after_body_timeout(start_server):
    """--body-timeout: a client that stops sending its body is cut off, long before
    --idle-timeout would, or --min-body-rate (measured over a long window here) could."""
    server = start_server("--body-timeout", "1", "--idle-timeout", "120", "--body-rate-window", "60")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n"
                     + b"b" * 10)
        started = time.monotonic()
        try:
            data = sock.recv(65536)
        except ConnectionError:
            data = b""
        except TimeoutError:
            pytest.fail("the stalled upload was still open after 20 s")
        elapsed = time.monotonic() - started
    assert data == b""
    assert 0.5 < elapsed < 8, f"closed after {elapsed:.2f}s with --body-timeout 1"
    assert_still_serving(server)


def test_slow_header_sender_does_not_block_others(start_server):
    server = start_server("--idle-timeout", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slow:
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finishes
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        started = time.monotonic()
        assert slow.recv(100) == b""  # closed by --idle-timeout
        assert time.monotonic() - started < 5


def test_overload_gets_503_with_retry_after(start_server):
    server = start_server("--threads", "1", "--max-queue", "1")

    def one(_):
        # The clock starts once the client is made: making one is slow on a busy machine.
        with httpx.Client(timeout=30) as http:
            started = time.monotonic()
            response = http.get(f"{server.url}/__test__/block?seconds=3")
            return response, time.monotonic() - started

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(one, range(6)))
    statuses = sorted(response.status_code for response, _ in results)
    # One request runs, one waits for the thread; the rest are turned away.
    assert statuses == [200, 200, 503, 503, 503, 503]
    for response, elapsed in results:
        if response.status_code == 503:
            # Queued behind the running request it would take 3 s or more.
            assert elapsed < 2, f"a 503 took {elapsed:.2f}s"
            assert int(response.headers["retry-after"]) > 0
    assert_still_serving(server)


def test_malformed_framing_gets_400_without_an_error_in_the_log(start_server):
    """"\xb2".isdigit() is true yet int() refuses it, and Tornado checks a chunk's end
    with an assert: neither may cost an ERROR traceback (a cheap way to flood the log),
    and each gets a plain 400, also under python -O."""
    server = start_server()
    for request in (
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: \xb2\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabcXX0\r\n\r\n",
        b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3x\r\nabc\r\n0\r\n\r\n",
    ):
        data, ended = exchange(server, request)
        assert data.startswith(b"HTTP/1.1 400 "), (request, data[:200])
        assert ended == "closed"
    assert_still_serving(server)
    output = server.output()
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]


def test_too_many_header_fields_get_431(server):
    request = (b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + b"".join(b"X-%d: 1\r\n" % number for number in range(101)) + b"\r\n")
    data, ended = exchange(server, request)
    assert data.startswith(b"HTTP/1.1 431 "), data[:200]
    assert ended == "closed"
    assert_still_serving(server)


def test_a_hundred_header_fields_are_fine(server):
    headers = {f"X-{number}": "1" for number in range(95)}
    assert httpx.get(f"{server.url}/healthz", headers=headers, timeout=10).status_code == 200


def test_flood_of_tiny_chunks_is_refused(server):
    """Every chunk costs the event loop some microseconds: 50,000 one-byte chunks are
    refused with 400 instead of being read."""
    body = b"1\r\nx\r\n" * 50_000 + b"0\r\n\r\n"
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert ended in ("closed", "reset")
    assert_still_serving(server)


def test_chunk_extensions_are_ignored_and_trailers_dropped(server):
    """RFC 9112 lets a server ignore chunk extensions and discard trailer fields."""
    request = (b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
               b"Connection: close\r\n\r\n"
               b"3;name=value\r\nabc\r\n2 ; x\r\nde\r\n0\r\nX-Checksum: 1234\r\nX-Other: 5\r\n\r\n")
    data, ended = exchange(server, request)
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert hashlib.sha256(b"abcde").hexdigest().encode() in data


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_slow_body_is_closed_by_min_body_rate(start_server, framing):
    """A body trickling in below --min-body-rate is closed after one window, long before
    --body-timeout."""
    server = start_server("--min-body-rate", "1K", "--body-rate-window", "1", "--body-timeout", "60")
    header, piece = b"Content-Length: 100000", b"s" * 50
    if framing == "chunked":
        header, piece = b"Transfer-Encoding: chunked", b"2e\r\n" + b"s" * 46 + b"\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + header + b"\r\n\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 15:
            try:
                sock.sendall(piece)  # 50 bytes every 0.2 s: 250 bytes/s
                sock.settimeout(0.2)
                closed = sock.recv(100) == b""
            except TimeoutError:
                continue
            except ConnectionError:
                closed = True
            if closed:
                break
        elapsed = time.monotonic() - started
    assert closed, "the trickling upload was still open after 15 s"
    assert elapsed < 8, f"closed after {elapsed:.2f}s with a 1 s window"
    assert "slower than 1024 bytes/s" in server.wait_for_output("slower than")
    assert_still_serving(server)


def test_fast_body_is_not_cut_by_min_body_rate(start_server):
    """An upload comfortably above the rate survives several windows."""
    server = start_server("--min-body-rate", "1K", "--body-rate-window", "1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=20) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 40000\r\n"
                     b"Connection: close\r\n\r\n")
        for _ in range(10):
            sock.sendall(b"f" * 4000)  # 4000 bytes every 0.3 s: about 13 KB/s
            time.sleep(0.3)
        data = b""
        while part := sock.recv(65536):
            data += part
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert hashlib.sha256(b"f" * 40000).hexdigest().encode() in data


def test_runaway_chunked_body_after_413_gets_no_second_answer(start_server):
    """A chunked upload that keeps going far past the limit after its 413 is cut off with
    the 413 alone: a 400 tacked on after it would be read as the answer to the next request."""
    server = start_server("--max-body-size", "1K")
    chunk = b"r" * 65536
    request = (b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n%s\r\n" % (len(chunk), chunk) * (17 * 16) + b"0\r\n\r\n")
    data, ended = exchange(server, request, timeout=30)
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert data.count(b"HTTP/1.1 ") == 1, data
    assert_still_serving(server)


# --- One reading of the body's framing, shared by the limits and the reader ----------------

@pytest.mark.parametrize("lengths", [
    b"Content-Length: 100\r\nContent-Length: 100\r\n",
    b"Content-Length: 100, 100\r\n",
], ids=["two-lines", "comma-list"])
def test_duplicated_content_length_cannot_trickle_past_the_body_watch(start_server, lengths):
    """Were the length read one way by the limits and another by the reader, this slow body
    would be held to neither --min-body-rate nor --body-timeout: it is refused at once."""
    server = start_server("--min-body-rate", "1K", "--body-rate-window", "1", "--body-timeout", "4")
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lengths + b"\r\n")
        started = time.monotonic()
        reply, ended = b"", "open"
        while time.monotonic() - started < 10 and ended == "open":
            try:
                sock.sendall(b"s")  # one byte every 0.2 s
                sock.settimeout(0.2)
                part = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                ended = "reset"
                break
            reply += part
            if not part:
                ended = "closed"
        elapsed = time.monotonic() - started
    assert ended != "open", "the trickling body was still being read after 10 s"
    assert reply.startswith(b"HTTP/1.1 400 ") or elapsed < 8, (reply[:200], elapsed)
    assert_still_serving(server)


@pytest.mark.parametrize("lengths", [
    b"Content-Length: 5\r\nContent-Length: 5\r\n", b"Content-Length: 5, 5\r\n",
    *(b"Content-Length: " + value + b"\r\n" for value in (b"+5", b"5 5", b"", b"0x5", b"5,", b"5_0")),
], ids=["two-equal-lines", "equal-list", "plus", "space", "empty", "hex", "trailing-comma", "underscore"])
def test_content_length_must_be_one_field_of_digits(server, lengths):
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   + lengths + b"\r\nhello")
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]
    assert ended == "closed"


@pytest.mark.parametrize("codings, status", [
    (b"Transfer-Encoding: chunked, chunked\r\n", b"400"),
    (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", b"400"),
    (b"Transfer-Encoding: chunked, gzip\r\n", b"400"),
    (b"Transfer-Encoding: gzip, chunked\r\n", b"501"),
], ids=["twice-in-a-list", "twice-in-lines", "chunked-not-last", "unknown-coding"])
def test_transfer_encoding_other_than_chunked_is_refused(server, codings, status):
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n" + codings
                                   + b"\r\n3\r\nabc\r\n0\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 " + status + b" "), data[:200]
    assert ended == "closed"


def test_chunk_declared_past_the_limit_gets_413(server):
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Transfer-Encoding: chunked\r\n\r\nC800000\r\n")
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert ended in ("closed", "reset")
    assert_still_serving(server)


def test_content_length_of_thousands_of_digits_gets_413(server):
    """Python's int() refuses more than 4300 digits: the length is still over the limit."""
    data, ended = exchange(server, b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                   b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n")
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert ended == "closed"
    output = server.output()
    assert "Traceback" not in output and " ERROR " not in output, output[-3000:]


def test_chunked_body_costs_little_more_than_a_content_length(start_server):
    """A body in the smallest chunks the server accepts on average (512 bytes), or refuses
    (64 bytes), costs the server at most about 3 times the CPU of the same body with a
    Content-Length (checked with a margin: 4 times)."""
    import psutil

    server = start_server("--max-body-size", "20M")
    process = psutil.Process(server.process.pid)
    body = os.urandom(4 * 1024 * 1024)
    head = b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"

    def chunked(size: int) -> bytes:
        return head + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(
            b"%x\r\n%s\r\n" % (len(body[at:at + size]), body[at:at + size])
            for at in range(0, len(body), size)) + b"0\r\n\r\n"

    requests = {"length": head + b"Content-Length: %d\r\n\r\n" % len(body) + body,
                "512": chunked(512), "64": chunked(64)}

    def cpu_seconds() -> float:
        times = process.cpu_times()
        return times.user + times.system

    exchange(server, requests["length"], timeout=60)  # warm up
    spent = dict.fromkeys(requests, 0.0)
    for _ in range(3):
        for name, request in requests.items():
            before = cpu_seconds()
            data, _ = exchange(server, request, timeout=60)
            if name != "64":  # refused: a 400, or a reset that may come before it is read
                assert data.startswith(b"HTTP/1.1 200 "), data[:200]
            spent[name] += cpu_seconds() - before
    for name in ("512", "64"):
        assert spent[name] < 4 * spent["length"] + 0.05, spent
