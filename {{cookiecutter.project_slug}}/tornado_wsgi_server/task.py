"""One request on one connection: read on the event loop, answered from a pool thread.

A RequestTask enforces the limits while reading (503, 413, 431), calls the application on a
worker thread (on the loop for a static file WhiteNoise has) and hands its response to the
loop (sending.py): whole, streamed with backpressure, or, for a large file on disk, sent by
the loop with no thread held.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import os
import tempfile
import time

from tornado import httputil, iostream

from .http1 import MAX_HEADER_FIELDS, Answer, TooManyHeaders, own_answer
from .logs import access_log, log
from .sending import ResponseWriter
from .uploads import UploadWatch
from .wsgi import BadRequest, BadResponse, FileWrapper

# Request bodies beyond this wait in a temporary file: even max_connections uploads at
# once then hold little memory (1000 x 64 KB = 64 MB at most).
_SPOOL_SIZE = 64 * 1024
_STREAM_HIGH_WATER = 1024 * 1024  # a streaming worker waits while this much is unsent
_WAIT_MARGIN = 5.0  # past --write-timeout, a worker stops waiting even if the loop did not
# A refused body is still read (and dropped) up to this much past --max-body-size and
# for this long: closing with unread data sends a reset, and a client still uploading
# (on Windows above all) then loses the 413/503 before it can read it.
_DRAIN_EXTRA = 16 * 1024 * 1024
_DRAIN_SECONDS = 10.0


class RequestTask(ResponseWriter, httputil.HTTPMessageDelegate):
    """One request on one connection: read on the loop, answered from a pool thread.

    ``container`` is the ``ThreadedWSGIContainer`` that made it: its pool runs ``run()``,
    and it builds the environ and the response head.
    """

    signon = None  # windows_auth.SignedOn: the user the handshake signed on

    def __init__(self, container, server_conn, request_conn) -> None:
        self.container = container
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.body = self.tornado_delegate = None
        self.body_size = self.status = self.sent_bytes = 0
        self.rejected = self.closed = self.headers_sent = self.close_when_done = False
        self.client = request_conn.context.remote_ip
        self.received = 0  # body bytes read, kept or not
        self.dispatched = False  # handed to a worker thread, which then owns the body
        self.upload = None  # an UploadWatch while the body is being read
        self.result = None  # the application's response until it is closed
        self.drop_body = False  # HEAD or 304 whose head write() sent
        self.released = False  # in_flight given back
        self.logged = self.stall_logged = False
        self.environ = None  # built on the loop when it looked for a static file
        self.on_loop = False  # run() is running on the loop (static_files.py): never wait

    # --- Event loop: reading the request -----------------------------------------------

    def headers_received(self, start_line, headers):
        container = self.container
        stream = self.server_conn.stream
        container.idle.pop(stream, None)
        self.started = time.perf_counter()
        self.start_line, self.headers = start_line, headers
        if stream.closed():
            # Evicted or closed while this request sat in the read buffer: never run it.
            self.rejected = True
            self.log_access(499, 0)
            return None
        if isinstance(headers, TooManyHeaders):
            return self.reject(431, "Request Header Fields Too Large",
                               f"More than {MAX_HEADER_FIELDS} header fields.\n")
        # The body's length as the connection reads it (http1.py), or the answer instead.
        length = self.request_conn.framing(start_line, headers)
        answer = length if type(length) is Answer else own_answer(start_line, headers)
        if answer is not None:
            return self.reject(*answer)
        route = container.tornado_paths and container.tornado_paths.match(start_line.path.partition("?")[0])
        options = container.options
        if container.in_flight >= container.capacity or container.shutting_down:
            container.queue.refused += 1  # pressure the queue could not hold (overload rule)
            return self.reject(503, "Service Unavailable",
                               "The server is busy; please retry shortly.\n", {"Retry-After": "5"})
        if length > options.max_body_size:
            return self.reject(413, "Content Too Large",
                               f"Request body larger than {options.max_body_size} bytes.\n")
        head_size = len(start_line.path) + sum(len(k) + len(v) + 4 for k, v in headers.get_all())
        if head_size > options.max_header_size:
            return self.reject(431, "Request Header Fields Too Large",
                               f"Request headers larger than {options.max_header_size} bytes.\n")
        # Whenever a body may be read at all: so were the two readings ever to differ, the
        # body would still be held to the rate and the deadline.
        if length or "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0":
            self.watch_body(options.body_timeout)
        if route:
            return self.to_tornado(start_line, headers, length)
        return None

    def to_tornado(self, start_line, headers, length: int):
        """Hand a TORNADO_ROUTES request, checked as any, to Tornado; its body held to the route's limit."""
        limit = self.container.tornado_app.body_limit(start_line.path.partition("?")[0])
        if length > limit or (limit == 0 and "Transfer-Encoding" in headers):
            return self.reject(413, "Content Too Large", f"Request body larger than {limit} bytes.\n")
        self.request_conn.set_max_body_size(limit)  # a chunked body past it is cut off
        self.tornado_delegate = self.container.tornado_app.start_request(self.server_conn, self.request_conn)
        return self.tornado_delegate.headers_received(start_line, headers)

    def data_received(self, chunk: bytes):
        self.received += len(chunk)
        if self.tornado_delegate is not None:
            return self.tornado_delegate.data_received(chunk)
        if self.rejected:
            return None
        self.body_size += len(chunk)
        if self.body_size > self.container.options.max_body_size:
            self.discard_body()
            return self.reject(413, "Content Too Large", "Request body too large.\n")
        if self.body is None:
            self.body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_SIZE)
        self.body.write(chunk)
        return None

    def finish(self) -> None:
        self.unwatch_body()
        if self.tornado_delegate is not None:
            self.tornado_delegate.finish()
            return
        if self.rejected or self.server_conn.stream.closed():
            # A refused body has been read to its end; its answer closes the connection.
            # A request read from the buffer of a closed connection is dropped unrun.
            if not self.rejected:
                self.log_access(499, 0)
            self.discard_body()
            if not self.server_conn.stream.closed():
                self.request_conn.finish()
            return
        if self.container.signon is None or not self.container.signon.holds(self):
            self.dispatch()  # else windows_auth.py answers, or dispatches once signed on

    def dispatch(self) -> None:
        self.dispatched = True
        self.container.in_flight += 1
        self.container.responding.add(self)
        # Tornado tells the delegate of a closed connection only while reading the request.
        self.request_conn.set_close_callback(self.client_gone)
        self.unsent = collections.deque()
        self.unsent_bytes = 0
        static = self.container.static
        if static is not None and self.start_line.method in ("GET", "HEAD") \
                and "Range" not in self.headers and static.may_answer(self.start_line.path):
            try:
                self.environ = self.container.environ(self)
            except BadRequest:
                pass  # the thread answers 400, as for any request
            else:
                if static.answers(self.environ):
                    self.on_loop = True
                    self.run()  # WhiteNoise's answer: no thread hop (static_files.py)
                    return
        self.container.to_threads(self)

    def gone(self) -> bool:
        """The client has left; safe to ask from any thread."""
        return self.closed or self.server_conn.stream.closed()

    def shed(self, reason: str) -> None:
        """Answer a request the queue will not run: 503 past its deadline, nothing if gone."""
        if reason == "client gone":
            self.abort(499)
            return
        body = b"The server is busy; please retry shortly.\n"
        head = self.plain_head(body, {"Retry-After": "5"})
        if self.start_line.method == "HEAD":
            body = b""
        self.discard_body()
        self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"), head, body)

    def on_connection_close(self) -> None:
        self.closed = True
        self.unwatch_body()
        if not self.dispatched:
            self.discard_body()  # the client left mid-upload: delete the temporary file now
        if self.tornado_delegate is not None:
            self.tornado_delegate.on_connection_close()

    def watch_body(self, seconds: float) -> None:
        """Hold the body to --min-body-rate and to a deadline ``seconds`` from now."""
        if self.upload is None:
            self.upload = UploadWatch(self, seconds)
        else:
            self.upload.shorten(seconds)

    def unwatch_body(self) -> None:
        if self.upload is not None:
            self.upload.stop()

    def discard_body(self) -> None:
        if self.body is not None:
            self.body.close()
            self.body = None

    def body_too_large(self) -> None:
        """The connection found a declared chunk past the limit (http1.py)."""
        if not self.rejected and self.tornado_delegate is None:
            self.reject(413, "Content Too Large", "Request body too large.\n")

    def plain_head(self, body: bytes, extra: dict) -> httputil.HTTPHeaders:
        """The head of a short text answer the server writes itself."""
        return httputil.HTTPHeaders({"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
                                     "Date": self.container.http_date(), **extra})

    def reject(self, code: int, reason: str, text: str, extra: dict | None = None) -> None:
        """Answer at once from the loop (nothing reaches Django) and close the connection."""
        self.rejected = True
        if code in (413, 431, 503):
            self.container.metrics.count("shed queue full" if code == 503 else f"rejected {code}")
        body = text.encode()
        # The connection then closes after this answer, whatever the request asked.
        head = self.plain_head(body, {"Connection": "close", **(extra or {})})
        if self.start_line.method == "HEAD":
            body = b""
        self.request_conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), head, body)
        self.log_access(code, len(body))
        if not self.drain_body():
            self.unwatch_body()
            self.request_conn.finish()
        return None

    def drain_body(self) -> bool:
        """Let the rest of a refused body be read and dropped; finish() then closes."""
        headers = self.headers
        if self.received == 0 and headers.get("Expect", "").lower() == "100-continue":
            return False  # the client waits for a go-ahead and sends nothing now
        if isinstance(headers, TooManyHeaders):
            return False
        limit = self.container.options.max_body_size + _DRAIN_EXTRA
        length = self.request_conn.framing(self.start_line, headers)
        if type(length) is Answer or length == 0 or length > limit:
            return False  # no body, or one that cannot be read
        self.request_conn.set_max_body_size(limit)
        self.watch_body(_DRAIN_SECONDS)  # also when the refusal came mid-body
        return True

    # --- Worker thread: running the application ----------------------------------------

    def run(self) -> None:
        container = self.container
        response: list = []  # [status, headers] once start_response has been called
        method = self.start_line.method

        def start_response(status, headers, exc_info=None):
            if exc_info is not None:
                try:
                    if self.headers_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif response:
                raise AssertionError("start_response was already called")
            response[:] = [status, headers]
            return write

        def write(data: bytes) -> None:
            # PEP 3333: write() sends (the head first) before it returns, so its data is
            # committed: a later start_response(..., exc_info) re-raises instead of
            # putting an error page after it.
            if not response:
                raise AssertionError("write() called before start_response")
            if type(data) is not bytes:
                raise TypeError(f"write() takes bytes, not {type(data).__name__}")
            if data:
                if not self.headers_sent:
                    self.begin_stream(response, method)
                self.push(None, None, data)

        handed_over = False
        try:
            environ = self.environ if self.environ is not None else container.environ(self)
            application = container.static.handler if self.on_loop else container.application
            self.result = application(environ, start_response)
            result = self.result
            if not self.headers_sent and (
                isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False
            ):
                body = b"".join(result)
                if not self.headers_sent:
                    if not response:
                        raise BadResponse("the application did not call start_response")
                    start_line, head, no_body = container.formatted_head(
                        *response, body_length=len(body), method=method
                    )
                    if no_body or method == "HEAD":
                        body = b""
                    self.close_result()
                    container.call_on_loop(self.send_whole, start_line, head, body)
                    return
                self.push(None, None, body)  # write() was called while the body was joined
                self.end_stream()
            else:
                self.stream(self.result, response, method)
        except BadRequest as exc:  # raised by environ(), before the application ran
            container.call_on_loop(self.send_whole, *container.bad_request(str(exc), method))
        except BaseException as exc:  # SystemExit too: the client gets an answer, the slot back
            self.close_result()
            if self.on_loop and not self.headers_sent and isinstance(exc, Exception):
                # Never Django's error handling (500 page, error mail) on the loop: a thread's.
                self.on_loop, self.environ, handed_over = False, None, True
                container.to_threads(self)
                return
            self.fail(exc, method)
        finally:
            if self.body is not None and not handed_over:
                self.body.close()

    def fail(self, exc: BaseException, method: str) -> None:
        path = self.start_line.path
        if not isinstance(exc, Exception):
            log.error("%s raised while handling %s %s", type(exc).__name__, method, path,
                      exc_info=exc)
        if isinstance(exc, iostream.StreamClosedError) or self.closed:
            self.container.call_on_loop(self.abort, 499)
        elif self.headers_sent:
            if isinstance(exc, Exception):
                log.error("Error while streaming %s %s; connection closed", method, path,
                          exc_info=exc)
            self.container.call_on_loop(self.abort, self.status)
        else:
            if isinstance(exc, BadResponse):
                log.error("Bad response from the application for %s %s: %s", method, path, exc)
            elif isinstance(exc, Exception):
                log.error("Error handling %s %s", method, path, exc_info=exc)
            self.container.call_on_loop(self.send_error)

    def close_result(self) -> None:
        """The response's close(), once, on this thread: Django's request_finished closes
        the database connections of the thread that ran the view."""
        result, self.result = self.result, None
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException:
                log.exception("Error closing the response for %s", self.start_line.path)

    def stream(self, result, response, method) -> None:
        """Send an iterable response as it is produced, waiting on a slow client."""
        if isinstance(result, FileWrapper) and response and not self.headers_sent:
            left = result.bytes_left()
            if left is not None and left > result.block_size:
                self.send_file_from_loop(result, response, method)
                return
        iterator = iter(result)
        first = b""
        if not self.headers_sent:
            # Files come whole when they fit in one block: one wake-up, as for HttpResponse.
            for chunk in iterator:
                if chunk or self.headers_sent:
                    first = chunk
                    break
        if self.headers_sent:  # write() sent the head while the first part was made
            if first:
                self.push(None, None, first)
        else:
            if not response:
                raise BadResponse("the application did not call start_response")
            later = []
            whole = False
            if isinstance(result, FileWrapper) and len(first) < result.block_size:
                # A short read is the end of a regular file, but not of a pipe or socket.
                rest = next(iterator, b"")
                if rest:
                    later.append(rest)
                else:
                    whole = True
            if whole:  # one wake-up and a head made here, as for an HttpResponse
                start_line, head, no_body = self.container.formatted_head(
                    *response, body_length=len(first), method=method
                )
            else:
                start_line, head, no_body = self.container.response_head(
                    *response, body_length=None, method=method
                )
            self.status = start_line.code
            if no_body or method == "HEAD" or whole:
                self.close_result()
                self.container.call_on_loop(self.send_whole, start_line, head,
                                            first if whole and not no_body and method != "HEAD" else b"")
                return
            self.begin_stream(response, method, start_line, head)
            self.push(None, None, first)
            iterator = itertools.chain(later, iterator)
        for chunk in iterator:
            self.app_since = time.monotonic()  # progress: the watchdog counts from here
            if self.closed:
                break
            if chunk:
                self.push(None, None, chunk)
        self.end_stream()

    def begin_stream(self, response, method, start_line=None, head=None) -> None:
        """Send the head of a response whose length is not known; its body follows in push()."""
        if start_line is None:
            start_line, head, no_body = self.container.response_head(
                *response, body_length=None, method=method
            )
            self.status = start_line.code
            self.drop_body = no_body or method == "HEAD"
        if self.start_line.version == "HTTP/1.0" and "Content-Length" not in head:
            # HTTP/1.0 has no chunked encoding: the body ends when the connection does.
            head["Connection"] = "close"
        self.headers_sent = True
        self.push(start_line, head, b"")

    def end_stream(self) -> None:
        self.close_result()
        if self.closed:
            raise iostream.StreamClosedError()
        # What is still unsent is the loop's to deliver (the write timeout bounds it): the
        # thread is free as soon as the last part is handed over.
        self.container.call_on_loop(self.finish_stream)

    def push(self, start_line, head, data: bytes) -> None:
        if self.closed:
            raise iostream.StreamClosedError()
        if self.drop_body and start_line is None:
            return
        done = concurrent.futures.Future()
        self.container.call_on_loop(self.write_part, start_line, head, data, done)
        self.unsent.append((done, len(data)))
        self.unsent_bytes += len(data)
        # A trickling stream (server-sent events) never reaches the high-water mark: the
        # close callback (client_gone) is what stops it once its client is gone.
        while self.unsent and (self.unsent_bytes > _STREAM_HIGH_WATER or self.unsent[0][0].done()):
            future, size = self.unsent.popleft()
            if self.unsent_bytes > _STREAM_HIGH_WATER:
                if self.on_loop:  # only the loop can resolve the future: waiting would hang it
                    raise BadResponse("a static file outgrew its size while the event loop sent it")
                self.wait_written(future)  # raises StreamClosedError if the client went away
            self.unsent_bytes -= size

    def wait_written(self, future: concurrent.futures.Future) -> None:
        """Wait while the client reads; the loop's WriteWatch ends a stall, this is a backstop."""
        timeout = self.container.options.write_timeout
        self.app_since = None  # waiting on the client, not stuck in the application
        try:
            while True:
                try:
                    return future.result(timeout=timeout)
                except concurrent.futures.TimeoutError:
                    if self.watch.idle_for() > timeout + _WAIT_MARGIN:
                        self.container.call_on_loop(self.stalled)
                        raise iostream.StreamClosedError() from None
        finally:
            self.app_since = time.monotonic()

    def send_file_from_loop(self, result: FileWrapper, response, method) -> None:
        """Hand a large regular file to the event loop; this thread is free at once."""
        start_line, head, no_body = self.container.response_head(
            *response, body_length=None, method=method
        )
        self.status = start_line.code
        if no_body or method == "HEAD":
            self.close_result()
            self.container.call_on_loop(self.send_whole, start_line, head, b"")
            return
        fd, position = result.duplicate()
        try:
            # close() here, on the thread that ran the view, not later on the loop: Django's
            # request_finished closes this thread's database connections. The loop reads
            # from its own descriptor of the file.
            self.close_result()
            os.lseek(fd, position, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        length = head.get("Content-Length")
        if self.start_line.version == "HTTP/1.0" and length is None:
            head["Connection"] = "close"
        self.headers_sent = True
        self.container.call_on_loop(self.send_file, start_line, head, fd,
                                    int(length) if length is not None else None)

    def log_access(self, status: int, size: int) -> None:
        self.container.metrics.request_done(self.start_line.method, status, time.perf_counter() - self.started)
        if self.container.options.access_log:
            line = self.start_line
            access_log.info(
                '%s "%s %s %s" %d %d %.1fms', self.client, line.method,
                line.path, line.version, status, size, (time.perf_counter() - self.started) * 1000,
            )

