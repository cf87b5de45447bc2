"""The Tornado versions this package is written and tested for; the server refuses any other.

The server replaces or reads parts of Tornado that are not its public API, and those may change
in any release (even a fix in a replaced method would then never apply). What it relies on:

- ``tornado.http1connection``: ``HTTP1Connection._parse_headers`` and ``._read_chunked_body``
  (replaced), ``._read_fixed_body``, ``.write_headers`` (redone for responses, with its private state),
  ``HTTP1ServerConnection._server_request_loop`` (replaced), ``_QuietException``, and the
  attributes ``_chunking_output``,
  ``_disconnect_on_finish``, ``_expected_content_remaining``, ``_format_chunk``,
  ``_max_body_size``, ``_on_write_complete``, ``_pending_write``, ``_request_headers``,
  ``_request_start_line``, ``_response_start_line``, ``_write_finished``, ``_write_future``
  (http1.py).
- ``tornado.httputil``: ``_normalize_header``, ``HTTPHeaders._as_list`` and ``._last_key``
  (http1.py, container.py); ``HTTPServerRequest._parse_body`` (replaced per request on Tornado
  routes, application.py).
- ``tornado.iostream``: ``IOStream._try_inline_read`` (replaced), ``_read_from_buffer``,
  ``_find_read_pos``, ``_add_io_state``, ``_check_closed``, ``_read_buffer`` and
  ``_read_buffer_size`` (connections.py, http1.py), ``_total_write_done_index`` (sending.py).
- ``tornado.httpserver``: ``_HTTPRequestContext``, ``HTTPServer._connections``
  (connections.py, metrics.py).
- ``tornado.tcpserver``: ``TCPServer._handle_connection`` (extended), ``._handlers``,
  ``._sockets`` (connections.py).

To support another Tornado: read each of these in its code, run the whole test suite with it,
then add it to SUPPORTED and pin it in requirements.txt (a test checks that the two agree).
"""

from __future__ import annotations

import logging
import os

SUPPORTED = ("6.5.10",)
# Starts the server on another Tornado anyway, with a warning: unsupported, for emergencies.
ALLOW_UNTESTED = "SERVER_ALLOW_UNTESTED_TORNADO"

log = logging.getLogger("tornado_server")


def tornado_problem(version: str) -> str | None:
    """None when ``version`` is one the server is tested with, else what to do."""
    if version in SUPPORTED:
        return None
    return (f"Tornado {version} is installed, but this server is written and tested for Tornado "
            f"{' or '.join(SUPPORTED)} only: it relies on parts of Tornado that change between "
            "releases. Install the tested version with the project's Python: "
            "python -m pip install -r requirements.txt")


def check_tornado(environ: dict | None = None) -> None:
    """Refuse to start (SystemExit with the message) on a Tornado that is not SUPPORTED."""
    import tornado

    problem = tornado_problem(tornado.version)
    if problem is None:
        return
    if (os.environ if environ is None else environ).get(ALLOW_UNTESTED) == "1":
        log.warning("%s. Starting anyway because %s=1 (unsupported).", problem, ALLOW_UNTESTED)
        return
    raise SystemExit(f"ERROR: {problem}")
