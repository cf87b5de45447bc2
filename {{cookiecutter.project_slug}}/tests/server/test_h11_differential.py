"""The server against h11 (a strict HTTP/1.1 parser with no I/O) on the same bytes.

Generated and mutated requests (Content-Length and Transfer-Encoding combinations, duplicates,
commas, white space, obs-fold, bare LF and CR, chunk sizes and extensions, trailers,
pipelining) go to the server on one connection, which the client then half-closes; h11
reads the same bytes as a server would. Wherever the server ran a request (the environ view
answered it), h11 must have read a request at the same place with the same method, target
and body: the server never accepts a framing h11 would read differently. Where the two
disagree, the server must have refused: a 4xx/5xx that closes the connection, or a close.
Each example ends when the server closes the connection (no fixed sleeps).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import time
from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

TIMEOUT = 10.0  # seconds the server may take to answer and close one example's connection
EXAMPLES = 400
# Reproducible in CI: the same examples every run, and no example database carried over.
DIFFERENTIAL = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                        print_blob=False, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.data_too_large])
TAGS = itertools.count()


@pytest.fixture(scope="module")
def server(start_module_server):
    return start_module_server()


@pytest.fixture(scope="module", autouse=True)
def rfc_chunk_extensions():
    """h11 (0.16) takes no white space between a chunk's size and its ";", which RFC 9112
    7.1.1 allows (BWS): while these tests run, h11 reads it as the RFC does."""
    from h11 import _abnf, _readers

    original = _readers.chunk_header_re
    rfc = _abnf.chunk_header.replace("(?P<chunk_ext>", "(?P<chunk_ext>[ \\t]*")
    assert rfc != _abnf.chunk_header
    _readers.chunk_header_re = re.compile(rfc.encode("ascii"))
    yield
    _readers.chunk_header_re = original


# ----------------------------------------------------------------------------------------
# Requests: a well-formed base, then mutations of its framing and line ends.
# ----------------------------------------------------------------------------------------

@dataclass
class Parts:
    """One request as pieces to mutate: ``lines`` are the head's lines (no line ends)."""

    lines: list
    body: bytes  # the body as sent (chunked or not)


# Each list: valid forms first (up to the None), then the odd ones a mutated request may use.
LENGTH_SPELLINGS = ["{n}", "0{n}", " {n}", "{n}\t", None, "+{n}", "{n} ", "{n}, {n}", "{n},{n}",
                    "{n} ,{n}", "{n}, {m}", "", "{n}, ", "{m}", "0x{n}", "{n}{n}", "{n} {n}"]
CODINGS = ["chunked", "Chunked", "CHUNKED", " chunked", None, "chunked, chunked", "gzip, chunked",
           "chunked, gzip", "identity", "chunked;q=1", "", "chunked,", ",chunked", "identity, chunked",
           "chunked\x0b", "chunk"]
SIZE_SPELLINGS = ["%x", "%X", "00%x", None, "0000000000000000%x", "%x ", " %x", "+%x", "0x%x", "-%x"]
EXTENSIONS = [b"", b";a", b";a=b", b';a="q \\" t"', b" ; a = b", b";a;b=c", None, b";", b";a=",
              b";\nxx", b";a\rb", b";a\x00", b";a=b c", b';a="x', b";\x7f", b"; a=\"\xe9\"", b";a=b\r"]
SIZE_LINE_ENDS = [b"\r\n", None, b"\n", b"\r", b" \r\n", b"\r\r\n"]
DATA_ENDS = [b"\r\n", None, b"\n", b"", b"XX", b"\r\r\n"]
TRAILERS = [b"", b"X-Sum: 1\r\n", b"X-Sum:1\r\n", None, b"X-Sum: 1\n", b"X-Sum: 1\rX-B: 2\r\n",
            b" folded\r\n", b"X-Sum: 1\r\n folded\r\n", b"no colon\r\n", b"X-Sum : 1\r\n",
            b"X-Sum: \x00\r\n"]
LAST_CHUNKS = [b"0", b"000", b"0;end", None, b"0;\n", b"00000000000000000000", b"0 "]
BODY_ENDS = [b"\r\n", None, b"\n", b"", b"\r"]
CONNECTIONS = [None, b"close", b"keep-alive", b"close, TE", b"keep-alive, foo", b"Close", None,
               b"close\r\n x", b"keep-alive, close"]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", None, "HTTP/1.5", "HTTP/1.9"]
LINE_ENDS = ["crlf", "lf", None, "one-lf", "one-cr"]


def forms(options: list, odd: bool) -> st.SearchStrategy:
    """The valid forms, or (``odd``) any form, valid ones drawn about as often as odd ones."""
    cut = options.index(None)
    valid = st.sampled_from(options[:cut])
    return st.one_of(valid, st.sampled_from(options[cut + 1:])) if odd else valid


@st.composite
def chunked_body(draw, body: bytes, odd: bool) -> bytes:
    """``body`` in chunks, each part of their framing drawn from valid (and ``odd``) forms."""
    wire, rest = b"", body
    while rest:
        size = draw(st.integers(1, len(rest)))
        piece, rest = rest[:size], rest[size:]
        wire += (draw(forms(SIZE_SPELLINGS, odd)) % size).encode() + draw(forms(EXTENSIONS, odd))
        wire += draw(forms(SIZE_LINE_ENDS, odd)) + piece + draw(forms(DATA_ENDS, odd))
    wire += draw(forms(LAST_CHUNKS, odd)) + draw(forms(SIZE_LINE_ENDS, odd))
    wire += b"".join(draw(st.lists(forms(TRAILERS, odd), max_size=2)))
    return wire + draw(forms(BODY_ENDS, odd))


@st.composite
def framed_request(draw, tag: str) -> bytes:
    """A request to the environ view; about half of them with odd forms here and there."""
    odd = draw(st.booleans())
    method = draw(st.sampled_from(["POST", "PUT", "GET"]))
    version = draw(forms(VERSIONS, odd and draw(st.integers(0, 4)) == 0))
    path = f"/__test__/environ?fz={tag}"
    target = draw(st.sampled_from([path, path, f"http://localhost{path}"]))
    body = draw(st.binary(max_size=40))
    lines = [f"{method} {target} {version}".encode()]
    others = [b"Host: localhost", b"X-A: 1"]
    if odd and draw(st.integers(0, 9)) == 0:
        others.remove(b"Host: localhost")  # HTTP/1.1 without Host
    connection = draw(st.sampled_from(CONNECTIONS if odd else CONNECTIONS[:3]))
    if connection:
        others.append(b"Connection: " + connection)
    framing = []
    chunked = draw(st.booleans())
    if not odd:
        if chunked and version == "HTTP/1.1":
            framing.append(b"Transfer-Encoding: " + draw(forms(CODINGS, False)).encode())
        elif body or draw(st.booleans()):
            framing.append(b"Content-Length: " + draw(forms(LENGTH_SPELLINGS, False)).format(n=len(body)).encode())
    else:
        for _ in range(draw(st.integers(0, 2))):
            spelling = draw(forms(LENGTH_SPELLINGS, True))
            framing.append(b"Content-Length: " + spelling.format(n=len(body), m=len(body) + 1).encode())
        framing += [b"Transfer-Encoding: " + coding.encode()
                    for coding in draw(st.lists(forms(CODINGS, True), max_size=2))]
        name_case = draw(st.sampled_from(["keep", "lower", "upper"]))
        if name_case != "keep":
            framing = [getattr(line.split(b":", 1)[0], name_case)() + b":" + line.split(b":", 1)[1]
                       for line in framing]
        if framing and draw(st.integers(0, 3)) == 0:  # obs-fold inside a framing header
            index = draw(st.integers(0, len(framing) - 1))
            name, _, value = framing[index].partition(b": ")
            framing[index] = name + b":" + draw(st.sampled_from([b"\r\n ", b"\r\n\t", b" x\r\n "])) + value
    head = others + framing
    order = draw(st.permutations(range(len(head))))
    lines += [head[i] for i in order]
    sent_chunked = any(line.lower().startswith(b"transfer-encoding") for line in framing)
    if odd and draw(st.integers(0, 5)) == 0:
        sent_chunked = not sent_chunked  # the body framed the other way
    if sent_chunked:
        wire_body = draw(chunked_body(body, odd)) if body else b"0\r\n\r\n"
    else:
        wire_body = body
    ends = draw(forms(LINE_ENDS, odd))
    if ends == "crlf":
        head_bytes = b"\r\n".join(lines) + b"\r\n\r\n"
    elif ends == "lf":
        head_bytes = b"\n".join(lines) + b"\n\n"
    else:
        index = draw(st.integers(0, len(lines) - 1))
        odd_end = b"\n" if ends == "one-lf" else b"\r"
        head_bytes = b"".join(line + (odd_end if i == index else b"\r\n") for i, line in enumerate(lines)) + b"\r\n"
    return head_bytes + wire_body


@st.composite
def pipelines(draw) -> bytes:
    """One to three requests on one connection, with now and then a stray line end between."""
    number = next(TAGS)
    requests = [draw(framed_request(f"{number}-{i}")) for i in range(draw(st.integers(1, 3)))]
    glue = draw(st.sampled_from([b"", b"", b"", b"\r\n", b"\n", b"\r", b"\r\n\r\n"]))
    return glue.join(requests)


# ----------------------------------------------------------------------------------------
# The two readings.
# ----------------------------------------------------------------------------------------

@dataclass
class Read:
    method: bytes
    tag: str
    body: bytes
    ends_connection: bool  # Connection: close, HTTP/1.0 without keep-alive or with a coding


TAG = re.compile(rb"[?&]fz=([0-9k]+-[0-9]+)")


def tag_of(target: bytes) -> str:
    match = TAG.search(target)
    return match.group(1).decode() if match else "?"


def h11_reading(data: bytes) -> tuple[list[Read], str]:
    """The requests h11 reads from ``data`` followed by the end of input, and why it stopped.

    Each request is read by a fresh h11 connection, after the empty lines before it (RFC
    9112 2.2: a server SHOULD ignore at least one; h11 takes none), and after a request
    that ends the connection too, as a server that allows HTTP/1.0 keep-alive would (h11
    never keeps an HTTP/1.0 connection): the server is held to the close separately."""
    reads: list[Read] = []
    while True:
        data = EMPTY_LINES.sub(b"", data, count=1)
        if not data:
            return reads, "end of input"
        conn = h11.Connection(h11.SERVER)
        conn.receive_data(data)
        conn.receive_data(b"")
        request, body = None, b""
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                return reads, f"h11 refused: {exc}"
            if isinstance(event, h11.Request):
                request, body = event, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                tokens = {t.strip().lower() for name, value in request.headers if name == b"connection"
                          for t in value.split(b",")}
                names = {name for name, _ in request.headers}
                # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 request ends the connection too.
                ends = b"close" in tokens or (request.http_version == b"1.0" and (
                    b"keep-alive" not in tokens or b"transfer-encoding" in names))
                reads.append(Read(request.method, tag_of(request.target), body, ends))
                data = conn.trailing_data[0]
                break
            elif isinstance(event, h11.ConnectionClosed):
                return reads, "end of input"
            else:
                return reads, f"h11 stopped: {event}"


EMPTY_LINES = re.compile(rb"\A(?:\r?\n)+")


@dataclass
class Answer:
    status: int
    closes: bool
    body: bytes


def server_answers(port: int, data: bytes) -> tuple[list[Answer], bytes]:
    """Send ``data``, half-close, read until the server closes: its answers and any
    bytes it sent that do not parse as one."""
    deadline = time.monotonic() + TIMEOUT
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # closed early by the server; what it said is still readable
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                part = sock.recv(65536)
            except ConnectionError:
                break
            except TimeoutError:
                pytest.fail(f"the server neither answered nor closed in {TIMEOUT:g}s: {data[:300]!r}")
            if not part:
                break
            received += part
    answers = []
    while received:
        head, separator, rest = received.partition(b"\r\n\r\n")
        if not separator:
            break
        status = int(head[9:12])
        if status == 100:  # 100 Continue: not an answer
            received = rest
            continue
        length = re.search(rb"(?im)^content-length: *([0-9]+)\r?$", head)
        size = int(length.group(1)) if length else len(rest)
        answers.append(Answer(status, b"\nconnection: close" in head.lower(), rest[:size]))
        received = rest[size:]
    return answers, received


# ----------------------------------------------------------------------------------------
# The property.
# ----------------------------------------------------------------------------------------

# Known disagreements, run every time whatever the generator draws.
KNOWN = [
    b"GET /__test__/environ?fz=k-0 HTTP/1.1\r\nHost: localhost\r\n\r\n"
    b"\rGET /__test__/environ?fz=k-1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /__test__/environ?fz=k-0 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"2;\nxx\r\n43\r\n0\r\n\r\nGET /__test__/environ?fz=k-1 HTTP/1.1\r\nHost: localhost\r\n\r\n\r\n0\r\n\r\n",
    b"POST /__test__/environ?fz=k-0 HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\nX: y\n\r\nGET /__test__/environ?fz=k-1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /__test__/environ?fz=k-0 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n"
    b"Content-Length: 5\r\n\r\nhelloGET /__test__/environ?fz=k-1 HTTP/1.1\r\nHost: localhost\r\n\r\n",
    b"POST /__test__/environ?fz=k-0 HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5, 5\r\n\r\nhello",
    b"POST /__test__/environ?fz=k-0 HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /__test__/environ?fz=k-1 HTTP/1.1\r\n"
    b"Host: localhost\r\n\r\n",
]
RESULTS = {"examples": 0, "served": 0, "refused": 0}


def check_agreement(server, data: bytes) -> None:
    reads, stopped = h11_reading(data)
    answers, leftover = server_answers(server.port, data)
    RESULTS["examples"] += 1
    context = f"\nsent {data!r}\nh11 read {reads} ({stopped})\nserver answered {answers}"
    assert not leftover, f"bytes after the last answer: {leftover[:200]!r}" + context
    for index, answer in enumerate(answers):
        if answer.status != 200:
            # Refused: the answer closes the connection and nothing after it is run.
            assert 400 <= answer.status < 600, f"answer {index}: {answer.status}" + context
            assert answer.closes or index == len(answers) - 1, f"answer {index} kept the connection" + context
            assert index == len(answers) - 1, f"answers after the refusal {index}" + context
            RESULTS["refused"] += 1
            break
        ran = json.loads(answer.body)
        assert index < len(reads), (
            f"the server ran request {index} ({ran['QUERY_STRING']}) where h11 read none" + context)
        read = reads[index]
        assert (ran["REQUEST_METHOD"].encode(), ran["QUERY_STRING"].removeprefix("fz="),
                ran["body"].encode("latin-1")) == (read.method, read.tag, read.body), (
            f"request {index}: the server read another request than h11" + context)
        assert index == 0 or not reads[index - 1].ends_connection, (
            f"request {index} ran after one that ended the connection" + context)
        RESULTS["served"] += 1


@settings(DIFFERENTIAL)
@given(data=pipelines())
def test_the_server_never_reads_a_request_differently_from_h11(server, data):
    check_agreement(server, data)


for known in KNOWN:
    test_the_server_never_reads_a_request_differently_from_h11 = example(data=known)(
        test_the_server_never_reads_a_request_differently_from_h11)


def test_the_server_served_and_refused_some_and_logged_no_error(server):
    """The generator reaches both sides (served and refused), and nothing in the server's
    output is an ERROR or a traceback."""
    if not RESULTS["examples"]:
        pytest.skip("counts what the differential test above ran")
    assert RESULTS["examples"] >= EXAMPLES, RESULTS
    assert RESULTS["served"] >= EXAMPLES // 4 and RESULTS["refused"] >= EXAMPLES // 4, RESULTS
    output = server.output()
    bad = [line for line in output.splitlines()
           if re.search(r"\bERROR\b|Traceback \(most recent call last\)|CRITICAL", line)]
    assert not bad, output[-4000:]
