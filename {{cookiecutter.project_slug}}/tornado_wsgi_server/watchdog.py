"""The stuck-request watchdog: a request whose application makes no progress for
``--request-timeout`` seconds is answered 504 (or its connection closed), its late answer is
dropped, and one WARNING shows the stuck thread's stack. Its thread stays counted as busy
until it returns; when every thread is stuck, the process asks to be replaced.
"""

from __future__ import annotations

import sys
import time
import traceback

from . import worker_link
from .logs import log

# A worker whose replacement failed (the new code does not start) asks again this much later.
ASK_AGAIN_AFTER = 60.0


class Watchdog:
    """Checked by the container's sweep (ten times a second, on the event loop)."""

    def __init__(self, container, timeout: float) -> None:
        self.container = container
        self.timeout = timeout
        self.threads = container.options.threads
        self.stuck = 0  # timed-out requests whose thread has not returned yet
        self.all_stuck_reported = False  # once per episode: again after a thread returns
        self.replacement_asked = False  # the supervisor was told: this worker is retiring
        self.ask_again_at = 0.0  # after a failed replacement

    def check(self) -> None:
        now = time.monotonic()
        overdue = self.container.queue.overdue(self.timeout, now)
        if overdue:
            frames = sys._current_frames()
            for task in overdue:
                self.stuck += 1
                self.cut_off(task, frames.get(task.thread_ident), now)
        if self.replacement_asked and not worker_link.replacement_asked():
            # The supervisor could not replace this worker: ask again, after a pause.
            self.replacement_asked = self.all_stuck_reported = False
            self.ask_again_at = now + ASK_AGAIN_AFTER
        if self.stuck >= self.threads and not self.all_stuck_reported and now >= self.ask_again_at:
            self.all_stuck_reported = True
            self.ask_for_replacement()

    def cut_off(self, task, frame, now: float) -> None:
        if task.logged:
            return  # answered in full just now; its thread is on its way back
        streaming = task.head_out
        outcome = task.time_out()
        line = task.start_line
        since = task.app_since or now
        quiet = f", {now - since:.1f}s of them without producing anything" if streaming else ""
        log.warning(
            "Request stuck: %s %s from %s has been in the application for %.1fs%s "
            "(--request-timeout %gs); %s, and its late response will be dropped. "
            "Its thread is still busy, here:\n%s",
            line.method, line.path, task.client, now - task.run_started, quiet, self.timeout,
            outcome, _stack(frame),
        )

    def returned(self, task) -> None:
        """On the loop: the thread of a timed-out request is free again."""
        self.stuck -= 1
        if not self.replacement_asked:
            self.all_stuck_reported = False
        task.thread_returned()
        line = task.start_line
        log.info("The stuck request %s %s has returned after %.1fs; its thread serves again.",
                 line.method, line.path, time.monotonic() - task.run_started)

    def ask_for_replacement(self) -> None:
        """Every thread is stuck: nothing more will be served by this process."""
        reason = f"all {self.threads} threads stuck past --request-timeout {self.timeout:g}s"
        if worker_link.ask_for_replacement(worker_link.STUCK, reason):
            self.replacement_asked = True
            log.warning("All %d threads of this worker are stuck past --request-timeout (%gs); "
                        "the supervisor starts a fresh worker in its place.", self.threads, self.timeout)
        else:
            log.warning("All %d threads of this process are stuck past --request-timeout (%gs): "
                        "new requests wait and then get 503 until one returns; only a restart "
                        "frees threads that never do.", self.threads, self.timeout)


def _stack(frame) -> str:
    """The thread's stack from the request's start (the pool's own frames left out)."""
    if frame is None:
        return "  (gone: the thread has just returned)"
    entries = traceback.extract_stack(frame)
    for index, entry in enumerate(entries):
        if entry.name == "_work" and entry.filename.endswith("request_queue.py"):
            entries = entries[index + 1:]
            break
    return "".join(traceback.format_list(entries)).rstrip("\n")
