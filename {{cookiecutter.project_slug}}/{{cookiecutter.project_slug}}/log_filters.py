"""Logging filters for settings.LOGGING.

DisallowedHostSummary turns Django's ERROR-with-traceback for each request with a wrong
Host header into one WARNING line per interval that names the host and counts the rest.
"""

from __future__ import annotations

import logging
import threading
import time


class DisallowedHostSummary(logging.Filter):
    """Lets one record through per ``interval`` seconds, as a WARNING without a traceback."""

    def __init__(self, interval: float = 60) -> None:
        super().__init__()
        self.interval = float(interval)
        self.lock = threading.Lock()
        self.next_allowed = 0.0
        self.suppressed = 0

    def filter(self, record: logging.LogRecord) -> bool:
        with self.lock:
            now = time.monotonic()
            if now < self.next_allowed:
                self.suppressed += 1
                return False
            self.next_allowed = now + self.interval
            suppressed, self.suppressed = self.suppressed, 0
        message = record.getMessage()
        if suppressed:
            message += f" ({suppressed} more such requests in the last {self.interval:g} s not logged)"
        record.msg, record.args = message, None
        record.levelno, record.levelname = logging.WARNING, logging.getLevelName(logging.WARNING)
        record.exc_info = record.exc_text = record.stack_info = None
        return True
