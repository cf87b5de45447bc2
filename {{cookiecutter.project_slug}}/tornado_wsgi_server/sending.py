"""Writing responses from the event loop without trusting the client to read them.

``ResponseWriter`` (RequestTask's loop side) sends heads and bodies; ``WriteWatch`` closes a
connection whose response makes no progress (not one 64 KB slice taken by the kernel) for
``--write-timeout`` seconds; ``FileSender`` sends a regular file from the loop, block by block
(read by ``FileReader``'s threads).
"""

from __future__ import annotations

import concurrent.futures
import os
import queue
import threading
import time
from collections.abc import Callable

from tornado import httputil, iostream
from tornado.concurrent import Future

from .logs import log

WRITE_SLICE = 64 * 1024  # the unit of progress, and of a file read for the loop
_FILE_BLOCKS_QUEUED = 2  # a file's blocks waiting for the kernel: its memory per connection


class WriteWatch:
    """Watches the write futures of one response; ``on_stall()`` or ``on_slow(rate)`` runs
    at most once.

    Each future given to ``track()`` resolves once its data is in the kernel. While one is
    pending, the resolution of any of them counts as progress; none for ``timeout`` seconds
    is a stall. While data waits without a break, the kernel must also take ``min_rate``
    bytes per second on average over each ``window`` seconds (``stream``'s count of bytes
    written), or the client is too slow. A trickling stream with nothing queued is neither.
    """

    def __init__(self, loop, timeout: float, on_stall: Callable[[], None], stream=None,
                 min_rate: int = 0, window: float = 0.0, on_slow: Callable[[float], None] | None = None) -> None:
        self.loop = loop
        self.timeout = timeout
        self.on_stall = on_stall
        self.stream = stream
        self.min_rate = min_rate if stream is not None and on_slow is not None else 0
        self.window = window
        self.on_slow = on_slow
        self.pending = 0
        self.last_progress = time.monotonic()
        self.window_started = self.last_progress
        self.window_sent = 0
        self.timer = None
        self.stalled = False
        self.on_drained = None  # called once when nothing waits any more, if set

    def track(self, future) -> None:
        if future.done():
            return
        if self.pending == 0:
            self.last_progress = self.window_started = time.monotonic()
            self.window_sent = self._sent()
        self.pending += 1
        future.add_done_callback(self._progress)
        if self.timer is None and not self.stalled:
            self.timer = self.loop.call_later(self._next_check(0.0, self.last_progress), self._check)

    def _sent(self) -> int:
        """Bytes of this connection the kernel has taken so far."""
        return self.stream._total_write_done_index if self.min_rate else 0

    def _next_check(self, idle: float, now: float) -> float:
        delay = self.timeout - idle
        if self.min_rate:
            delay = min(delay, self.window_started + self.window - now)
        return max(delay, 0.0)

    def idle_for(self) -> float:
        """Seconds without progress while data waits (0 when nothing waits); any thread."""
        return time.monotonic() - self.last_progress if self.pending else 0.0

    def _progress(self, future) -> None:
        self.pending -= 1
        self.last_progress = time.monotonic()
        if not self.pending and self.on_drained is not None:
            drained, self.on_drained = self.on_drained, None
            drained()

    def _check(self) -> None:
        self.timer = None
        if not self.pending or self.stalled:
            return
        idle = self.idle_for()
        if idle >= self.timeout:
            self.stalled = True
            self.on_stall()
            return
        now = time.monotonic()
        elapsed = now - self.window_started
        if self.min_rate and elapsed >= self.window:
            sent = self._sent() - self.window_sent
            if sent < self.min_rate * elapsed:
                self.stalled = True
                self.on_slow(sent / elapsed)
                return
            self.window_started, self.window_sent = now, sent + self.window_sent
        self.timer = self.loop.call_later(self._next_check(idle, now), self._check)


class _Unwatched:
    """The watch of a response whose writes the kernel has taken at once, as most are:
    a WriteWatch is made at the first write that waits. (Each one ties its request into
    a reference cycle that only the garbage collector would free.)"""

    pending = 0

    @staticmethod
    def idle_for() -> float:
        return 0.0


UNWATCHED = _Unwatched()


class FileReader:
    """Reads file blocks for the loop on a few threads of its own (not Django's), so a slow
    disk or network share delays only the files being sent, never the loop. Its threads are
    daemons: a read that never returns (a share gone away) cannot keep the process alive."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.started = 0
        self.lock = threading.Lock()

    def read(self, fd: int, size: int, deliver: Callable, call_on_loop: Callable) -> None:
        """Read up to ``size`` bytes of ``fd``; then ``deliver(block, error)`` on the loop."""
        if self.started < self.threads:
            with self.lock:
                if self.started < self.threads:
                    self.started += 1
                    threading.Thread(target=self._work, name=f"file_read_{self.started}",
                                     daemon=True).start()
        self.jobs.put((fd, size, deliver, call_on_loop))

    def _work(self) -> None:
        while True:
            fd, size, deliver, call_on_loop = self.jobs.get()
            try:
                block, error = os.read(fd, size), None
            except Exception as exc:
                block, error = b"", exc
            call_on_loop(deliver, block, error)


FILE_READER = FileReader(threads=4)


class FileSender:
    """Sends ``limit`` bytes (None: up to the end) of the open file ``fd`` from the loop.

    ``write(block)`` returns a future resolved once the block is in the kernel; the next
    block is read only then, so a client that does not read costs two blocks of memory and
    no thread. ``fd`` is closed at the end; ``done(error)`` runs once (error None: all sent).
    Blocks are read one at a time by ``FILE_READER``, off the loop; ``call_on_loop`` brings
    each back.
    """

    def __init__(self, fd: int, limit: int | None, write: Callable, done: Callable,
                 call_on_loop: Callable) -> None:
        self.fd = fd
        self.left = limit
        self.write = write
        self.done = done
        self.call_on_loop = call_on_loop
        self.queued = 0
        self.reading = False  # a read of fd is under way: fd stays open until it ends
        self.at_end = False
        self.finished = False

    def start(self) -> None:
        self._fill()

    def _fill(self) -> None:
        if self.finished or self.reading:
            return
        size = WRITE_SLICE if self.left is None else min(WRITE_SLICE, self.left)
        if not size:
            self.at_end = True
        if self.at_end:
            if not self.queued:
                self._end(None)
            return
        if self.queued < _FILE_BLOCKS_QUEUED:
            self.reading = True
            FILE_READER.read(self.fd, size, self._block_read, self.call_on_loop)

    def _block_read(self, block: bytes, error: BaseException | None) -> None:
        self.reading = False
        if self.finished:  # ended while the block was being read: the descriptor is ours to close
            os.close(self.fd)
            return
        if error is None and block:
            if self.left is not None:
                self.left -= len(block)
            try:
                future = self.write(block)
            except Exception as exc:  # a closed connection: end it either way
                error = exc
            else:
                self.queued += 1
                future.add_done_callback(self._written)
        elif error is None:
            self.at_end = True
        if error is not None:
            self._end(error)
        else:
            self._fill()

    def _written(self, future) -> None:
        self.queued -= 1
        if self.finished:
            return
        error = future.exception()
        if error is not None:
            self._end(error)
        else:
            self._fill()

    def _end(self, error: BaseException | None) -> None:
        if self.finished:
            return
        self.finished = True
        if not self.reading:
            os.close(self.fd)
        self.done(error)


class ResponseWriter:
    """The event-loop half of a RequestTask: writing its response, then ``done()`` once.

    ``done()`` gives the request's place in ``in_flight`` back (``release()`` may do so
    earlier, when the loop sends a file on its own) and writes the access-log line.
    ``time_out()`` (the watchdog) answers for an application that is stuck; from then on
    whatever the worker sends is dropped, and the place is given back only when
    ``thread_returned()`` says the thread is free again.
    """

    watch = UNWATCHED  # a WriteWatch from the first write the kernel did not take at once
    head_out = False  # a response head has been written (loop side)
    timed_out = False  # marked by the queue's overdue(), under its lock
    cut_off = False  # the watchdog answered: later parts from the worker are dropped
    stuck = False  # cut off while its thread still runs the application

    def write_head(self, start_line, head, body: bytes = b"") -> None:
        if head.get("Connection") == "close":
            self.close_when_done = True  # http1.py also keeps a 1.0 client from "Keep-Alive"
        self.head_out = True
        self.request_conn.write_headers(start_line, head, body)
        if self.request_conn.stream.writing():  # the kernel did not take it all at once
            self.track_written()

    def write_body(self, data) -> Future:
        """Write ``data`` in slices the WriteWatch can see go; the future of the last one."""
        view = memoryview(data)
        future = None
        for offset in range(0, len(view), WRITE_SLICE):
            self.request_conn.write(view[offset:offset + WRITE_SLICE])
            future = self.track_written()
        self.sent_bytes += len(view)
        return future if future is not None else self.track_written()

    def track_written(self):
        # HTTP1Connection resolves only the future of its latest write, so with several
        # writes queued on a slow client the earlier ones never complete. The stream's
        # own futures resolve in order, once all before them is sent.
        try:
            future = self.request_conn.stream.write(b"")
        except iostream.StreamClosedError as exc:  # the client left: not worth a traceback
            future = Future()
            future.set_exception(exc)
            future.exception()  # looked at: asyncio would warn about it otherwise
            return future
        if not future.done():
            if self.watch is UNWATCHED:
                container, options = self.container, self.container.options
                self.watch = WriteWatch(container.loop, options.write_timeout, self.stalled,
                                        self.request_conn.stream, options.min_send_rate,
                                        options.body_rate_window, self.too_slow)
            self.watch.track(future)
        return future

    def send_whole(self, start_line, head, body: bytes) -> None:
        if self.cut_off:
            return  # a late answer: its client already has the 504
        self.status = start_line.code
        try:
            self.write_head(start_line, head, body[:WRITE_SLICE])
            if len(body) > WRITE_SLICE:
                self.write_body(memoryview(body)[WRITE_SLICE:])
            self.request_conn.finish()
            self.close_after_response()
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
        if self.container.shutting_down:
            head["Connection"] = "close"
        if self.start_line.method == "HEAD":
            body = b""
        self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 500, "Internal Server Error"), head, body)

    def write_part(self, start_line, head, data: bytes, done: concurrent.futures.Future) -> None:
        if self.cut_off:
            done.set_exception(iostream.StreamClosedError())  # the worker must not wait on it
            return
        try:
            if start_line is not None:
                self.write_head(start_line, head, b"")
            written = self.write_body(data)
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

    def send_file(self, start_line, head, fd: int, limit: int | None) -> None:
        if self.cut_off:
            os.close(fd)
            return
        self.release()  # no thread is held from here on
        try:
            self.write_head(start_line, head, b"")
        except Exception:
            os.close(fd)
            log.exception("Could not send the response for %s", self.start_line.path)
            self.abort(start_line.code)
            return
        self.container.sending += 1
        FileSender(fd, limit, self.write_body, self.file_sent, self.container.call_on_loop).start()

    def file_sent(self, error: BaseException | None) -> None:
        self.container.sending -= 1
        if error is None:
            self.finish_stream()
            return
        if not isinstance(error, iostream.StreamClosedError):
            log.error("Could not send the file for %s", self.start_line.path, exc_info=error)
        self.abort(499 if self.request_conn.stream.closed() else self.status)

    def finish_stream(self) -> None:
        if self.cut_off:
            return
        if self.request_conn.stream.closed():
            self.abort(499)
            return
        try:
            self.request_conn.finish()
        except Exception:
            log.exception("Response for %s did not match its Content-Length", self.start_line.path)
            self.request_conn.close()
        else:
            self.close_after_response()
        self.done(self.status, self.sent_bytes)

    def close_after_response(self) -> None:
        """Close once the response is out, as its head said (Tornado would keep it open)."""
        if self.close_when_done:
            stream = self.server_conn.stream
            if not stream.closed():
                stream.write(b"").add_done_callback(lambda _: stream.close())

    def stalled(self) -> None:
        """The client has not taken any of the response for --write-timeout seconds."""
        if self.stall_logged or self.cut_off:
            return
        self.stall_logged = True
        self.closed = True
        log.warning("Closed the connection of %s: it read nothing of the response to %s %s for %gs",
                    self.client, self.start_line.method, self.start_line.path,
                    self.container.options.write_timeout)
        self.request_conn.close()

    def too_slow(self, rate: float) -> None:
        """The client took the response slower than --min-send-rate over a window."""
        if self.stall_logged or self.cut_off:
            return
        self.stall_logged = True
        self.closed = True
        self.container.note(self.client, "slow-reader", "Closed the connection of %s: it took the "
                            "response to %s %s at %.0f bytes/s, slower than --min-send-rate (%d)",
                            self.client, self.start_line.method, self.start_line.path, rate,
                            self.container.options.min_send_rate)
        self.request_conn.close()

    def evict(self) -> None:
        """Closed to make room at the connection limit; the container has logged why."""
        self.stall_logged = True  # no second line about the same client
        self.closed = True
        self.request_conn.close()

    def client_gone(self) -> None:
        self.closed = True

    def abort(self, status: int) -> None:
        if self.cut_off:
            return  # closing now could cut the 504 short
        self.request_conn.close()
        self.done(status, self.sent_bytes)

    def time_out(self) -> str:
        """The application has been stuck past --request-timeout: 504 if no head is out yet,
        else close the connection; the worker's later calls are dropped from now on.
        Returns what the client got."""
        self.stuck = True  # its thread is still busy: keep its place in in_flight
        self.closed = True  # the worker's next push() raises and its stream ends there
        if self.request_conn.stream.closed():
            outcome = "its client had already left"
            self.abort(499)
        elif self.head_out:
            outcome = "closed its connection mid-response"
            self.abort(self.status)
        else:
            outcome = "answered 504"
            body = b"The server took too long to answer this request.\n"
            head = httputil.HTTPHeaders({
                "Content-Type": "text/plain; charset=utf-8",
                "Content-Length": str(len(body)),
                "Date": self.container.http_date(),
                "Connection": "close",
            })
            self.send_whole(httputil.ResponseStartLine("HTTP/1.1", 504, "Gateway Timeout"), head,
                            b"" if self.start_line.method == "HEAD" else body)
        self.cut_off = True
        return outcome

    def thread_returned(self) -> None:
        """The thread of a request cut off by time_out() is free again."""
        self.stuck = False
        self.release()

    def left_responding(self) -> None:
        self.container.responding.discard(self)

    def release(self) -> None:
        """This request no longer holds a thread or waits for one."""
        if not self.released and not self.stuck:
            self.released = True
            self.container.in_flight -= 1

    def done(self, status: int, size: int) -> None:
        self.release()
        if self.watch.pending and not self.request_conn.stream.closed():
            # Its client has not taken all of it yet: evictable until it has, whole
            # responses and a stream's tail alike (container.evict_stalled_reader).
            self.watch.on_drained = self.left_responding
        else:
            self.container.responding.discard(self)
        if not self.logged:
            self.logged = True
            self.log_access(status, size)
