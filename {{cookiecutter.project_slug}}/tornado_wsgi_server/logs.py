"""The server's loggers, and the rotating log file that ``--log-file`` adds.

Console output follows the Django settings' ``LOGGING`` and never fails on a character the
console lacks; the file handler locks around writes and rotation, so several worker
processes and a Windows service can share it. While a process serves, what its event loop
logs is written by a listener thread (``off_the_loop()``): no handler (a console, the file
and its lock, the admins' error mail) ever makes the loop wait. Request targets and headers
that the access log and Django log (a 60 KB target, say) are cut to ``LOGGED_TEXT_LIMIT``
characters.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import sys
import threading
from logging.handlers import QueueListener
from pathlib import Path

from .options import ServerOptions

log = logging.getLogger("tornado_server")
access_log = logging.getLogger("tornado_server.access")


def tolerate_unencodable_output() -> None:
    """Print what the console's code page lacks as escapes instead of failing: Windows
    encodes a redirected stdout (a file, Task Scheduler, NSSM) in the ANSI code page, where
    a project name like "Портал" would otherwise stop the server at start-up."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="backslashreplace")
        except (AttributeError, ValueError, OSError):  # replaced by something else, or closed
            pass


def setup_logging(options: ServerOptions) -> None:
    """Console logging comes from settings.LOGGING; add the rotating file if asked for."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    if options.log_file and not any(getattr(h, "_tornado_server", False) for h in root.handlers):
        # Several worker processes (and a Windows service) share one file: this handler
        # locks around writes and rotation, which the standard one cannot do on Windows.
        from concurrent_log_handler import ConcurrentRotatingFileHandler

        Path(options.log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = ConcurrentRotatingFileHandler(
            options.log_file, maxBytes=options.log_max_bytes, backupCount=options.log_backups,
            encoding="utf-8",
        )
        handler._tornado_server = True
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s [%(name)s] %(message)s"))
        root.addHandler(handler)


def reopen_file_log(options: ServerOptions) -> None:
    """After Django has set up logging from settings.LOGGING, which closes every handler
    there was (the file's too, set up before so that a failing start is logged): a new one."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_tornado_server", False)]:
        root.removeHandler(handler)
        handler.close()
    setup_logging(options)


def describe_failure(exc: BaseException) -> str:
    """Why a start failed, in one line: the text of an ``ERROR: ...`` exit, else the exception."""
    if isinstance(exc, SystemExit) and isinstance(exc.code, str):
        return exc.code.removeprefix("ERROR: ").strip()
    return f"{type(exc).__name__}: {exc}".strip()


def log_start_failure(log_file: str | None, exc: BaseException) -> None:
    """Write why the server could not start to the log file, once per failure: the console
    (and a service's Event Log) already show it, so the file only gets it. With the traceback
    of an unexpected error, or of the one behind an ``ERROR:`` exit that is not the
    operating system's (an app that fails to import, a settings error)."""
    if not log_file or getattr(exc, "_in_log_file", False) or isinstance(exc, KeyboardInterrupt):
        return
    if isinstance(exc, SystemExit) and exc.code in (0, None):
        return
    try:
        exc._in_log_file = True
    except AttributeError:
        pass
    cause = exc if not isinstance(exc, SystemExit) else exc.__context__
    traced = cause if cause is not None and not isinstance(cause, OSError) else None
    record = logging.LogRecord(
        log.name, logging.ERROR, __file__, 0, "Could not start: %s", (describe_failure(exc),),
        (type(traced), traced, traced.__traceback__) if traced is not None else None)
    root = logging.getLogger()
    try:
        handler = next((h for h in root.handlers if getattr(h, "_tornado_server", False)), None)
        if handler is None:  # the options could not be read: a handler for this record only
            from concurrent_log_handler import ConcurrentRotatingFileHandler

            Path(log_file).parent.mkdir(parents=True, exist_ok=True)
            handler = ConcurrentRotatingFileHandler(log_file, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s [%(name)s] %(message)s"))
            try:
                handler.handle(record)
            finally:
                handler.close()
            return
        handler.handle(record)
    except Exception:  # the log file cannot be written: the console and the Event Log still say why
        pass


def start_failure_log_file(project_dir: Path, service: bool) -> str | None:
    """The log file when the options could not be read (a bad value in .env): SERVER_LOG_FILE
    as .env gave it, or for the service its default ``logs/server.log``."""
    path = os.environ.get("SERVER_LOG_FILE", "").strip() or ("logs/server.log" if service else "")
    return str(Path(project_dir) / path) if path else None



LOGGED_TEXT_LIMIT = 2048  # characters of one argument of a log record (a request target)
# Loggers whose arguments come from the request (its target, its Host header), not from
# the server (a thread's stack, which must stay whole).
_REQUEST_LOGGERS = ("tornado_server.access", "django.request", "django.security")


def _shortened(value):
    if type(value) is str and len(value) > LOGGED_TEXT_LIMIT:
        return f"{value[:LOGGED_TEXT_LIMIT]}... ({len(value)} characters)"
    return value


def shorten_long_arguments(record: logging.LogRecord) -> bool:
    """A logging filter: text arguments of the request loggers past LOGGED_TEXT_LIMIT
    characters are cut, with their length said, so a hostile request cannot fill the log
    (and rotate it away)."""
    args = record.args
    if type(args) is tuple and record.name.startswith(_REQUEST_LOGGERS) \
            and not getattr(record, "shortened", False):
        for value in args:
            if type(value) is str and len(value) > LOGGED_TEXT_LIMIT:
                record.args = tuple(_shortened(value) for value in args)
                record.shortened = True
                break
    return True


_records: queue.SimpleQueue = queue.SimpleQueue()
_listener: QueueListener | None = None
_loop_thread: int | None = None  # records logged on this thread go to the listener


class _Listener(QueueListener):
    """Hands each queued record to the handlers of the logger it was queued for."""

    def handle(self, item) -> None:
        stand_in, record = item
        stand_in.dispatch(record)


class _StandIn(logging.Handler):
    """Stands in for the handlers of one logger: a record logged on the event loop's thread
    is queued for the listener thread, any other is handled at once on its own thread (a
    view's error mail still goes out while its request is alive)."""

    def __init__(self, handlers: list) -> None:
        super().__init__()
        self.handlers = handlers
        self.addFilter(shorten_long_arguments)

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        if _loop_thread is not None and threading.get_ident() == _loop_thread:
            _records.put((self, record))
        else:
            self.dispatch(record)
        return True

    def dispatch(self, record: logging.LogRecord) -> None:
        for handler in self.handlers:
            if record.levelno >= handler.level:
                handler.handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        self.dispatch(record)

    def flush(self) -> None:
        for handler in self.handlers:
            handler.flush()

    def close(self) -> None:
        _stop_listener()  # logging.shutdown() (also before os._exit): what is queued is written
        super().close()


def _stop_listener() -> None:
    global _listener, _loop_thread
    listener, _listener, _loop_thread = _listener, None, None
    if listener is not None:
        listener.stop()  # handles every record queued so far, then ends its thread


@contextlib.contextmanager
def off_the_loop():
    """While it lasts, records logged on this thread (the event loop's) are handled by a
    listener thread; at its end every queued record has been handled."""
    global _listener, _loop_thread
    root = logging.getLogger()
    loggers = [root, *(logger for logger in list(logging.Logger.manager.loggerDict.values())
                       if isinstance(logger, logging.Logger))]
    stand_ins = []
    for logger in loggers:
        handlers = list(logger.handlers)
        if handlers and not any(isinstance(handler, _StandIn) for handler in handlers):
            stand_in = _StandIn(handlers)
            logger.handlers = [stand_in]
            stand_ins.append((logger, stand_in))
    listener = _Listener(_records)
    listener.start()
    _listener, _loop_thread = listener, threading.get_ident()
    try:
        yield
    finally:
        _stop_listener()
        for logger, stand_in in stand_ins:
            if logger.handlers == [stand_in]:
                logger.handlers = stand_in.handlers
