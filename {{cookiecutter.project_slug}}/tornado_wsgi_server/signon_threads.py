"""The Windows sign-on's own threads (windows_auth.py): the acceptor's steps run here, off
the event loop and off Django's threads.

A step can hang, and a client can make it: NTLM passes the password check of a user of a
trusted domain on to that domain's controller, and the client picks the user. The answer
to the client is bounded by ``STEP_TIMEOUT`` but the thread is not (a blocking call cannot be
interrupted), so the threads need two guards (StepThreads). One address has at most
``STEPS_PER_ADDRESS`` (windows_auth.py) steps on the threads at once; its others wait their turn in order,
never refused, so a terminal server whose users all sign on at 9:00 only queues behind
itself (its steps take milliseconds), while one hostile address holds at most that many
threads. And a step past ``STEP_TIMEOUT`` counts its thread as lost and starts a new one,
up to ``LOST_THREADS`` lost at a time, so hanging steps from many addresses cost threads,
not sign-ons, until that bound; past it the pool shrinks, and while every thread is lost
new steps get 503 at once. A WARNING once a minute names the likely cause.
A per-address limit alone fails against a few addresses; replacement alone gives every
sign-on a 503 for the first ``STEP_TIMEOUT`` of each wave, and unbounded replacement lets a
client start threads without end.
"""

from __future__ import annotations

import collections
import concurrent.futures
import itertools
import queue
import threading
import time


class Step:
    """One acceptor step on its way through StepThreads."""

    __slots__ = ("future", "function", "args", "address", "deadline", "lost", "replaced")

    def __init__(self, function, args: tuple, address: str, deadline: float) -> None:
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.function, self.args, self.address = function, args, address
        self.deadline = deadline  # its client has had 503 by then: never start it later
        self.lost = False  # still running past STEP_TIMEOUT
        self.replaced = False  # ...and another thread has taken its place


class StepThreads:
    """The sign-on's own daemon threads: a step stuck on a domain controller holds neither
    Django's threads nor, at exit, the process (a ThreadPoolExecutor's threads are joined).

    One client address has at most ``per_address`` steps on the threads; its others wait
    their turn in order. A step still running past STEP_TIMEOUT (``overran()``) counts its
    thread as lost, and a new thread takes its place, for at most ``replaceable`` lost
    threads at a time; a lost thread ends when its step does."""

    def __init__(self, count: int, per_address: int, replaceable: int, timeout: float) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.count, self.per_address, self.replaceable = count, per_address, replaceable
        self.timeout = timeout
        self.lost = 0  # threads whose step overran and still runs
        self.replaced = 0  # of those, the ones another thread stands in for
        self.on_threads: dict[str, int] = {}  # address -> its steps handed to the threads
        self.waiting: dict[str, collections.deque] = {}  # address -> its steps waiting their turn
        self.numbers = itertools.count()
        for _ in range(count):
            self._start()

    def _start(self) -> None:
        threading.Thread(target=self._work, name=f"windows-signon-{next(self.numbers)}", daemon=True).start()

    @property
    def exhausted(self) -> bool:
        """Every thread is lost, none may be replaced: a new step could only time out."""
        return self.lost - self.replaced >= self.count

    def submit(self, address: str, function, *args) -> Step:
        step = Step(function, args, address, time.monotonic() + self.timeout)
        with self.lock:
            running = self.on_threads.get(address, 0)
            if running < self.per_address:
                self.on_threads[address] = running + 1
                self.jobs.put(step)
            else:
                self.waiting.setdefault(address, collections.deque()).append(step)
        return step

    def overran(self, step: Step) -> bool:
        """From the loop, when ``step`` has had STEP_TIMEOUT: drop it if it has not started;
        if it runs, its thread is lost (replaced while fewer than ``replaceable`` are). True
        if the thread is lost."""
        with self.lock:
            if step.future.cancel():  # not started
                waiting = self.waiting.get(step.address)
                if waiting is not None and step in waiting:
                    waiting.remove(step)
                    if not waiting:
                        del self.waiting[step.address]
                return False  # else a thread takes it, sees it cancelled and frees its turn
            if step.future.done():
                return False
            step.lost = True
            self.lost += 1
            if self.replaced < self.replaceable:
                step.replaced = True
                self.replaced += 1
                self._start()
            return True

    def _work(self) -> None:
        while (step := self.jobs.get()) is not None:
            if time.monotonic() >= step.deadline:
                step.future.cancel()  # waited its whole time (the loop's time-out may lag)
            if step.future.set_running_or_notify_cancel():
                try:
                    step.future.set_result(step.function(*step.args))
                except StopIteration:
                    # pyspnego's on some malformed SPNEGO tokens; an asyncio future refuses to
                    # carry it, and the request would then wait for ever, its time-out lost.
                    step.future.set_exception(ValueError("malformed token (StopIteration in the acceptor)"))
                except BaseException as exc:  # handed to the loop, which answers 401 or 503
                    step.future.set_exception(exc)
            if self._done(step):
                return  # its replacement does its work now

    def _done(self, step: Step) -> bool:
        """Frees ``step``'s place; the address's next step takes it. True if this thread ends."""
        with self.lock:
            waiting = self.waiting.get(step.address)
            if waiting:
                self.jobs.put(waiting.popleft())
                if not waiting:
                    del self.waiting[step.address]
            elif self.on_threads[step.address] > 1:
                self.on_threads[step.address] -= 1
            else:
                del self.on_threads[step.address]
            if step.lost:
                self.lost -= 1
                if step.replaced:
                    self.replaced -= 1
                    return True
            return False

    def close(self) -> None:
        for _ in range(self.count + self.replaced):
            self.jobs.put(None)
