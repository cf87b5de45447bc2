"""Keeping request bodies moving: each upload must average --min-body-rate over every
--body-rate-window and end within its deadline (--body-timeout, or less for a refused body
being drained), or its connection is closed. Watched uploads are evictable at the limit.
"""

from __future__ import annotations


class UploadWatch:
    """Watches the body of one RequestTask from the event loop; ``stop()`` when it is read."""

    def __init__(self, task, seconds: float) -> None:
        self.task = task
        self.container = task.container
        self.stream = task.server_conn.stream
        now = self.container.loop.time()
        self.started = self.window_started = now
        self.window_received = task.received
        self.deadline = now + seconds
        self.timer = None
        self.stopped = False
        self.container.uploads[self.stream] = self  # see ThreadedWSGIContainer.evict_upload
        self._arm()

    @property
    def received(self) -> int:
        return self.task.received

    @property
    def client(self) -> str:
        return self.task.client

    def shorten(self, seconds: float) -> None:
        """Bring the deadline forward to ``seconds`` from now (never later)."""
        deadline = self.container.loop.time() + seconds
        if not self.stopped and deadline < self.deadline:
            self.deadline = deadline
            self._arm()

    def stop(self) -> None:
        self.stopped = True
        if self.timer is not None:
            self.container.loop.remove_timeout(self.timer)
            self.timer = None
        self.container.uploads.pop(self.stream, None)

    def _arm(self) -> None:
        loop = self.container.loop
        if self.timer is not None:
            loop.remove_timeout(self.timer)
        window_end = self.window_started + self.container.options.body_rate_window
        self.timer = loop.call_at(min(window_end, self.deadline), self._check)

    def _check(self) -> None:
        self.timer = None
        if self.stream.closed():
            self.stop()
            return
        container, options = self.container, self.container.options
        now = container.loop.time()
        if now >= self.deadline:
            container.note(self.client, "timeout", "Closing uploads from %s: body not complete "
                           "in time (%d bytes in %.0fs)", self.client, self.received, now - self.started)
            self.stream.close()
            return
        window = now - self.window_started
        if window >= options.body_rate_window:
            if self.received - self.window_received < options.min_body_rate * window:
                container.note(self.client, "slow", "Closing uploads from %s: slower than %d bytes/s",
                               self.client, options.min_body_rate)
                self.stream.close()
                return
            self.window_started, self.window_received = now, self.received
        self._arm()
