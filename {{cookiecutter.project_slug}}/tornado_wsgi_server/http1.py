"""HTTP/1.1 reading hardened for clients with no proxy in front: Tornado's HTTP1Connection
with the body's framing decided once, strictly (one Content-Length of digits, or exactly
`chunked`, else a refusal), chunk extensions checked and ignored, trailers checked and dropped,
bad chunk framing and floods of tiny chunks or header lines answered 400/431 (never an
assert), no 100 Continue to HTTP/1.0, and nothing read after a response that closes the
connection ever handed on. Plain header lines are parsed here, the rest by Tornado; response
heads formatted on the worker are framed here.
"""

from __future__ import annotations

import asyncio
import re
from typing import NamedTuple

from tornado import httputil, iostream
from tornado.concurrent import Future, future_add_done_callback
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection, _QuietException, parse_int
from tornado.httputil import _normalize_header
from tornado.log import gen_log

MAX_HEADER_FIELDS = 100  # more header lines than this: 431 without parsing them
# A chunked body may carry this many chunks plus one per MIN_AVERAGE_CHUNK bytes; each
# chunk costs the event loop some microseconds, so a stream of 1-byte chunks is refused.
FREE_CHUNKS = 1024
MIN_AVERAGE_CHUNK = 512
# Chunk extensions cost time too: a size line longer than SHORT_LINE bytes counts as one
# more chunk per EXTENSION_BYTES_PER_CHUNK bytes beyond.
SHORT_LINE = 16
EXTENSION_BYTES_PER_CHUNK = 8
_CHUNK_LINE_MAX = 1024  # a chunk-size line with its extensions
CHUNKED = -1  # ReadingConnection.framing() of a chunked body

# RFC 9112 7.1.1: chunk-size *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF, a name being a
# token and a value a token or a quoted-string: no other byte (no bare CR or LF, no NUL).
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QDTEXT = rb"[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]*"
_QUOTED = rb'"%s(?:\\[\t \x21-\x7e\x80-\xff]%s)*"' % (_QDTEXT, _QDTEXT)  # unrolled: no backtracking
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?)*\r\n" % (_TOKEN, _TOKEN, _QUOTED)
)
# A trailer field line (RFC 9112 7.1.2): name, colon, a value without controls but HTAB, CRLF.
_TRAILER_LINE = re.compile(rb"%s:[\t\x20-\x7e\x80-\xff]*\r\n" % _TOKEN)
_DIGITS = re.compile(r"[0-9]+")
_EMPTY_LINES = re.compile(r"\A(?:\r?\n)+")
_HUGE = 10**18  # stands for a Content-Length of more than 18 digits: over any limit


class Answer(NamedTuple):
    """What the server answers itself (and then closes): status, reason phrase, text."""

    code: int
    reason: str
    text: str


def own_answer(start_line, headers) -> Answer | None:
    """What the server answers itself to a request whose framing is sound, else None: a
    proxy's CONNECT, a request target that is neither a path nor absolute-form (the
    asterisk of ``OPTIONS *`` included), no or several Host fields (RFC 9112 3.2)."""
    method, target = start_line.method, start_line.path
    if method == "CONNECT":
        return Answer(501, "Not Implemented", "CONNECT is not supported: this server is not a proxy.\n")
    if target == "*" and method == "OPTIONS":
        return Answer(200, "OK", "")  # the server is there; what each path allows, Django says
    if not target.startswith("/") and not target[:8].lower().startswith(("http://", "https://")):
        return Answer(400, "Bad Request", "The request target must be a path or an absolute URL.\n")
    hosts = len(headers.get_list("Host"))
    if hosts > 1 or (hosts == 0 and start_line.version == "HTTP/1.1"):
        return Answer(400, "Bad Request", "An HTTP/1.1 request needs exactly one Host header.\n")
    return None


# One header line that Tornado's parser would take as it is: a token, a colon, a value of
# visible characters (Latin-1 included) with inner spaces or tabs, optional white space, CR.
_PLAIN_HEADER_LINE = re.compile(
    r"([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*"
    r"((?:[\x21-\x7e\x80-\xff](?:[\x21-\x7e\x80-\xff \t]*[\x21-\x7e\x80-\xff])?)?)[ \t]*\r?"
)


class RequestHeaders(httputil.HTTPHeaders):
    """A request's headers: Tornado's HTTPHeaders, parsed in one regular expression per
    line, and with a ``get()`` of an absent name that raises nothing inside (a request's
    framing asks for several that are absent: Content-Length, Transfer-Encoding, Expect...)."""

    @classmethod
    def parse_block(cls, text: str) -> RequestHeaders:
        """The header lines after the start line. A line this does not take as plain (a
        folded one, a bad character, no colon) hands the whole block to Tornado's parser,
        which accepts or refuses it as it always has."""
        headers = cls()
        lists = headers._as_list
        for line in text.split("\n"):
            match = _PLAIN_HEADER_LINE.fullmatch(line)
            if match is None:
                if line == "" or line == "\r":
                    continue
                return cls.parse(text)
            name, value = match.groups()
            name = _normalize_header(name)
            if name in lists:
                lists[name].append(value)
            else:
                lists[name] = [value]
            headers._last_key = name
        return headers

    def get(self, name, default=None):
        if _normalize_header(name) in self._as_list:
            return self[name]
        return default


class TooManyHeaders(httputil.HTTPHeaders):
    """Stands in for the headers of a request with more than MAX_HEADER_FIELDS lines."""


class FormattedHead:
    """A response head checked and formatted on the worker thread (container.formatted_head),
    for a body that is sent whole: the loop adds only the framing (``Connection``) and
    writes it. ``get()`` answers what ResponseWriter asks of a head."""

    __slots__ = ("text", "closes", "length")

    def __init__(self, fields: list, length: int) -> None:
        self.length = length  # body bytes that follow the head
        self.text = "\r\n".join([f"{name}: {value}" for name, value in fields])
        separators = len(fields) - 1
        if self.text.count("\r") != separators or self.text.count("\n") != separators:
            raise ValueError(f"Illegal characters (CR or LF) in the response head: {self.text!r}")
        self.closes = fields[-1] == ("Connection", "close")

    def get(self, name: str, default=None):
        if name != "Connection":
            raise KeyError(name)  # nothing else is asked of a formatted head
        return "close" if self.closes else default


class ReadingConnection(HTTP1Connection):
    """One request/response exchange on a server connection (see the module docstring)."""

    def _parse_headers(self, data: bytes):
        # As Tornado does, with LF or CRLF, and without the empty lines before the request
        # (RFC 9112 2.2), though not a bare CR, which Tornado drops and other parsers do not.
        text = data.decode("latin1")
        if text.startswith(("\r", "\n")):
            text = _EMPTY_LINES.sub("", text, count=1)
        eol = text.find("\n")
        start_line = text[:eol].rstrip("\r")
        if data.count(b"\n") > MAX_HEADER_FIELDS + 3:  # start line, the blank line, a leading CRLF
            return start_line, TooManyHeaders()
        headers = RequestHeaders.parse_block(text[eol:])
        if start_line.endswith("HTTP/1.0"):
            # RFC 9110 10.1.1: an HTTP/1.0 client's 100-continue is ignored (no 100 for it).
            headers.pop("Expect", None)
        return start_line, headers

    def write_headers(self, start_line, headers, chunk=None):
        request = self._request_start_line
        if type(headers) is FormattedHead:
            return self._write_formatted_head(request, start_line, headers, chunk)
        if not self.is_client and request is not None:
            close_delimited = (
                request.version == "HTTP/1.0"
                and "Content-Length" not in headers
                and request.method != "HEAD"
                and start_line.code not in (204, 304)
                and start_line.code >= 200
            )
            if close_delimited or headers.get("Connection", "").lower() == "close":
                # Said "close": really close after the last byte, and let no keep-alive
                # read pick up a request pipelined behind this one.
                self._disconnect_on_finish = True
                headers["Connection"] = "close"
            return self._write_response_head(request, start_line, headers, chunk)
        return super().write_headers(start_line, headers, chunk)

    def _write_response_head(self, request, start_line, headers, chunk):
        """Tornado's framing of a response, in one pass over the headers: chunked for a 1.1
        response of unknown length with a body, "Connection: close" to a 1.1 client when
        the connection ends, "Keep-Alive" to a 1.0 client that asked, and the body length
        finish() checks. Runs once per response on the loop, so it stays lean."""
        self._response_start_line = start_line
        code, version, method = start_line.code, request.version, request.method
        length = headers.get("Content-Length")
        self._chunking_output = (
            version == "HTTP/1.1" and method != "HEAD" and length is None
            and code not in (204, 304) and not 100 <= code < 200
        )
        if version == "HTTP/1.1" and self._disconnect_on_finish:
            headers["Connection"] = "close"
        elif version == "HTTP/1.0" and not self._disconnect_on_finish:
            headers["Connection"] = "Keep-Alive"  # the client asked (_can_keep_alive)
        if self._chunking_output:
            headers["Transfer-Encoding"] = "chunked"
        if method == "HEAD" or code == 304:
            self._expected_content_remaining = 0
        elif length is not None:
            self._expected_content_remaining = parse_int(length)
        else:
            self._expected_content_remaining = None
        lines = [f"HTTP/1.1 {code} {start_line.reason}"]
        lines += [f"{name}: {value}" for name, value in headers.get_all()]
        text = "\r\n".join(lines)
        separators = len(lines) - 1
        if text.count("\r") != separators or text.count("\n") != separators:
            raise ValueError(f"Illegal characters (CR or LF) in the response head: {text!r}")
        future = self._head_future()
        if not future.done():
            data = (text + "\r\n\r\n").encode("latin-1")
            self._write_head_bytes(data + self._format_chunk(chunk) if chunk else data)
        return future

    def _head_future(self) -> Future:
        """The future write_headers() returns: failed at once if the stream is closed."""
        future = self._write_future = Future()
        if self.stream.closed():
            future.set_exception(iostream.StreamClosedError())
            future.exception()
        return future

    def _write_head_bytes(self, data: bytes) -> None:
        self._pending_write = self.stream.write(data)
        future_add_done_callback(self._pending_write, self._on_write_complete)

    def _write_formatted_head(self, request, start_line, head: FormattedHead, chunk):
        """write_headers() for a head made by container.formatted_head: its body's length
        is known (the head carries it, or the status allows no body), so there is no
        chunking and no close-delimited body; only keep-alive remains to be framed."""
        self._response_start_line = start_line
        self._chunking_output = False
        version = request.version
        text = head.text
        if head.closes:
            self._disconnect_on_finish = True
        elif version == "HTTP/1.1":
            if self._disconnect_on_finish:
                text += "\r\nConnection: close"
        elif not self._disconnect_on_finish:  # an HTTP/1.0 client that asked (_can_keep_alive)
            text += "\r\nConnection: Keep-Alive"
        # Not the Content-Length: a HEAD or 304 answer may give the full body's, and send none.
        self._expected_content_remaining = head.length - len(chunk) if chunk else head.length
        if self._expected_content_remaining < 0:
            raise httputil.HTTPOutputError("Tried to write more data than Content-Length")
        future = self._head_future()
        if not future.done():
            data = f"HTTP/1.1 {start_line.code} {start_line.reason}\r\n{text}\r\n\r\n".encode("latin-1")
            self._write_head_bytes(data + chunk if chunk else data)
        return future

    def _bad_input(self, message: str) -> Exception:
        if self._response_start_line is not None:
            # An answer (a 413) is already out: a 400 after it would corrupt it. Just close.
            gen_log.info("Malformed HTTP message from %s: %s", self.context, message)
            self.stream.close()
            return iostream.StreamClosedError()
        return httputil.HTTPInputError(message)

    # --- The request body: framed once, read as framed ------------------------------

    _framing = None

    def framing(self, start_line, headers) -> int | Answer:
        """How this request's body is framed, decided once for the request task and for the
        reading below, so that both agree: its length (0: no body), CHUNKED, or the Answer
        to give instead of reading it (RFC 9112 6.1-6.3; a length must be one field line
        of digits, a transfer coding exactly ``chunked``; HTTP/1.x other than 1.0 and 1.1
        gets 505)."""
        if self._framing is None:
            self._framing = _framing(start_line, headers)
        return self._framing

    def _read_body(self, code, headers, delegate):
        framing = self.framing(self._request_start_line, headers)
        if type(framing) is Answer or framing > self._max_body_size:
            if self._write_finished:
                return None  # answered (refused) already, and the connection closes
            raise self._bad_input(framing.text if type(framing) is Answer else "Content-Length too large")
        if framing == CHUNKED:
            return self._read_chunked_body(delegate)
        return self._read_fixed_body(framing, delegate) if framing else None

    def _can_keep_alive(self, start_line, headers) -> bool:
        """Tornado's rule, with Connection read as a token list (``close, TE`` closes), and
        a Transfer-Encoding from an HTTP/1.0 client taken as faulty framing: answered, then
        the connection closes (RFC 9112 6.1)."""
        if self.params.no_keep_alive:
            return False
        tokens = {token.strip().lower() for token in headers.get("Connection", "").split(",")}
        if "close" in tokens:
            return False
        if start_line.version == "HTTP/1.1":
            return True
        if "Transfer-Encoding" in headers:
            return False
        return "keep-alive" in tokens and (
            "Content-Length" in headers or start_line.method in ("HEAD", "GET"))

    def _body_too_large(self, delegate) -> Exception:
        """A declared chunk takes the body past the limit: the delegate answers 413 if it
        can (``body_too_large()``), and the connection closes unread."""
        if self._response_start_line is None and hasattr(delegate, "body_too_large"):
            delegate.body_too_large()
        return self._bad_input("chunked body too large")

    async def _read_chunked_body(self, delegate) -> None:
        """A chunked body (RFC 9112 7.1). The whole chunks already in the stream's read
        buffer are parsed in one pass; a chunk not yet all there is read with the stream's
        own reads. The data goes to the delegate in one block each time reading must wait
        for the network, so small chunks cost the loop little more than a Content-Length."""
        stream = self.stream
        chunk_size = self.params.chunk_size
        self._chunk_counts = (0, 0, 0)
        pieces: list = []  # body data not yet handed on
        while True:
            at, spans, last = self._parse_buffered_chunks(delegate)
            if at:
                block = memoryview(await stream.read_bytes(at))  # all buffered: no wait
                pieces += [block[a:b] for a, b in spans]
            if last:
                break
            if pieces and stream._read_buffer.find(b"\n", 0, _CHUNK_LINE_MAX) < 0:
                await self._hand_on(pieces, delegate)
            try:
                line = await stream.read_until(b"\n", max_bytes=_CHUNK_LINE_MAX)
            except iostream.UnsatisfiableReadError:
                raise self._bad_input("chunk size line too long") from None
            match = _CHUNK_LINE.fullmatch(line)
            if match is None:
                raise self._bad_input("invalid chunk size line")
            size = int(match[1], 16)
            if size == 0:
                break
            self._count_chunks(1, len(line), size, delegate)
            remaining = size
            while remaining:
                if pieces and not stream._read_buffer_size:
                    await self._hand_on(pieces, delegate)
                data = await stream.read_bytes(min(remaining, chunk_size), partial=True)
                remaining -= len(data)
                pieces.append(data)
            if pieces and stream._read_buffer_size < 2:
                await self._hand_on(pieces, delegate)
            if await stream.read_bytes(2) != b"\r\n":
                raise self._bad_input("chunk not followed by CRLF")
        if pieces:
            await self._hand_on(pieces, delegate)
        await self._skip_trailers()

    async def _hand_on(self, pieces: list, delegate) -> None:
        data = b"".join(pieces)
        pieces.clear()
        if not self._write_finished:
            result = delegate.data_received(data)
            if result is not None:
                await result

    def _parse_buffered_chunks(self, delegate) -> tuple[int, list, bool]:
        """The whole chunks at the start of the stream's read buffer (Tornado's bytes
        received and not yet consumed): how many bytes they take, where their data is, and
        whether the last chunk (size 0) was among them. Nothing is consumed here."""
        buffer = self.stream._read_buffer
        end = self.stream._read_buffer_size
        find, fullmatch, startswith = buffer.find, _CHUNK_LINE.fullmatch, buffer.startswith
        at, spans, lines, body, last = 0, [], 0, 0, False
        while True:
            eol = find(b"\n", at, at + _CHUNK_LINE_MAX)
            if eol < 0:
                if end - at >= _CHUNK_LINE_MAX:
                    raise self._bad_input("chunk size line too long")
                break
            match = fullmatch(buffer, at, eol + 1)
            if match is None:
                raise self._bad_input("invalid chunk size line")
            size = int(match[1], 16)
            start = eol + 1
            if size == 0:
                at, last = start, True
                break
            stop = start + size
            if stop + 2 > end:
                break  # not all here yet
            if not startswith(b"\r\n", stop):
                raise self._bad_input("chunk not followed by CRLF")
            spans.append((start, stop))
            lines += start - at
            body += size
            at = stop + 2
        if spans:
            self._count_chunks(len(spans), lines, body, delegate)
        return at, spans, last

    def _count_chunks(self, chunks: int, line_bytes: int, size: int, delegate) -> None:
        """Keep a chunked body within --max-body-size, and its chunks within FREE_CHUNKS
        plus one per MIN_AVERAGE_CHUNK bytes; size lines longer than SHORT_LINE bytes
        (extensions) count one more chunk per EXTENSION_BYTES_PER_CHUNK bytes beyond."""
        total_chunks, total_lines, total_size = self._chunk_counts
        total_chunks += chunks
        total_lines += line_bytes
        total_size += size
        self._chunk_counts = (total_chunks, total_lines, total_size)
        if total_size > self._max_body_size:
            raise self._body_too_large(delegate)
        extensions = max(0, total_lines - SHORT_LINE * total_chunks) // EXTENSION_BYTES_PER_CHUNK
        if total_chunks + extensions > FREE_CHUNKS + total_size // MIN_AVERAGE_CHUNK:
            raise self._bad_input("too many chunks for the body size")

    async def _skip_trailers(self) -> None:
        """Read, check and drop the trailer section (RFC 9112 7.1.2 lets a server discard
        it): field lines ending in CRLF, no bare CR or LF, then an empty line."""
        budget = self.params.max_header_size
        for _ in range(MAX_HEADER_FIELDS + 1):
            try:
                line = await self.stream.read_until(b"\n", max_bytes=budget)
            except iostream.UnsatisfiableReadError:
                raise self._bad_input("trailer section too large") from None
            if line == b"\r\n":
                return
            if not _TRAILER_LINE.fullmatch(line):
                raise self._bad_input("invalid trailer line")
            budget -= len(line)
            if budget <= 0:
                break
        raise self._bad_input("trailer section too large")


def _framing(start_line, headers) -> int | Answer:
    """ReadingConnection.framing() of a request (see there)."""
    if start_line.version not in ("HTTP/1.1", "HTTP/1.0"):
        return Answer(505, "HTTP Version Not Supported", "This server speaks HTTP/1.0 and HTTP/1.1.\n")
    codings = headers.get_list("Transfer-Encoding")
    lengths = headers.get_list("Content-Length")
    if codings:
        if lengths:
            return Answer(400, "Bad Request", "Content-Length and Transfer-Encoding together.\n")
        if len(codings) == 1 and codings[0].lower() == "chunked":
            return CHUNKED
        names = [name.strip().lower() for name in ",".join(codings).split(",")]
        if names.count("chunked") == 1 and names[-1] == "chunked" and \
                all(re.fullmatch(_TOKEN.decode(), name) for name in names):
            return Answer(501, "Not Implemented", "The only transfer coding accepted is chunked alone.\n")
        return Answer(400, "Bad Request", "Transfer-Encoding must be chunked.\n")
    if not lengths:
        return 0
    if len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0]):
        return Answer(400, "Bad Request", "Content-Length must be one field of digits.\n")
    digits = lengths[0].lstrip("0")
    return int(digits or "0") if len(digits) <= 18 else _HUGE


class ServerConnection(HTTP1ServerConnection):
    """Tornado's server loop over ReadingConnections, stopping once the stream is closed."""

    signon = None  # windows_auth.ConnectionSignOn: this connection's handshake and user

    async def _server_request_loop(self, delegate) -> None:
        try:
            # Once a response has closed the stream, bytes left in its read buffer (a
            # pipelined request) are never parsed, let alone run.
            while not self.stream.closed():
                conn = ReadingConnection(self.stream, False, self.params, self.context)
                request_delegate = delegate.start_request(self, conn)
                try:
                    keep_going = await conn.read_response(request_delegate)
                except (iostream.StreamClosedError, iostream.UnsatisfiableReadError,
                        asyncio.CancelledError):
                    return
                except _QuietException:  # Tornado has logged it
                    conn.close()
                    return
                except Exception:
                    gen_log.error("Uncaught exception", exc_info=True)
                    conn.close()
                    return
                if not keep_going:
                    return
                if self.stream._read_buffer_size:
                    # A pipelined request is already here: let other connections have a
                    # turn first. Otherwise the read below waits for the loop anyway.
                    await asyncio.sleep(0)
        finally:
            delegate.on_close(self)
