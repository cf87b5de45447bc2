"""The server's loggers, and the rotating log file that ``--log-file`` adds.

Console output follows the Django settings' ``LOGGING`` and never fails on a character the
console lacks; the file handler locks around writes and rotation, so several worker
processes and a Windows service can share it.
"""

from __future__ import annotations

import logging
import sys
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

