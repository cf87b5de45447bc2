"""A worker process's line to its supervisor: "ready", "failed <why>" and "replace <kind> <why>";
the supervisor answers "replace-failed" when it could not replace the worker.

Set up by ``supervisor.worker_main``; in a one-process server there is none, and asking for
a replacement returns False. Safe to call from any thread.
"""

from __future__ import annotations

import threading

_conn = None  # the worker's end of its pipe to the supervisor
_lock = threading.Lock()  # the event loop and the main thread both send
_asked = False

# What the supervisor is asked for: replace a worker whose threads are all stuck (a short
# drain, then the process ends), or recycle a healthy one (a full, graceful drain).
STUCK, RECYCLE = "stuck", "recycle"


def connect(conn) -> None:
    global _conn
    _conn = conn


def is_worker() -> bool:
    return _conn is not None


def send(message: str) -> bool:
    """Send one line to the supervisor; False if there is none or it is gone."""
    if _conn is None:
        return False
    with _lock:
        try:
            _conn.send(message)
        except (OSError, ValueError, EOFError):
            return False
    return True


def ask_for_replacement(kind: str, reason: str) -> bool:
    """Ask the supervisor to start a new worker and then stop this one; once is enough
    (later calls return True without asking again)."""
    global _asked
    if _conn is None:
        return False
    if _asked:
        return True
    reason = " ".join(reason.split())  # one line
    _asked = send(f"replace {kind} {reason}")
    return _asked


def replacement_asked() -> bool:
    """True from a request for a replacement until the supervisor says it failed."""
    return _asked


def replacement_failed() -> None:
    """The supervisor could not start a new worker in this one's place: it serves on, and may
    ask again."""
    global _asked
    _asked = False
