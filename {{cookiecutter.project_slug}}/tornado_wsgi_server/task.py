"""One request on one connection: read on the event loop, answered from a pool thread.

A RequestTask enforces the limits while reading (503, 413, 431), calls the application on a
worker thread and sends its response whole or streamed with backpressure, from the loop.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import tempfile
import time

from tornado import httputil, iostream

from .logs import access_log, log
from .wsgi import BadResponse, FileWrapper

_SPOOL_SIZE = 1024 * 1024  # request bodies beyond this wait on disk, not in memory
_STREAM_HIGH_WATER = 1024 * 1024  # a streaming worker waits while this much is unsent
# A refused body is still read (and dropped) up to this much past --max-body-size and
# for this long: closing with unread data sends a reset, and a client still uploading
# (on Windows above all) then loses the 413/503 before it can read it.
_DRAIN_EXTRA = 16 * 1024 * 1024
_DRAIN_SECONDS = 10.0


class RequestTask(httputil.HTTPMessageDelegate):
    """One request on one connection: read on the loop, answered from a pool thread.

    ``container`` is the ``ThreadedWSGIContainer`` that made it: its pool runs ``run()``,
    and it builds the environ and the response head.
    """

    def __init__(self, container, server_conn, request_conn) -> None:
        self.container = container
        self.server_conn = server_conn
        self.request_conn = request_conn
        self.body = None
        self.body_size = 0
        self.rejected = False
        self.closed = False
        self.tornado_delegate = None
        self.headers_sent = False
        self.client = request_conn.context.remote_ip
        self.status = 0
        self.sent_bytes = 0
        self.close_when_done = False

    # --- Event loop: reading the request -----------------------------------------------

    def headers_received(self, start_line, headers):
        container = self.container
        container.idle.pop(self.server_conn.stream, None)
        self.started = time.perf_counter()
        self.start_line, self.headers = start_line, headers
        if container.tornado_paths is not None and container.tornado_paths.match(
            start_line.path.partition("?")[0]
        ):
            self.tornado_delegate = container.tornado_app.start_request(
                self.server_conn, self.request_conn
            )
            return self.tornado_delegate.headers_received(start_line, headers)
        options = container.options
        if container.in_flight >= container.capacity or container.shutting_down:
            return self.reject(503, "Service Unavailable",
                               "The server is busy; please retry shortly.\n", {"Retry-After": "5"})
        length = headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) > options.max_body_size:
            return self.reject(413, "Content Too Large",
                               f"Request body larger than {options.max_body_size} bytes.\n")
        head_size = len(start_line.path) + sum(len(k) + len(v) + 4 for k, v in headers.get_all())
        if head_size > options.max_header_size:
            return self.reject(431, "Request Header Fields Too Large",
                               f"Request headers larger than {options.max_header_size} bytes.\n")
        return None

    def data_received(self, chunk: bytes):
        if self.tornado_delegate is not None:
            return self.tornado_delegate.data_received(chunk)
        if self.rejected:
            return None
        self.body_size += len(chunk)
        if self.body_size > self.container.options.max_body_size:
            if self.body is not None:
                self.body.close()
                self.body = None
            return self.reject(413, "Content Too Large", "Request body too large.\n")
        if self.body is None:
            self.body = tempfile.SpooledTemporaryFile(max_size=_SPOOL_SIZE)
        self.body.write(chunk)
        return None

    def finish(self) -> None:
        if self.tornado_delegate is not None:
            self.tornado_delegate.finish()
            return
        if self.rejected:
            # A refused body has been read to its end: close once the answer is out.
            stream = self.server_conn.stream
            self.request_conn.finish()
            if not stream.closed():
                stream.write(b"").add_done_callback(lambda _: stream.close())
            return
        self.container.in_flight += 1
        self.unsent = collections.deque()
        self.unsent_bytes = 0
        self.container.queue.put(self)

    def gone(self) -> bool:
        """The client has left; safe to ask from any thread."""
        return self.closed or self.server_conn.stream.closed()

    def shed(self, reason: str) -> None:
        """Answer a request the queue will not run: 503 past its deadline, nothing if gone."""
        if reason == "client gone":
            self.abort(499)
            return
        body = b"The server is busy; please retry shortly.\n"
        head = httputil.HTTPHeaders({
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Date": self.container.http_date(),
            "Retry-After": "5",
        })
        if self.start_line.method == "HEAD":
            body = b""
        if self.body is not None:
            self.body.close()
        self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 503, "Service Unavailable"), head, body)

    def on_connection_close(self) -> None:
        self.closed = True
        if self.tornado_delegate is not None:
            self.tornado_delegate.on_connection_close()

    def reject(self, code: int, reason: str, text: str, extra: dict | None = None) -> None:
        """Answer at once from the loop (nothing reaches Django) and close the connection."""
        self.rejected = True
        self.container.metrics.count("shed queue full" if code == 503 else f"rejected {code}")
        body = text.encode()
        head = httputil.HTTPHeaders({
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Date": self.container.http_date(),
            "Connection": "close",
            **(extra or {}),
        })
        if self.start_line.method == "HEAD":
            body = b""
        self.request_conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", code, reason), head, body)
        self.log_access(code, len(body))
        if not self.drain_body():
            self.request_conn.finish()
        return None

    def drain_body(self) -> bool:
        """Let the rest of a refused body be read and dropped; finish() then closes."""
        headers = self.headers
        if self.body_size == 0 and headers.get("Expect", "").lower() == "100-continue":
            return False  # the client waits for a go-ahead and sends nothing now
        limit = self.container.options.max_body_size + _DRAIN_EXTRA
        length = headers.get("Content-Length")
        if length is None:
            if "Transfer-Encoding" not in headers:
                return False  # no body
        elif not length.isdigit() or int(length) == 0 or int(length) > limit:
            return False
        self.request_conn.set_max_body_size(limit)
        self.request_conn.set_body_timeout(min(self.container.options.body_timeout, _DRAIN_SECONDS))
        return True

    # --- Worker thread: running the application ----------------------------------------

    def run(self) -> None:
        container = self.container
        response: list = []  # [status, headers] once start_response has been called
        written: list[bytes] = []  # data from the legacy write() callable

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
            return written.append

        method = self.start_line.method
        result = None
        try:
            result = container.application(container.environ(self), start_response)
            if isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False:
                body = b"".join(written) + b"".join(result)
                if not response:
                    raise BadResponse("the application did not call start_response")
                start_line, head, no_body = container.response_head(
                    *response, body_length=len(body), method=method
                )
                if no_body or method == "HEAD":
                    body = b""
                self._close_result(result)
                result = None
                container.call_on_loop(self.send_whole, start_line, head, body)
            else:
                self.stream(result, response, written, method)
        except Exception as exc:
            self._close_result(result)
            if isinstance(exc, iostream.StreamClosedError) or self.closed:
                container.call_on_loop(self.abort, 499)
            elif self.headers_sent:
                log.error("Error while streaming %s %s; connection closed",
                          method, self.start_line.path, exc_info=True)
                container.call_on_loop(self.abort, self.status)
            else:
                if isinstance(exc, BadResponse):
                    log.error("Bad response from the application for %s %s: %s",
                              method, self.start_line.path, exc)
                else:
                    log.error("Error handling %s %s", method, self.start_line.path, exc_info=True)
                container.call_on_loop(self.send_error)
        finally:
            if self.body is not None:
                self.body.close()

    def _close_result(self, result) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("Error closing the response for %s", self.start_line.path)

    def stream(self, result, response, written, method) -> None:
        """Send an iterable response as it is produced, waiting on a slow client."""
        iterator = iter(result)
        first = b"".join(written)
        if not first:
            # Files come whole when they fit in one block: one wake-up, as for HttpResponse.
            for chunk in iterator:
                if chunk:
                    first = chunk
                    break
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
        start_line, head, no_body = self.container.response_head(
            *response, body_length=len(first) if whole else None, method=method
        )
        self.status = start_line.code
        if no_body or method == "HEAD":
            self._close_result(result)
            self.container.call_on_loop(self.send_whole, start_line, head, b"")
            return
        if whole:
            self._close_result(result)
            self.container.call_on_loop(self.send_whole, start_line, head, first)
            return
        self.headers_sent = True
        # HTTP/1.0 has no chunked encoding: a body of unknown length ends when the
        # connection does, even if the client asked for keep-alive.
        self.close_when_done = (
            self.start_line.version == "HTTP/1.0" and "Content-Length" not in head
        )
        self.push(start_line, head, first)
        for chunk in itertools.chain(later, iterator):
            if self.closed:
                break
            if chunk:
                self.push(None, None, chunk)
        self._close_result(result)
        # Wait for the tail, so a failed write is seen here rather than lost.
        while self.unsent:
            self.unsent.popleft()[0].result()
        self.container.call_on_loop(self.finish_stream)

    def push(self, start_line, head, data: bytes) -> None:
        done = concurrent.futures.Future()
        self.container.call_on_loop(self.write_part, start_line, head, data, done)
        self.unsent.append((done, len(data)))
        self.unsent_bytes += len(data)
        # Also collect finished writes: a trickling stream (server-sent events) never
        # reaches the high-water mark, yet must stop soon once its client is gone.
        while self.unsent and (self.unsent_bytes > _STREAM_HIGH_WATER or self.unsent[0][0].done()):
            future, size = self.unsent.popleft()
            future.result()  # raises StreamClosedError if the client went away
            self.unsent_bytes -= size

    # --- Event loop: writing the response ----------------------------------------------

    def send_whole(self, start_line, head, body: bytes) -> None:
        try:
            self.request_conn.write_headers(start_line, head, body)
            self.request_conn.finish()
        except Exception:
            log.exception("Could not send the response for %s", self.start_line.path)
            self.request_conn.close()
        self.done(start_line.code, len(body))

    def send_error(self) -> None:
        body = b"Internal Server Error\n"
        head = httputil.HTTPHeaders({
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "Date": self.container.http_date(),
        })
        if self.start_line.method == "HEAD":
            body = b""
        self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 500, "Internal Server Error"), head, body)

    def write_part(self, start_line, head, data: bytes, done: concurrent.futures.Future) -> None:
        try:
            if start_line is not None:
                self.request_conn.write_headers(start_line, head, data)
            else:
                self.request_conn.write(data)
            # HTTP1Connection resolves only the future of its latest write, so with
            # several writes queued on a slow client the earlier ones never complete.
            # The stream's own futures resolve in order, once all before them is sent.
            written = self.request_conn.stream.write(b"")
            self.sent_bytes += len(data)
        except Exception as exc:
            done.set_exception(exc)
            return

        def copy_result(future) -> None:
            exc = future.exception()
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)

        written.add_done_callback(copy_result)

    def finish_stream(self) -> None:
        try:
            self.request_conn.finish()
        except Exception:
            log.exception("Response for %s did not match its Content-Length", self.start_line.path)
            self.request_conn.close()
        else:
            if self.close_when_done:
                stream = self.server_conn.stream
                if not stream.closed():
                    stream.write(b"").add_done_callback(lambda _: stream.close())
        self.done(self.status, self.sent_bytes)

    def abort(self, status: int) -> None:
        self.request_conn.close()
        self.done(status, self.sent_bytes)

    def done(self, status: int, size: int) -> None:
        self.container.in_flight -= 1
        self.log_access(status, size)

    def log_access(self, status: int, size: int) -> None:
        self.container.metrics.request_done(self.start_line.method, status, time.perf_counter() - self.started)
        if self.container.options.access_log:
            line = self.start_line
            access_log.info(
                '%s "%s %s %s" %d %d %.1fms', self.client, line.method,
                line.path, line.version, status, size, (time.perf_counter() - self.started) * 1000,
            )

