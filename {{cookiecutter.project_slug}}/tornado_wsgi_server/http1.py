"""HTTP/1.1 reading hardened for clients with no proxy in front: Tornado's HTTP1Connection
with chunk extensions ignored, trailers dropped, bad chunk framing and floods of tiny chunks
or header lines answered 400/431 (never an assert), no 100 Continue to HTTP/1.0, and nothing
read after a response that closes the connection ever handed on. Plain header lines are
parsed here, the rest by Tornado; response heads formatted on the worker are framed here.
"""

from __future__ import annotations

import asyncio
import re

from tornado import httputil, iostream
from tornado.concurrent import Future, future_add_done_callback
from tornado.http1connection import HTTP1Connection, HTTP1ServerConnection, _QuietException, parse_int
from tornado.httputil import _normalize_header
from tornado.log import gen_log

MAX_HEADER_FIELDS = 100  # more header lines than this: 431 without parsing them
# A chunked body may carry this many chunks plus one per MIN_AVERAGE_CHUNK bytes; each
# chunk costs the event loop some microseconds, so a stream of 1-byte chunks is refused.
FREE_CHUNKS = 1024
MIN_AVERAGE_CHUNK = 64
_CHUNK_LINE_MAX = 1024  # a chunk-size line with its extensions
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")


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
        # As Tornado does, without blank lines before the request, and with LF or CRLF.
        text = data.decode("latin1").lstrip("\r\n")
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
                if request.version == "HTTP/1.0" and self._request_headers is not None:
                    # Otherwise Tornado answers a 1.0 keep-alive request "Keep-Alive".
                    self._request_headers["Connection"] = "close"
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
        elif version == "HTTP/1.0" and self._request_headers.get("Connection", "").lower() == "keep-alive":
            headers["Connection"] = "Keep-Alive"
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
        elif not self._disconnect_on_finish and \
                self._request_headers.get("Connection", "").lower() == "keep-alive":
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

    async def _read_chunked_body(self, delegate) -> None:
        total_size = 0
        chunks = 0
        stream = self.stream
        chunk_size = self.params.chunk_size
        while True:
            try:
                line = await stream.read_until(b"\r\n", max_bytes=_CHUNK_LINE_MAX)
            except iostream.UnsatisfiableReadError:
                raise self._bad_input("chunk size line too long") from None
            # Extensions (";name=value") carry nothing we use; RFC 9112 7.1.1 lets us ignore them.
            size = line[:-2].split(b";", 1)[0].rstrip(b" \t") if b";" in line else line[:-2]
            if not _HEX.fullmatch(size.decode("latin1")):
                raise self._bad_input("invalid chunk size")
            length = int(size, 16)
            if length == 0:
                await self._skip_trailers()
                return
            chunks += 1
            total_size += length
            if total_size > self._max_body_size:
                raise self._bad_input("chunked body too large")
            if chunks > FREE_CHUNKS + total_size // MIN_AVERAGE_CHUNK:
                raise self._bad_input("too many chunks for the body size")
            remaining = length
            while remaining:
                data = await stream.read_bytes(min(remaining, chunk_size), partial=True)
                remaining -= len(data)
                if not self._write_finished:
                    result = delegate.data_received(data)
                    if result is not None:
                        await result
            if await stream.read_bytes(2) != b"\r\n":
                raise self._bad_input("chunk not followed by CRLF")

    async def _skip_trailers(self) -> None:
        """Read and drop the trailer section (RFC 9112 7.1.2 lets a server discard it)."""
        budget = self.params.max_header_size
        for _ in range(MAX_HEADER_FIELDS + 1):
            try:
                line = await self.stream.read_until(b"\r\n", max_bytes=budget)
            except iostream.UnsatisfiableReadError:
                raise self._bad_input("trailer section too large") from None
            if line == b"\r\n":
                return
            budget -= len(line)
            if budget <= 0:
                break
        raise self._bad_input("trailer section too large")


class ServerConnection(HTTP1ServerConnection):
    """Tornado's server loop over ReadingConnections, stopping once the stream is closed."""

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
