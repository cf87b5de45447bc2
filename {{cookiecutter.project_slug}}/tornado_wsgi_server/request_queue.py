"""The wait for a thread: read requests queue here until one of the pool's threads is free.

Nobody waits forever: past ``--max-queue-wait`` a request is shed with 503, a request whose
client has gone is dropped unrun, and under sustained overload the newest are served first.
The queue also knows which task each thread runs, for the stuck-request watchdog.
"""

from __future__ import annotations

import collections
import threading
import time
from collections.abc import Callable

# The rule, in full (docs/server.md, "Overload", repeats it):
# - Normal: first come, first served; a request that waited --max-queue-wait is shed.
# - Overload: the queue has not been empty for OVERLOAD_AFTER_RUNS typical requests (at
#   least OVERLOAD_AFTER_MIN seconds) and has grown since then (more requests came, counting
#   those turned away by --max-queue, than left): arrivals outrun the threads, unlike a
#   burst that is draining away; and at least ARRIVALS_PER_DEPARTURE times as many came as
#   left, unlike clients that each wait for their answer before asking again, who keep the
#   queue from emptying but cannot grow it. Then the newest request is served first, and one that
#   has waited longer than SHORT_WAIT_RUNS typical requests (at least SHORT_WAIT_MIN seconds,
#   at most --max-queue-wait) is shed: it would only be answered after its client stopped
#   caring, while fresh ones succeed.
# - Back to normal as soon as the queue is empty again.
# "Typical request" is a moving average of how long the application took per request;
# until one has finished there is no overload mode.
OVERLOAD_AFTER_RUNS = 2.0
OVERLOAD_AFTER_MIN = 0.5
SHORT_WAIT_RUNS = 0.5
SHORT_WAIT_MIN = 0.25
ARRIVALS_PER_DEPARTURE = 1.5
_AVERAGE_WEIGHT = 0.1  # each finished request moves the average this far toward itself


def _verdict(task, now: float, longest: float) -> str | None:
    """Why ``task`` must not run (a shed reason), or None if it may."""
    if task.gone():
        return "client gone"
    if now - task.queued_at > longest:
        return "deadline"
    return None


class RequestQueue:
    """``threads`` worker threads run ``task.run()`` for the tasks ``put()`` on the loop.

    A task must offer ``run()`` (on a worker thread), ``gone()`` (its client has left; read
    from any thread) and ``queued_at`` (``time.monotonic()`` when it was put). Tasks that are
    not run are handed to ``shed(task, reason)`` on a worker or sweeping thread, with reason
    ``"deadline"`` or ``"client gone"``; ``shed`` must be thread-safe (it hands over to the
    loop). ``sweep()``, called ten times a second, sheds expired tasks nobody picks up and
    samples the queue's length for the overload rule.

    A running task gets ``thread_ident``, ``run_started`` and ``app_since`` (monotonic; the
    task sets ``app_since`` to None while it waits on its client, and renews it as its
    application makes progress). ``overdue()`` marks tasks ``timed_out``; when the thread of
    such a task returns, ``returned(task)`` is called on that thread, with the queue's lock
    held (it must only hand over to the loop), so a task is either never marked or always
    reported back, exactly once.
    """

    def __init__(self, threads: int, max_wait: float, shed: Callable[[object, str], None],
                 name: str = "wsgi", returned: Callable[[object], None] | None = None) -> None:
        self.max_wait = max_wait
        self._shed = shed
        self._returned = returned
        self._running: dict = {}  # thread ident -> the task it runs; under the lock
        self._waiting: collections.deque = collections.deque()
        self._lock = threading.Lock()
        # Threads with nothing to do, each parked on a lock of its own (held): put() releases
        # one. Cheaper than a Condition, which makes a new lock for every wait.
        self._parked: list = []  # under self._lock
        self._stopping = False
        self._last_empty = time.monotonic()
        # (time, pressure, arrivals, departures) since then; pressure: the queue's length
        # plus every request ever turned away by --max-queue, so a full queue that keeps
        # refusing still grows. Arrivals count those too; departures are requests run.
        self._lengths: collections.deque = collections.deque()
        self.refused = 0  # counted by the caller when --max-queue turns a request away
        self._arrived = 0  # put(); under the lock
        self._departed = 0  # taken to run; under the lock
        self.typical_run = 0.0  # seconds; 0 until a request has finished
        self.shed_counts = {"deadline": 0, "client gone": 0}
        self.overloaded = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{index}", daemon=True)
            for index in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    def __len__(self) -> int:
        return len(self._waiting)

    def put(self, task) -> None:
        task.queued_at = time.monotonic()
        with self._lock:
            if not self._waiting:
                self._emptied(task.queued_at)
            self._waiting.append(task)
            self._arrived += 1
            if self._parked:
                self._parked.pop().release()  # the thread parked last: its cache is warm

    def _emptied(self, now: float) -> None:
        self._last_empty = now
        self._lengths.clear()
        self.overloaded = False

    def _limits(self, now: float) -> float:
        """The longest a waiting request may have waited as of ``now``; lock held."""
        if not self._waiting:
            self._emptied(now)
        elif not self.overloaded and self.typical_run:
            standing = max(OVERLOAD_AFTER_MIN, OVERLOAD_AFTER_RUNS * self.typical_run)
            lengths = self._lengths
            while len(lengths) > 1 and lengths[1][0] <= now - standing:
                lengths.popleft()  # keep one sample from `standing` ago
            self.overloaded = (
                now - self._last_empty >= standing
                and bool(lengths) and lengths[0][0] <= now - standing
                and len(self._waiting) + self.refused > lengths[0][1]
                and self._arrived + self.refused - lengths[0][2]
                >= ARRIVALS_PER_DEPARTURE * (self._departed - lengths[0][3])
            )
        if self.overloaded:
            return min(max(SHORT_WAIT_MIN, SHORT_WAIT_RUNS * self.typical_run), self.max_wait)
        return self.max_wait

    def _park(self, parking) -> None:
        """Wait, lock held, until put() or shutdown() releases ``parking``; lock held again."""
        self._parked.append(parking)
        self._lock.release()
        try:
            parking.acquire()
        finally:
            self._lock.acquire()

    def _take(self, ident: int, parking, finished=None):
        """The next task to run, shedding the expired and abandoned on the way; None to stop.

        ``finished`` is the task this thread has just run: its slot is cleared under the
        same lock, so the bookkeeping costs no extra lock per request.
        """
        shed = []
        try:
            with self._lock:
                if finished is not None:
                    del self._running[ident]
                    if finished.timed_out:
                        self._returned(finished)
                while True:
                    while not self._waiting and not self._stopping:
                        self._park(parking)
                    if not self._waiting:
                        return None
                    now = time.monotonic()
                    longest = self._limits(now)
                    task = self._waiting.pop() if self.overloaded else self._waiting.popleft()
                    if not self._waiting:
                        self._emptied(now)
                    reason = _verdict(task, now, longest)
                    if reason is None:
                        task.thread_ident = ident
                        task.run_started = task.app_since = now
                        self._running[ident] = task
                        self._departed += 1
                        return task
                    shed.append((task, reason))
        finally:
            for task, reason in shed:
                self._shed_one(task, reason)

    def sweep(self) -> None:
        """Shed what has waited too long or lost its client, oldest first."""
        shed = []
        with self._lock:
            now = time.monotonic()
            if self._waiting and not self.overloaded:
                self._lengths.append((now, len(self._waiting) + self.refused,
                                      self._arrived + self.refused, self._departed))
            longest = self._limits(now)
            keep = collections.deque()
            for task in self._waiting:
                reason = _verdict(task, now, longest)
                if reason is None:
                    keep.append(task)
                else:
                    shed.append((task, reason))
            if shed:
                self._waiting = keep
                if not keep:
                    self._emptied(now)
        for task, reason in shed:
            self._shed_one(task, reason)

    def _shed_one(self, task, reason: str) -> None:
        self.shed_counts[reason] += 1
        self._shed(task, reason)

    def overdue(self, limit: float, now: float) -> list:
        """Running tasks whose application has gone ``limit`` seconds without progress;
        each is marked ``timed_out`` and returned once."""
        found = []
        with self._lock:
            for task in self._running.values():
                since = task.app_since
                if since is not None and now - since > limit and not task.timed_out:
                    task.timed_out = True
                    found.append(task)
        return found

    def _work(self) -> None:
        ident = threading.get_ident()
        parking = threading.Lock()
        parking.acquire()
        task = None
        while (task := self._take(ident, parking, task)) is not None:
            task.run()
            if not task.timed_out:  # a stuck request says nothing about typical ones
                took = time.monotonic() - task.run_started
                # A plain float update: a lost race between threads only skips one sample.
                self.typical_run += (took - self.typical_run) * _AVERAGE_WEIGHT if self.typical_run else took

    def shutdown(self, wait: bool = True, run_waiting: bool = True) -> None:
        """Stop the threads once the queue is empty (or drop what waits, unrun)."""
        with self._lock:
            self._stopping = True
            if not run_waiting:
                self._waiting.clear()
            while self._parked:
                self._parked.pop().release()
        if wait:
            for thread in self._threads:
                thread.join()
