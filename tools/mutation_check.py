#!/usr/bin/env python
"""Check that the generated project's tests notice when a README promise is broken.

    .venv/bin/python tools/mutation_check.py                  # every mutation (about 50 min)
    .venv/bin/python tools/mutation_check.py --list           # the mutations; nothing is run
    .venv/bin/python tools/mutation_check.py --only P3b,P17   # just these
    .venv/bin/python tools/mutation_check.py --venv ~/sites/my_site/.venv

Contract:

- Bakes the template with its default answers into a temporary directory (cookiecutter must
  be importable by the interpreter running this script: the template's test venv has it).
- Uses a virtual environment with the baked project's test requirements installed:
  ``--venv PATH``, or one cached in ``tools/.cache/venv-<hash>`` and made again when
  ``requirements*.txt``, the Python version or the platform change. The cached one gets
  ``requirements-kerberos.txt`` (python-gssapi for the Kerberos tests, built on libkrb5-dev)
  with ``REQUIRE_SERVICES=1`` or where ``krb5-config`` is on PATH, else ``requirements-dev.txt``
  (the Kerberos tests then skip).
- Each mutation in ``MUTATIONS`` is one exact-string replacement in one file of the bake. Its
  ``old`` text must occur exactly once; otherwise the mutation is "stale" (the code moved on
  and the list must be updated) and nothing is run.
- Per mutation: apply it and run first, alone, the test that caught it last time (the
  ``caught by`` column of ``tools/results/mutation-latest.md``, or the last catch on this
  machine, kept in ``tools/.cache/catchers.json``). Only when that test does not fail (or
  there is none) run ``pytest -x`` on its test files. Put the original bytes back and check
  them. A failed test (pytest exit 1) is a catch only once that test, run again alone on the
  unmutated bake, passes ("flaky" otherwise); a catch by the test files also needs the same
  run to pass on the unmutated bake (once per set of files), as a test can fail after another
  one and pass alone. A run past ``--timeout``, or stopped by the suite's
  own per-test timeout, is a "timeout"; any other exit (2: collection error or interrupted,
  3, 4, 5) an "error": neither is a catch.
- ``--jobs 2`` bakes twice and checks two mutations at a time, one per bake.
- Prints a Markdown table and ``caught N of M``, and writes it to
  ``tools/results/mutation-latest.md`` (``mutation-partial.md`` with ``--only``); pytest's
  output for each run goes to ``tools/results/logs/``.
- Exit code: 0 when every mutation is caught, 1 when one survived, timed out or was caught
  only by a flaky test, 2 for a stale mutation, test files that fail unmutated, a test run
  that did not work at all (an "error"), or bad input.

``REQUIRE_SERVICES=1`` in the environment reaches the tests (nginx, PostgreSQL and Redis then
fail instead of skipping), as does the rest of the environment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / "tools"
RESULTS = TOOLS / "results"
LOGS = RESULTS / "logs"
CACHE = TOOLS / ".cache"
CATCHERS = CACHE / "catchers.json"  # name -> the test that caught it last on this machine
IS_WINDOWS = sys.platform == "win32"
PACKAGE = "{package}"  # in a mutation's file: the baked project's Django package

# The template tests' choice of the bake's requirements file (requirements-kerberos.txt where
# python-gssapi can be built), so that this venv runs the Kerberos tests where they do.
sys.path.append(str(ROOT / "tests"))
from helpers import requirements_for_tests  # noqa: E402


@dataclass(frozen=True)
class Mutation:
    name: str
    promise: str  # the README sentence the change breaks
    file: str  # relative to the baked project
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # test files (or node ids) that should fail


SHUTDOWN = "tests/server/test_shutdown.py"
SIGNON = "tests/server/test_windows_signon.py"
KERBEROS = "tests/server/test_kerberos_signon.py"
WORKERS = "tests/server/test_workers.py"
RELOAD = "tests/server/test_reload.py"
LIMITS = "tests/server/test_limits.py"
CONNECTIONS = "tests/server/test_connections.py"
FRAMING = "tests/server/test_framing.py"
STREAMING = "tests/server/test_streaming.py"
ERRORS = "tests/server/test_errors.py"
STATIC = "tests/server/test_static_files.py"
PROXY = "tests/server/test_tls_proxy.py"
MEDIA = "tests/test_media.py"
ENVIRON = "tests/server/test_environ.py"
WEBSOCKET = "tests/server/test_websocket.py"
ROUTES_PROMISE = "Every Tornado route gets, without extra code, what Django gives its views"
OVERLOAD = "tests/server/test_overload.py"
SERVICE = "tests/server/test_windows_service.py"
STARTUP = "tests/server/test_startup.py"
WATCHDOG = "tests/server/test_watchdog.py"
METRICS = "tests/server/test_metrics.py"
ROUTES = "tests/server/test_tornado_routes.py"
STATUS_PAGE = "tests/server/test_status_page.py"
ADMIN = "tests/server/test_windows_admin.py"
SERVICE_CONTROL = "tests/server/test_service_control.py"
OPTIONS = "tests/server/test_options.py"
STATUS = "tests/server/test_status.py"
DRAIN_PROMISE = "Ctrl+C, Ctrl+Break, SIGTERM ...: requests in flight get up to `--drain-timeout` seconds"
PROXY_PROMISE = "`--trusted-proxies`: proxies whose `X-Forwarded-For`/`-Proto`/`-Host` are believed"

MUTATIONS: tuple[Mutation, ...] = (
    Mutation(
        "P1", "more [than `--max-queue`] get `503` with `Retry-After` at once",
        "tornado_wsgi_server/task.py",
        "if container.in_flight >= container.capacity or container.shutting_down:",
        "if container.shutting_down:",
        (LIMITS,),
    ),
    Mutation(
        "P2a", "Largest request body (`413` beyond): declared Content-Length",
        "tornado_wsgi_server/task.py",
        "if length > options.max_body_size:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P2b", "Largest request body (`413` beyond): counted while reading",
        "tornado_wsgi_server/task.py",
        "if self.body_size > self.container.options.max_body_size:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P3a", "requests in flight get up to `--drain-timeout` seconds",
        "tornado_wsgi_server/process.py",
        "while ((container.in_flight or container.sending)\n"
        "               and time.monotonic() < draining_since + self.drain_timeout):\n"
        "            await asyncio.sleep(0.05)\n",
        "pass\n",
        (SHUTDOWN,),
    ),
    Mutation(
        "P3b", DRAIN_PROMISE + " (SIGTERM)",
        "tornado_wsgi_server/process.py",
        'for name in ("SIGINT", "SIGTERM", "SIGBREAK"):',
        'for name in ("SIGINT", "SIGBREAK"):',
        (SHUTDOWN, WORKERS),
    ),
    Mutation(
        "P3c", "on stop the port closes ... then the process exits (idle keep-alive closed at once)",
        "tornado_wsgi_server/process.py",
        "        container.close_idle()\n",
        "",
        (SHUTDOWN,),
    ),
    Mutation(
        "P4a", "a worker waits while the client is slow to read, so a 1 GB download needs little memory",
        "tornado_wsgi_server/task.py",
        "_STREAM_HIGH_WATER = 1024 * 1024",
        "_STREAM_HIGH_WATER = 1024**4",
        (STREAMING,),
    ),
    Mutation(
        "P4b", "Responses that are iterators ... are sent as they are produced",
        "tornado_wsgi_server/task.py",
        'isinstance(result, (list, tuple)) or getattr(result, "streaming", None) is False',
        "True",
        (STREAMING,),
    ),
    Mutation(
        "P4c", "a stream stops soon once its client has gone",
        "tornado_wsgi_server/task.py",
        "self.request_conn.set_close_callback(self.client_gone)",
        "pass",
        (ERRORS, STREAMING),
    ),
    Mutation(
        "R1", "Large files ... are sent by the event loop itself ...: no thread is held",
        "tornado_wsgi_server/task.py",
        "if left is not None and left > result.block_size:",
        "if False:",
        (STREAMING,),
    ),
    Mutation(
        "R2", "`--write-timeout`: a response that makes no progress ... has its connection closed",
        "tornado_wsgi_server/sending.py",
        "        if idle >= self.timeout:\n",
        "        if False:\n",
        (STREAMING,),
    ),
    Mutation(
        "R3", "once a stream is made, the loop sends the rest and its thread is free",
        "tornado_wsgi_server/task.py",
        "        self.container.call_on_loop(self.finish_stream)\n",
        "        for future, _ in self.unsent:\n"
        "            self.wait_written(future)\n"
        "        self.container.call_on_loop(self.finish_stream)\n",
        (STREAMING,),
    ),
    Mutation(
        "R4", "If the application raises, even `SystemExit`, the client gets a `500`",
        "tornado_wsgi_server/task.py",
        "except BaseException as exc:  # SystemExit too",
        "except Exception as exc:  # SystemExit too",
        (ERRORS,),
    ),
    Mutation(
        "R5", "data given to `write()` is sent at once: an error restart after it closes the connection",
        "tornado_wsgi_server/task.py",
        "                    if self.headers_sent:\n                        raise exc_info",
        "                    if False:\n                        raise exc_info",
        (ERRORS,),
    ),
    Mutation(
        "R6", "data given to `write()` is sent at once (also while the body is iterated)",
        "tornado_wsgi_server/task.py",
        "                    self.begin_stream(response, method)\n                self.push(None, None, data)\n",
        "                    self.begin_stream(response, method)\n",
        (ERRORS,),
    ),
    Mutation(
        "R7", "the response's `close()` runs once, on the worker thread",
        "tornado_wsgi_server/task.py",
        "result, self.result = self.result, None",
        "result = self.result",
        (ERRORS,),
    ),
    Mutation(
        "R8", "HTTP/1.0: a body of unknown length ends with the connection, and says `Connection: close`",
        "tornado_wsgi_server/http1.py",
        'elif version == "HTTP/1.0" and not self._disconnect_on_finish:',
        'elif version == "HTTP/1.0" and self._request_headers.get("Connection", "").lower() == "keep-alive":',
        (STREAMING,),
    ),
    Mutation(
        "R9", "a `304` carries no `Content-Length`",
        "tornado_wsgi_server/container.py",
        "                if no_body:\n",
        "                if code < 200 or code == 204:\n",
        (STREAMING,),
    ),
    Mutation(
        "R10", "the same `Content-Length` twice is sent once; two different ones are a `500`",
        "tornado_wsgi_server/container.py",
        "continue  # the same one twice: send it once",
        "pass",
        (ERRORS,),
    ),
    Mutation(
        "R11", "an HTTP/1.0 client that asks for keep-alive is told `Connection: Keep-Alive` "
        "(a response whose head the worker formatted)",
        "tornado_wsgi_server/http1.py",
        'text += "\\r\\nConnection: Keep-Alive"',
        "pass",
        (FRAMING,),
    ),
    Mutation(
        "SF1", "a request for a file WhiteNoise has is answered by the event loop itself",
        "tornado_wsgi_server/task.py",
        "if static.answers(self.environ):",
        "if False:",
        (STATIC,),
    ),
    Mutation(
        "SF3", "A request for part of a file (a `Range` header) still goes to a thread",
        "tornado_wsgi_server/task.py",
        'and "Range" not in self.headers and static.may_answer',
        "and static.may_answer",
        (STATIC,),
    ),
    Mutation(
        "SF4", "[only when] the WSGI application is Django's own and unpatched [and] Django's "
        "`request_started` and `request_finished` signals have no receivers but Django's own",
        "tornado_wsgi_server/static_files.py",
        "if unsafe else _foreign_code())",
        'if unsafe else "")',
        (STATIC,),
    ),
    Mutation(
        "SF2", "only when nothing but Django's `SecurityMiddleware` comes before WhiteNoise",
        "tornado_wsgi_server/static_files.py",
        "unsafe = [name for name in before if name not in LOOP_SAFE_MIDDLEWARE]",
        "unsafe = []",
        (STATIC,),
    ),
    Mutation(
        "P5a", "otherwise the forwarded headers are ignored (on purpose: anyone could send them)",
        "tornado_wsgi_server/container.py",
        "trusted_peer = self.proxies.trusts(peer)",
        "trusted_peer = True",
        (PROXY,),
    ),
    Mutation(
        # The same change as P5a, aimed at the test that runs deploy/nginx.conf.
        "P5b", "otherwise the forwarded headers are ignored (nginx sample)",
        "tornado_wsgi_server/container.py",
        "trusted_peer = self.proxies.trusts(peer)",
        "trusted_peer = True",
        ("tests/test_scaling.py",),
    ),
    Mutation(
        "P5c", PROXY_PROMISE + " (the last hop's proto)",
        "tornado_wsgi_server/proxies.py",
        'return header.rsplit(",", 1)[-1].strip() if header else ""',
        'return header.split(",", 1)[0].strip() if header else ""',
        (PROXY,),
    ),
    Mutation(
        "P5d", PROXY_PROMISE + " (every hop trusted: the first address)",
        "tornado_wsgi_server/proxies.py",
        "return str(first) if first is not None else peer",
        "return peer",
        (PROXY,),
    ),
    Mutation(
        "P5e", "From any other peer `X-Forwarded-*`, `Forwarded` and `X-Real-IP` are removed before Django",
        "tornado_wsgi_server/container.py",
        "if not trusted_peer and is_proxy_header(key):",
        "if False:",
        (ENVIRON,),
    ),
    Mutation(
        "P5f", "hops with a port, `1.2.3.4:5678` ..., are understood",
        "tornado_wsgi_server/proxies.py",
        'elif hop.count(":") == 1:',
        "elif False:",
        (ENVIRON,),
    ),
    Mutation(
        "P5g", "hops with a port ... `[2001:db8::1]:443`, are understood",
        "tornado_wsgi_server/proxies.py",
        'if hop.startswith("["):\n        hop, sep, port',
        'if False:\n        hop, sep, port',
        (ENVIRON,),
    ),
    Mutation(
        "P5h", "the host from `X-Forwarded-Host` (the host name and port Django sees are the ones "
        "the client asked the proxy for)",
        "tornado_wsgi_server/container.py",
        "if forwarded_host:  # the host and port",
        "if False:  # the host and port",
        (ENVIRON,),
    ),
    Mutation(
        "P5i", "a hop that is no address keeps the proxy's own and logs one warning",
        "tornado_wsgi_server/proxies.py",
        '"address (%r); using the proxy\'s address. Logged once.", peer, hop.strip())\n'
        "                return peer\n",
        '"address (%r); using the proxy\'s address. Logged once.", peer, hop.strip())\n'
        "                continue\n",
        (ENVIRON,),
    ),
    Mutation(
        "E1", "PATH_INFO is the raw path, %-escapes and raw bytes alike, as Latin-1 (PEP 3333)",
        "tornado_wsgi_server/container.py",
        'unquote_to_bytes(path.encode("latin-1"))',
        "unquote_to_bytes(path)",
        (ENVIRON,),
    ),
    Mutation(
        "E2", "a chunked body reaches the application with its length, without Transfer-Encoding",
        "tornado_wsgi_server/container.py",
        'environ.pop("HTTP_TRANSFER_ENCODING", None)',
        "None",
        (ENVIRON,),
    ),
    Mutation(
        "E3", "absolute-form targets keep their query; their authority is the Host (RFC 9112 3.2.2)",
        "tornado_wsgi_server/container.py",
        "absolute = _ABSOLUTE_FORM.fullmatch(target)",
        "absolute = None",
        (ENVIRON,),
    ),
    Mutation(
        "E4", "two Content-Type headers get 400",
        "tornado_wsgi_server/container.py",
        'if key == "CONTENT_TYPE" and key in environ:',
        "if False:",
        (ENVIRON,),
    ),
    Mutation(
        "E5", "SERVER_PORT is the port the request reached, not what Host says",
        "tornado_wsgi_server/container.py",
        'environ["SERVER_PORT"] = self.server_port',
        'environ["SERVER_PORT"] = split_host(environ.get("HTTP_HOST", ""))[1] or self.server_port',
        (ENVIRON,),
    ),
    Mutation(
        "W1", "WebSockets are pinged ... and closed when the peer does not answer",
        "tornado_wsgi_server/application.py",
        "websocket_ping_interval=options.websocket_ping_interval,",
        "",
        (WEBSOCKET,),
    ),
    Mutation(
        "W2", "a message over `--websocket-max-message-size` closes the connection",
        "tornado_wsgi_server/application.py",
        "websocket_max_message_size=options.websocket_max_message_size,",
        "",
        (WEBSOCKET,),
    ),
    Mutation(
        "W3", "at most `--max-websockets` WebSockets are open per process; beyond it a new one gets `503`",
        "tornado_wsgi_server/application.py",
        "if len(live) >= self.max_websockets:",
        "if False:",
        (WEBSOCKET,),
    ),
    Mutation(
        "W4", "`--max-websockets`: half of `--max-connections` by default",
        "tornado_wsgi_server/options.py",
        "options.max_websockets = options.max_connections // 2",
        "options.max_websockets = options.max_connections",
        (WEBSOCKET,),
    ),
    Mutation(
        "W5", ROUTES_PROMISE + ": a `Host` not in `DJANGO_ALLOWED_HOSTS` gets `400`",
        "tornado_wsgi_server/application.py",
        "if not domain or not validate_host(domain, self.allowed_hosts):",
        "if False:",
        (WEBSOCKET,),
    ),
    Mutation(
        "W6", ROUTES_PROMISE + ": an `Origin` other than the `Host` gets `403`",
        "tornado_wsgi_server/application.py",
        "if (origin is not None and urlsplit(origin).netloc.lower() != host.lower()",
        "if (False",
        (WEBSOCKET,),
    ),
    Mutation(
        "P6", "`--max-header-size`: past this plus 4 KB the connection is closed unanswered",
        "tornado_wsgi_server/process.py",
        "max_header_size=options.max_header_size + 4 * 1024",
        "max_header_size=256 * 1024 * 1024",
        (LIMITS,),
    ),
    Mutation(
        "P7", "Bodies over 64 KB wait in a temporary file",
        "tornado_wsgi_server/task.py",
        "_SPOOL_SIZE = 64 * 1024",
        "_SPOOL_SIZE = 1024**4",
        (LIMITS,),
    ),
    Mutation(
        "P8", "`--body-timeout`: Seconds a client may take to send a whole body",
        "tornado_wsgi_server/uploads.py",
        "if now >= self.deadline:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P9", "at the limit the longest-idle keep-alive connection is closed",
        "tornado_wsgi_server/connections.py",
        "container.close_idle(1) or container.evict_upload()",
        "container.evict_upload()",
        (CONNECTIONS,),
    ),
    Mutation(
        "P21b", "at the limit ... then a download its client has not read for 5 s",
        "tornado_wsgi_server/connections.py",
        " or container.evict_stalled_reader()",
        "",
        (f"{CONNECTIONS}::test_stalled_readers_at_the_connection_limit_are_evicted",),
    ),
    Mutation(
        "P21", "at the limit the longest-idle keep-alive connection is closed, then the slowest upload",
        "tornado_wsgi_server/connections.py",
        "container.close_idle(1) or container.evict_upload()",
        "container.close_idle(1)",
        (CONNECTIONS,),
    ),
    Mutation(
        "P22", "`--min-body-rate`: a slower upload is closed",
        "tornado_wsgi_server/uploads.py",
        "if self.received - self.window_received < options.min_body_rate * window:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P23", "`--max-connections-per-ip`: more from that address are refused",
        "tornado_wsgi_server/connections.py",
        "if client and self._over_address_cap(client, key):",
        "if False:",
        (CONNECTIONS,),
    ),
    Mutation(
        "P24", "`--max-connections-per-ip`: addresses in `--trusted-proxies` are exempt",
        "tornado_wsgi_server/connections.py",
        "if any(ip in network for network in self.container.trusted):\n            return False",
        "if False:\n            return False",
        (CONNECTIONS,),
    ),
    Mutation(
        "P25", "Refused connections are logged at most once a minute per address",
        "tornado_wsgi_server/container.py",
        "if now - noted.get(key, -60.0) < 60.0:",
        "if False:",
        (CONNECTIONS,),
    ),
    Mutation(
        "P26", "When the server answers `Connection: close` it closes right after the last byte "
        "(a request pipelined behind a 413/503 is never run)",
        "tornado_wsgi_server/http1.py",
        'if close_delimited or headers.get("Connection", "").lower() == "close":',
        "if close_delimited:",
        (FRAMING,),
    ),
    Mutation(
        "P28a", "a non-ASCII `Content-Length` gets `400 Bad Request` ..., never an ERROR traceback",
        "tornado_wsgi_server/http1.py",
        "if len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0]):",
        "if len(lengths) != 1 or not lengths[0].isdigit():",
        (LIMITS,),
    ),
    Mutation(
        "P28b", "a bad chunk end gets `400 Bad Request`",
        "tornado_wsgi_server/http1.py",
        'if not startswith(b"\\r\\n", stop):',
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P29", "More than 100 header lines get `431`",
        "tornado_wsgi_server/http1.py",
        "if data.count(b\"\\n\") > MAX_HEADER_FIELDS + 3:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P30", "A chunked body in tiny chunks ... gets `400`",
        "tornado_wsgi_server/http1.py",
        "if total_chunks + extensions > FREE_CHUNKS + total_size // MIN_AVERAGE_CHUNK:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P31", "Chunk extensions are checked, then ignored",
        "tornado_wsgi_server/http1.py",
        'rb"([0-9A-Fa-f]{1,16})(?:[ \\t]*;[ \\t]*%s',
        'rb"([0-9A-Fa-f]{1,16})(?:;%s',
        (LIMITS,),
    ),
    Mutation(
        "P32", "HTTP/1.0 clients never get `100 Continue`",
        "tornado_wsgi_server/http1.py",
        'headers.pop("Expect", None)',
        "pass",
        (FRAMING,),
    ),
    Mutation(
        "P33", "an upload that runs on after its `413` is cut off with the 413 alone",
        "tornado_wsgi_server/http1.py",
        "if self._response_start_line is not None:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "F1", "a `Content-Length` that is not one field of digits, two of them even if equal, ... gets `400`",
        "tornado_wsgi_server/http1.py",
        "if len(lengths) != 1 or not _DIGITS.fullmatch(lengths[0]):",
        "if not _DIGITS.fullmatch(lengths[-1]):",
        (LIMITS + "::test_content_length_must_be_one_field_of_digits",),
    ),
    Mutation(
        "F2", "the body watch is armed whenever a body may be read (`--min-body-rate`, chunked too)",
        "tornado_wsgi_server/task.py",
        'if length or "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0":',
        "if length > 0:",
        (LIMITS + "::test_slow_body_is_closed_by_min_body_rate",),
    ),
    Mutation(
        "F3", "A transfer coding other than `chunked` alone gets `400` or `501`",
        "tornado_wsgi_server/http1.py",
        'if len(codings) == 1 and codings[0].lower() == "chunked":',
        'if "chunked" in codings[-1].lower():',
        (LIMITS + "::test_transfer_encoding_other_than_chunked_is_refused",),
    ),
    Mutation(
        "F4", "HTTP/1.x other than 1.0 and 1.1 `505`",
        "tornado_wsgi_server/http1.py",
        'if start_line.version not in ("HTTP/1.1", "HTTP/1.0"):',
        "if False:",
        (FRAMING + "::test_other_http1_versions_get_505",),
    ),
    Mutation(
        "F5", "a bad chunk ... extension ... gets `400 Bad Request`",
        "tornado_wsgi_server/http1.py",
        '_TOKEN = rb"[!#$%&\'*+\\-.^_`|~0-9A-Za-z]+"',
        '_TOKEN = rb"[^;=\\r\\n]+"',
        (FRAMING + "::test_malformed_chunk_lines_get_400",),
    ),
    Mutation(
        "F6", "a bare CR or LF in a ... trailer line ... gets `400 Bad Request`",
        "tornado_wsgi_server/http1.py",
        "if not _TRAILER_LINE.fullmatch(line):",
        "if False:",
        (FRAMING + "::test_trailer_line_with_a_bare_lf_does_not_swallow_the_next_request",),
    ),
    Mutation(
        "F7", "HTTP/1.0 clients ... that send `Transfer-Encoding` [are] answered, then the connection closes",
        "tornado_wsgi_server/http1.py",
        '        if "Transfer-Encoding" in headers:\n            return False\n',
        "",
        (FRAMING + "::test_http10_with_transfer_encoding_is_answered_then_closed",),
    ),
    Mutation(
        "F8", "When the server answers `Connection: close` it closes (`Connection` read as a token list)",
        "tornado_wsgi_server/http1.py",
        'if "close" in tokens:',
        'if tokens == {"close"}:',
        (FRAMING + "::test_connection_header_is_a_token_list",),
    ),
    Mutation(
        "F9", "an HTTP/1.1 request without exactly one `Host` ... gets `400 Bad Request`",
        "tornado_wsgi_server/http1.py",
        'if hosts > 1 or (hosts == 0 and start_line.version == "HTTP/1.1"):',
        "if hosts > 1:",
        (FRAMING + "::test_http11_needs_exactly_one_host",),
    ),
    Mutation(
        "F10", "`CONNECT` `501`",
        "tornado_wsgi_server/http1.py",
        'if method == "CONNECT":',
        "if False:",
        (FRAMING + "::test_odd_request_targets_never_reach_django",),
    ),
    Mutation(
        "F11", "`OPTIONS *` gets an empty `200` from the server",
        "tornado_wsgi_server/http1.py",
        'if target == "*" and method == "OPTIONS":',
        "if False:",
        (FRAMING + "::test_options_asterisk_is_answered_by_the_server",),
    ),
    Mutation(
        "F12", "Largest request body (`413` beyond): a declared chunk",
        "tornado_wsgi_server/http1.py",
        "            delegate.body_too_large()\n",
        "            pass\n",
        (LIMITS + "::test_chunk_declared_past_the_limit_gets_413",),
    ),
    Mutation(
        "F13", "Largest request body (`413` beyond): a Content-Length of thousands of digits",
        "tornado_wsgi_server/http1.py",
        'return int(digits or "0") if len(digits) <= 18 else _HUGE',
        'return int(digits or "0")',
        (LIMITS + "::test_content_length_of_thousands_of_digits_gets_413",),
    ),
    Mutation(
        "F14", "A chunked body in small chunks (more than 1024 chunks plus one per 512 bytes ...) gets `400`",
        "tornado_wsgi_server/http1.py",
        "MIN_AVERAGE_CHUNK = 512",
        "MIN_AVERAGE_CHUNK = 64",
        (LIMITS + "::test_chunked_body_costs_little_more_than_a_content_length",),
    ),
    Mutation(
        "F15", "the server runs only requests that h11 ... reads the same way from the same bytes",
        "tornado_wsgi_server/http1.py",
        'text = _EMPTY_LINES.sub("", text, count=1)',
        'text = text.lstrip("\\r\\n")',
        ("tests/server/test_h11_differential.py",),
    ),
    Mutation(
        "F16", "request targets that are neither a path nor an absolute URL are answered by the server",
        "tornado_wsgi_server/http1.py",
        'if not target.startswith("/") and not target[:8].lower().startswith(("http://", "https://")):',
        "if False:",
        (FRAMING + "::test_odd_request_targets_never_reach_django",),
    ),
    Mutation(
        "P10", "`--max-connections`: Open connections per process (WebSockets count)",
        "tornado_wsgi_server/connections.py",
        "count = len(self._connections) + len(self.detached)\n        if count >=",
        "count = len(self._connections)\n        if count >=",
        (CONNECTIONS, FRAMING),
    ),
    Mutation(
        "P14", "`--max-header-size`: Largest request line + headers (`431` beyond)",
        "tornado_wsgi_server/task.py",
        "if head_size > options.max_header_size:",
        "if False:",
        (LIMITS,),
    ),
    Mutation(
        "P15", "`--max-connections` 1000: Open connections per process (the open-file limit is raised)",
        "tornado_wsgi_server/connections.py",
        '"""Let one process hold thousands of sockets (Unix soft limits are often 1024)."""\n',
        '"""Let one process hold thousands of sockets (Unix soft limits are often 1024)."""\n'
        "    return\n",
        (CONNECTIONS,),
    ),
    Mutation(
        "P16", "`--workers`: Processes sharing the port (a burst spreads over all of them)",
        "tornado_wsgi_server/connections.py",
        "per_turn = 1 if self.container.multiprocess else 128",
        "per_turn = 128",
        (WORKERS,),
    ),
    Mutation(
        "P17", DRAIN_PROMISE + " (SIGTERM to a worker)",
        "tornado_wsgi_server/supervisor.py",
        'signal.signal(signal.SIGTERM, lambda signum, frame: server.stop("SIGTERM"))',
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)",
        (SHUTDOWN, WORKERS),
    ),
    Mutation(
        "P18", "on stop the port closes",
        "tornado_wsgi_server/process.py",
        "        server.stop()  # no new connections; the port is free again\n",
        "",
        (SHUTDOWN,),
    ),
    Mutation(
        "P19", "workers exit on their own if the supervisor disappears",
        "tornado_wsgi_server/supervisor.py",
        'reason = "supervisor is gone"',
        "return",
        (WORKERS,),
    ),
    Mutation(
        "P20", "eight 1-second requests take about one second with 8 threads",
        "tornado_wsgi_server/container.py",
        "RequestQueue(options.threads,",
        "RequestQueue(1,",
        ("tests/test_concurrency.py",),
    ),
    Mutation(
        "S1", "200 concurrent writes through 2 workers all succeed (SQLite: WAL, IMMEDIATE, timeout)",
        f"{PACKAGE}/settings.py",
        '    DATABASES["default"].setdefault("OPTIONS", {}).update(\n'
        "        {\n"
        '            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",\n'
        '            "transaction_mode": "IMMEDIATE",\n'
        '            "timeout": env.int("SQLITE_TIMEOUT", default=20),\n'
        "        }\n"
        "    )\n",
        "    pass\n",
        ("tests/test_scaling.py",),
    ),
    Mutation(
        "B1", "installs `requirements.txt` into it — again only when that file changes",
        "tornado_wsgi_server/bootstrap.py",
        "return not (STAMP.exists() and STAMP.read_text().strip() == requirements_digest())",
        "return not STAMP.exists()",
        ("tests/test_bootstrap.py",),
    ),
    Mutation(
        "Q1", "a request that has waited `--max-queue-wait` seconds gets the same `503` and never reaches Django",
        "tornado_wsgi_server/request_queue.py",
        "    if now - task.queued_at > longest:",
        "    if False:",
        (f"{OVERLOAD}::test_queue_wait_has_a_deadline",),
    ),
    Mutation(
        "Q2", "a request whose client hung up while it waited is dropped unrun",
        "tornado_wsgi_server/request_queue.py",
        "    if task.gone():",
        "    if False:",
        (f"{OVERLOAD}::test_client_gone_while_queued_never_reaches_the_app",),
    ),
    Mutation(
        "Q3", "Overloaded: ... the newest request is served first, and a request that has waited more than half a typical request's time ... gets the `503`",
        "tornado_wsgi_server/request_queue.py",
        "            self.overloaded = (",
        "            self.overloaded = False and (",
        (f"{OVERLOAD}::test_standing_queue_serves_newest_first",),
    ),
    Mutation(
        "Q4", "Overloaded: when the queue ... has grown since then (... unlike a burst that is draining away)",
        "tornado_wsgi_server/request_queue.py",
        "len(self._waiting) + self.refused > lengths[0][1]",
        "len(self._waiting) + self.refused >= lengths[0][1]",
        (f"{OVERLOAD}::test_a_burst_that_drains_is_served_in_order",
         f"{OVERLOAD}::test_a_queue_that_stops_growing_is_not_an_overload"),
    ),
    Mutation(
        "Q5", "Overloaded: ... and at least half as many again came as left (clients that each wait for their answer keep the queue from emptying, but that is no overload)",
        "tornado_wsgi_server/request_queue.py",
        "                and self._arrived + self.refused - lengths[0][2]\n",
        "                and self._arrived + self.refused - lengths[0][2] + 10**9\n",
        (f"{OVERLOAD}::test_clients_that_wait_for_their_answers_are_not_an_overload",),
    ),
    Mutation(
        "SV1", 'the service reports "starting" until Django is loaded and the port is bound, then "running"',
        "tornado_wsgi_server/service_runner.py",
        'self.report("start_pending", 30000)',
        'self.report("running", 30000)',
        (SERVICE,),
    ),
    Mutation(
        "SV2", 'Asked for its state (`sc interrogate`), it gives the real one, never "running" while it stops',
        "tornado_wsgi_server/service_runner.py",
        "self.status.report(self.state, 10000, 0)",
        'self.status.report("running", 10000, 0)',
        (SERVICE,),
    ),
    Mutation(
        "SV3", "When Windows shuts down ... requests in flight get up to 5 seconds",
        "tornado_wsgi_server/service_runner.py",
        'self.stop("Windows is shutting down", SHUTDOWN_DRAIN_TIMEOUT)',
        'self.stop("Windows is shutting down")',
        (SERVICE,),
    ),
    Mutation(
        "C1", "out of file descriptors, it logs it once and pauses accepting ... instead of spinning",
        "tornado_wsgi_server/connections.py",
        "                loop.remove_handler(sock)\n                loop.call_later(ACCEPT_BACKOFF, resume)\n",
        "",
        (STARTUP,),
    ),
    Mutation(
        "O1", "Output never stops the server: a project name or path with characters the console's code page lacks",
        "tornado_wsgi_server/logs.py",
        'stream.reconfigure(errors="backslashreplace")',
        "pass",
        (STARTUP,),
    ),
    Mutation(
        "M1", "`/metrics` sums every worker process: one scrape shows the whole server",
        "tornado_wsgi_server/metrics_hub.py",
        "            for snap in processes:\n                metrics.add_counts(total, snap)",
        "            for snap in processes[:1]:\n                metrics.add_counts(total, snap)",
        (f"{METRICS}::test_requests_over_two_workers_are_counted_once_each",),
    ),
    Mutation(
        "M2", "An address other than loopback is refused unless `--metrics-public` is given",
        "tornado_wsgi_server/options.py",
        "    if options.metrics and not options.metrics_public and not is_loopback(options.metrics[0]):",
        "    if False:",
        (f"{METRICS}::test_metrics_listener_refuses_a_public_address_unless_asked",),
    ),
    Mutation(
        "M3", "A bare port listens on 127.0.0.1 only",
        "tornado_wsgi_server/options.py",
        '        host = "127.0.0.1"',
        '        host = "::"',
        (f"{METRICS}::test_a_bare_port_listens_on_loopback_only",),
    ),
    Mutation(
        "M4", "`tornado_server_requests_shed_total` by reason: `queue_full` (503 at once) ...; `tornado_server_requests_rejected_total`",
        "tornado_wsgi_server/task.py",
        '        self.container.metrics.count("shed queue full" if code == 503 else f"rejected {code}")',
        "        pass",
        (f"{METRICS}::test_shed_and_rejected_requests_are_counted_by_reason",),
    ),
    Mutation(
        "T1", "Ctrl+C, Ctrl+Break ...: requests in flight get up to `--drain-timeout` seconds "
              "(with `--workers`: the console's Ctrl+C reaches the workers too)",
        "tornado_wsgi_server/supervisor.py",
        '    signal.signal(signal.SIGINT, signal.SIG_IGN)\n    if hasattr(signal, "SIGBREAK"):\n'
        '        signal.signal(signal.SIGBREAK, signal.SIG_IGN)\n',
        "",
        (f"{WORKERS}::test_ctrl_c_in_the_console_lets_the_workers_finish_their_requests",),
    ),
    Mutation(
        "T2", "`requests_shed_total` by reason: past `--max-queue-wait` (deadline)",
        "tornado_wsgi_server/metrics.py",
        'events["shed deadline"] += shed["deadline"]',
        'events["shed deadline"] += 0',
        (f"{OVERLOAD}::test_queue_wait_has_a_deadline",),
    ),
    Mutation(
        "T3", "`requests_shed_total` by reason: the client had gone (client_gone)",
        "tornado_wsgi_server/metrics.py",
        'events["shed client gone"] += shed["client gone"]',
        'events["shed client gone"] += 0',
        (f"{OVERLOAD}::test_client_gone_while_queued_never_reaches_the_app",),
    ),
    Mutation(
        "M5", "The status page is for staff only: anyone else is sent to the admin login",
        "tornado_wsgi_server/status/views.py",
        "@staff_member_required\n@never_cache\ndef status_page(request):",
        "@never_cache\ndef status_page(request):",
        (f"{STATUS_PAGE}::test_anonymous_users_are_sent_to_the_login_page",),
    ),
    Mutation(
        "M6", "The status page's charts update themselves every 2 seconds",
        "tornado_wsgi_server/status/static/tornado_status/status.js",
        ".then(function () { window.setTimeout(poll, POLL_MS); });",
        ";",
        (f"{STATUS_PAGE}::test_staff_see_the_chart_move_while_requests_come_in",),
    ),
    Mutation(
        "M7", "a worker that crashes ... its earlier counts stay in the totals",
        "tornado_wsgi_server/metrics_hub.py",
        "                metrics.add_counts(self.retired, gone)",
        "                pass",
        (f"{METRICS}::test_a_replaced_worker_is_counted_and_its_requests_stay_in_the_total",),
    ),
    Mutation(
        "H1", "Static files come from WhiteNoise with hashed names, immutable caching",
        f"{PACKAGE}/templates/base.html",
        "href=\"{% static 'css/site.css' %}\"",
        'href="/static/css/site.css"',
        ("tests/test_site.py",),
    ),
    Mutation(
        "WD1", "Such a request gets `504 Gateway Timeout` ... if none of its response was sent",
        "tornado_wsgi_server/container.py",
        "Watchdog(self, options.request_timeout) if options.request_timeout else None",
        "None",
        (WATCHDOG,),
    ),
    Mutation(
        "WD2", "`504 Gateway Timeout` with `Connection: close`: the connection ends after it",
        "tornado_wsgi_server/sending.py",
        '                "Connection": "close",\n            })\n            self.send_whole(',
        '            })\n            self.send_whole(',
        (WATCHDOG,),
    ),
    Mutation(
        "WD3", "the server counts it [a stuck thread] as busy: new requests ... get `503`",
        "tornado_wsgi_server/sending.py",
        "if not self.released and not self.stuck:",
        "if not self.released:",
        (WATCHDOG,),
    ),
    Mutation(
        "WD4", "When the view returns, the thread serves again",
        "tornado_wsgi_server/request_queue.py",
        "                        self._returned(finished)\n",
        "                        pass\n",
        (WATCHDOG,),
    ),
    Mutation(
        "WD5", "one `WARNING` ... with ... the Python stack of its thread",
        "tornado_wsgi_server/watchdog.py",
        "frames.get(task.thread_ident)",
        "None",
        (WATCHDOG,),
    ),
    Mutation(
        "WD6", "a streaming response makes progress each time its iterator gives a part",
        "tornado_wsgi_server/task.py",
        "self.app_since = time.monotonic()  # progress: the watchdog counts from here",
        "pass",
        (WATCHDOG,),
    ),
    Mutation(
        "WD7", "When all threads of a process are stuck, one more `WARNING` says so",
        "tornado_wsgi_server/watchdog.py",
        "if self.stuck >= self.threads and not self.all_stuck_reported and now >= self.ask_again_at:",
        "if False:",
        (WATCHDOG,),
    ),
    Mutation(
        "RL1", "reload returns once every worker is new, so every request after it gets the new code",
        "tornado_wsgi_server/control.py",
        "if self.started and len(self.times) >= self.total and self.gone >= self.total:",
        "if self.started and len(self.times) >= self.total:",
        (RELOAD,),
    ),
    Mutation(
        "RL2", "Reload: the old worker answers what still comes on its open connections; no request fails",
        "tornado_wsgi_server/process.py",
        "        if self.retire:\n",
        "        if False:\n",
        (RELOAD,),
    ),
    Mutation(
        "RL3", "If a new worker cannot start (the code does not import), the old workers keep serving",
        "tornado_wsgi_server/application.py",
        "get_resolver().url_patterns  # noqa: B018",
        "pass",
        (RELOAD,),
    ),
    Mutation(
        "RL4", "The control channel obeys only a request carrying the random token",
        "tornado_wsgi_server/control.py",
        "not hmac.compare_digest(token.encode(), self.token.encode())",
        "False",
        (RELOAD,),
    ),
    Mutation(
        "RL5", "On Linux and macOS the control file is readable by the server's user only (mode 0600)",
        "tornado_wsgi_server/control.py",
        "os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)",
        "os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)",
        (RELOAD,),
    ),
    Mutation(
        "RL6", "--max-requests N replaces each worker after about N requests",
        "tornado_wsgi_server/process.py",
        "if not asked and container.requests_started >= limit:",
        "if not asked and container.requests_started >= limit * 1000:",
        (RELOAD,),
    ),
    Mutation(
        "DT1", "a request whose `Host` is not in `DJANGO_ALLOWED_HOSTS` ... is one `WARNING` line at most once a minute",
        f"{PACKAGE}/settings.py",
        '"django.security.DisallowedHost": {"filters": ["disallowed_host"], "propagate": True},',
        "",
        ("tests/test_error_reports.py::test_a_flood_of_wrong_host_headers_logs_a_few_warnings",),
    ),
    Mutation(
        "DT2", "once `EMAIL_URL` names a mail server, mailed to `DJANGO_ADMINS`",
        f"{PACKAGE}/settings.py",
        '"handlers": ["mail_admins"] if EMAIL_URL else []',
        '"handlers": []',
        ("tests/test_error_reports.py::test_a_server_error_is_mailed_to_the_admins",),
    ),
    Mutation(
        "DT3", "A file is taken as PFX by its name (`.pfx`, `.p12`) or when it is not PEM text",
        "tornado_wsgi_server/tls.py",
        'return not start.startswith(b"-----") and b"-----BEGIN" not in start',
        "return False",
        (PROXY,),
    ),
    Mutation(
        "DT4", "the key is written ... to a private temporary file that is deleted as soon as it is loaded",
        "tornado_wsgi_server/tls.py",
        "        os.unlink(temporary)",
        "        pass",
        (PROXY,),
    ),
    Mutation(
        "DT5", "SQLite: the copy is made with SQLite's online backup API ... with every committed write",
        f"{PACKAGE}/backups.py",
        "        source.backup(copy, pages=-1)",
        "        shutil.copyfile(database_file, target)",
        ("tests/test_backups.py::test_backup_while_clients_write_restores_every_acknowledged_write",),
    ),
    Mutation(
        "DT6", "when the project has a `wheelhouse` folder with wheels in it, `bootstrap.py` installs from it alone",
        "tornado_wsgi_server/bootstrap.py",
        '        command += ["--no-index", "--find-links", WHEELHOUSE]',
        "        pass",
        ("tests/test_bootstrap.py::test_first_start_installs_from_the_wheelhouse_with_no_network",),
    ),
    Mutation(
        "DT7", "If the Windows service runs, it is stopped first (requests in flight finish)",
        "tornado_wsgi_server/upgrading.py",
        "            if self.service_running:\n                # pip cannot replace",
        "            if False:\n                # pip cannot replace",
        ("tests/test_upgrade.py::test_the_service_is_stopped_for_pip_and_started_on_the_new_code",),
    ),
    Mutation(
        "DT8", "then the service, if it runs, gets a drained restart",
        "tornado_wsgi_server/upgrading.py",
        "        if self.service_running and (failed or not ports):",
        "        if False:",
        ("tests/test_upgrade.py::test_a_service_that_cannot_reload_gets_a_drained_restart",),
    ),
    Mutation(
        "UG1", "a failed upgrade: the migrations this upgrade applied are reversed (the old code keeps serving)",
        "tornado_wsgi_server/upgrading.py",
        "            reverse_migrations(self.migrations_before)\n",
        "            pass\n",
        ("tests/test_upgrade.py::test_a_failing_migration_is_undone_and_the_old_code_keeps_serving",),
    ),
    Mutation(
        "UG2", "the service was stopped for pip: the database is restored from the backup",
        "tornado_wsgi_server/upgrading.py",
        '            manage("restore", "--noinput", str(self.backup))\n',
        "            pass\n",
        ("tests/test_upgrade.py::test_the_service_stopped_for_pip_gets_its_database_and_packages_back",),
    ),
    Mutation(
        "UG3", "a database at the project root is moved into data\\ with every row, the -wal file's too",
        "tornado_wsgi_server/database_location.py",
        "                source.backup(copy, pages=-1)\n",
        "                copy.close()\n                partial.write_bytes(old.read_bytes())\n"
        "                copy = sqlite3.connect(partial)\n",
        ("tests/test_upgrade.py::test_a_database_at_the_root_is_used_with_a_warning_then_moved_with_every_row",),
    ),
    Mutation(
        "UG4", "A file held by an antivirus or EDR (WinError 5 or 32) makes pip try again, twice, 5 s apart",
        "tornado_wsgi_server/bootstrap.py",
        "        if code == 0 or not locked_file_error(output) or attempt == attempts:",
        "        if True:",
        ("tests/test_bootstrap.py::test_an_install_held_up_by_a_scanner_succeeds_on_a_later_attempt",),
    ),
    Mutation(
        "UG5", "exit code 3: prepared, but no running server took the new code",
        "tornado_wsgi_server/upgrading.py",
        "        return NOT_SWITCHED\n",
        "        return UPGRADED\n",
        ("tests/test_upgrade.py::test_exit_codes_for_bad_input_and_for_nothing_to_switch",),
    ),
    Mutation(
        "UG6", "A backup: manage.py backup, into backups\\, before migrating",
        "tornado_wsgi_server/upgrading.py",
        "        if not self.options.no_backup:\n",
        "        if False:\n",
        ("tests/test_upgrade.py::test_a_release_is_backed_up_migrated_and_reloaded",),
    ),
    Mutation(
        "AD1", "With `SERVER_HOST=0.0.0.0` its first lines list what other computers can use",
        "tornado_wsgi_server/process.py",
        "    if everywhere:  # the loopback URL above is not what other computers type",
        "    if False:",
        (ADMIN,),
    ),
    Mutation(
        "AD2", "[the banner names] the names `DJANGO_ALLOWED_HOSTS` would refuse",
        "tornado_wsgi_server/lan.py",
        "    refused = refused_hosts(names, allowed_hosts) if allowed_hosts is not None else []",
        "    refused = []",
        (ADMIN,),
    ),
    Mutation(
        "AD3", "restart on failure ... *with the failure flag*, so that a stop with an error restarts the service too",
        "tornado_wsgi_server/windows_admin.py",
        '        ["sc.exe", "failureflag", name, "1"],\n',
        "",
        (ADMIN,),
    ),
    Mutation(
        "AD4", "`install` also sets ... delayed automatic start",
        "tornado_wsgi_server/windows_admin.py",
        "    if delayed_start:\n        commands.append(delayed_start_command(name))",
        "    if False:\n        commands.append(delayed_start_command(name))",
        (ADMIN,),
    ),
    Mutation(
        "AD5", "`service.bat install` does it [the firewall rule] for the service when `SERVER_HOST` is not a loopback address",
        "tornado_wsgi_server/windows_admin.py",
        "    if serves_other_computers(host):\n        commands += firewall_open_commands(name, port)",
        "    if False:\n        commands += firewall_open_commands(name, port)",
        (ADMIN,),
    ),
    Mutation(
        "AD6", "`service.bat remove` deletes it [the firewall rule]",
        "tornado_wsgi_server/windows_admin.py",
        "    return [firewall_close_command(name)]",
        "    return []",
        (ADMIN,),
    ),
    Mutation(
        "AD7", "The console server turns off QuickEdit for its own window",
        "tornado_wsgi_server/windows_admin.py",
        "    return (mode & ~ENABLE_QUICK_EDIT_MODE) | ENABLE_EXTENDED_FLAGS",
        "    return mode | ENABLE_EXTENDED_FLAGS",
        (ADMIN,),
    ),
    Mutation(
        "AD8", "deploy/web.config: the server-wide ARR settings as `appcmd` commands (the original Host ...)",
        "deploy/web.config",
        '/preserveHostHeader:"True"',
        '/preserveHostHeader:"False"',
        ("tests/test_deploy_iis.py",),
    ),
    Mutation(
        "AD9", "`DATABASE_CONNECT_TIMEOUT` 5: PostgreSQL: seconds to wait for a new connection",
        f"{PACKAGE}/settings.py",
        'env.int("DATABASE_CONNECT_TIMEOUT", default=5)',
        'env.int("DATABASE_CONNECT_TIMEOUT", default=30)',
        ("tests/test_database_settings.py",),
    ),
    Mutation(
        "AD10", "`DJANGO_TIME_ZONE`: checked at start, also on Windows",
        f"{PACKAGE}/settings.py",
        "    zoneinfo.ZoneInfo(TIME_ZONE)\nexcept",
        "    pass\nexcept",
        (f"{STARTUP}::test_time_zone_name_is_checked_at_start",),
    ),
    Mutation(
        "AD11", "[a bind error names its likely cause] This machine has no address",
        "tornado_wsgi_server/connections.py",
        "    if codes & {errno.EADDRNOTAVAIL, 10049}:",
        "    if False:",
        (f"{STARTUP}::test_address_this_machine_lacks_is_a_clear_error",),
    ),
    Mutation(
        "SN1", "`install`, `start`, `stop`, `restart`, `reload` and `remove` refuse a service of that name installed from another folder",
        "tornado_wsgi_server/service_control.py",
        "    if folder is not None and same_folder(folder, str(project.directory)):\n        return\n",
        "    return\n",
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "SN2", "Each command waits for the outcome (a stop: the drain time plus 30 s)",
        "tornado_wsgi_server/service_control.py",
        "        if state is None or state.state != pending or clock() >= deadline:",
        "        if True:",
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "SN3", "By default the service runs as its own virtual account, `NT SERVICE\\<name>`",
        "tornado_wsgi_server/service_control.py",
        "account = given or stored or windows_admin.virtual_account(self.name)",
        "account = given or stored or windows_admin.LOCAL_SYSTEM",
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "SN4", "Every `service.bat start` and `restart` replaces it [the rule] for the port and host the service is about to serve",
        "tornado_wsgi_server/service_control.py",
        "        self.sync_firewall(options)\n",
        "",
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "SN5", "`install` gives it exactly these rights: ... `data\\` and `logs\\`: change",
        "tornado_wsgi_server/windows_admin.py",
        'commands.append(["icacls", ntpath.join(project_dir, writable), "/grant:r", f"{account}:(OI)(CI)M"])',
        'commands.append(["icacls", ntpath.join(project_dir, writable), "/grant:r", f"{account}:(OI)(CI)F"])',
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "SN6", "Python installed for one user ... `install` detects it and refuses, naming the fix",
        "tornado_wsgi_server/service_control.py",
        'if kind in ("virtual", "builtin") and windows_admin.per_user_python(',
        'if False and windows_admin.per_user_python(',
        (SERVICE_CONTROL,),
    ),
    Mutation(
        "AD12", "Other variables in the service's `Environment` registry value (a proxy, say) are kept",
        "tornado_wsgi_server/windows_service.py",
        'return [entry for entry in existing if not entry.upper().startswith("PATH=")] + ["PATH=" + path]',
        'return ["PATH=" + path]',
        (ADMIN,),
    ),
    Mutation(
        "L1", "at the limit ... then a download its client has not read for 5 s (any response: a page sent whole too)",
        "tornado_wsgi_server/sending.py",
        "            self.watch.on_drained = self.left_responding\n",
        "            self.container.responding.discard(self)\n",
        (f"{CONNECTIONS}::test_clients_that_do_not_read_a_whole_page_are_evicted_at_the_limit",),
    ),
    Mutation(
        "L2", "`--min-send-rate`: a slower client is closed and its thread freed",
        "tornado_wsgi_server/sending.py",
        "            if sent < self.min_rate * elapsed:\n",
        "            if False:\n",
        (f"{STREAMING}::test_a_client_that_reads_too_slowly_loses_its_stream_and_the_thread_serves_again",),
    ),
    Mutation(
        "L3", "an error while the loop answers a static file is handled on a thread (500 page, error mail)",
        "tornado_wsgi_server/task.py",
        "            if self.on_loop and not self.headers_sent and isinstance(exc, Exception):\n",
        "            if False:\n",
        (f"{STATIC}::test_a_static_file_error_is_handled_on_a_thread_not_the_loop",),
    ),
    Mutation(
        "L4", "long request targets are logged cut to 2 KB, with their length",
        "tornado_wsgi_server/logs.py",
        "                record.args = tuple(_shortened(value) for value in args)\n",
        "                pass\n",
        (f"{OPTIONS}::test_a_huge_request_target_gives_short_log_lines_and_a_stop_loses_none",),
    ),
    Mutation(
        "L5", "what the event loop logs is written by another thread: a held log file lock never stalls it",
        "tornado_wsgi_server/logs.py",
        "            _records.put((self, record))\n",
        "            self.dispatch(record)\n",
        (f"{OPTIONS}::test_a_held_log_file_lock_does_not_hold_up_the_event_loop",),
    ),
    Mutation(
        "L6", "large files are sent by the loop but read by threads of their own (a slow share never stalls the loop)",
        "tornado_wsgi_server/sending.py",
        "            FILE_READER.read(self.fd, size, self._block_read, self.call_on_loop)\n",
        "            block = os.read(self.fd, size)\n"
        "            self._block_read(block, None)\n",
        (f"{STREAMING}::test_large_files_are_read_off_the_event_loop",),
    ),
    Mutation(
        "RS1", "a worker whose replacement failed serves on and asks again (told by the supervisor)",
        "tornado_wsgi_server/supervisor.py",
        "            worker_link.replacement_failed()  # no new worker: this one serves on\n",
        "            pass\n",
        (f"{RELOAD}::test_worker_whose_recycle_failed_serves_on_and_asks_again_later",),
    ),
    Mutation(
        "RS2", "`--max-requests`: after a failed replacement, asks again only after as many requests more",
        "tornado_wsgi_server/process.py",
        "                asked, limit = False, container.requests_started + options.max_requests\n",
        "                asked = False\n",
        (f"{RELOAD}::test_worker_whose_recycle_failed_serves_on_and_asks_again_later",),
    ),
    Mutation(
        "RS3", "the control file is in `data/`: the server runs with the rest of the folder read-only",
        "tornado_wsgi_server/control.py",
        '    return project.data_dir / f"server-{port}.control"',
        '    return Path(project.directory) / f"server-{port}.control"',
        (f"{RELOAD}::test_server_runs_and_reloads_in_a_read_only_project_folder",),
    ),
    Mutation(
        "RS4", "if it cannot write `data\\`, it serves without `reload` and `status` and logs a WARNING",
        "tornado_wsgi_server/control.py",
        "        except OSError as exc:\n            listener.close()",
        "        except ValueError as exc:\n            listener.close()",
        (f"{RELOAD}::test_server_without_a_writable_data_folder_serves_without_reload_and_says_so",),
    ),
    Mutation(
        "RS5", "it starts only on the Tornado version `requirements.txt` pins",
        "tornado_wsgi_server/tornado_check.py",
        "    if version in SUPPORTED:",
        "    if True:",
        (STARTUP,),
    ),
    Mutation(
        "RS6", "`service.bat install` lets only Administrators and SYSTEM start, stop or send controls",
        "tornado_wsgi_server/windows_admin.py",
        "    commands = [permissions_command(name), *recovery_commands(name)]",
        "    commands = recovery_commands(name)",
        (ADMIN,),
    ),
    Mutation(
        "RS7", "Reloads asked for while one runs (`sc control` ...) are merged: one waiting thread",
        "tornado_wsgi_server/service_runner.py",
        "            if self._reloading:",
        "            if False:",
        (f"{SERVICE}::test_reload_controls_share_one_waiting_thread_and_merge",),
    ),
    Mutation(
        "RS8", "each `reload` returns once every worker runs code at least as new as when it asked",
        "tornado_wsgi_server/supervisor.py",
        "        result.begin(len(olds))",
        "        result.total = len(olds)",
        (f"{RELOAD}::test_two_overlapping_reloads_both_return_and_leave_the_workers_asked_for",),
    ),
    Mutation(
        "C2", "`--max-connections-per-ip`: per client address (IPv6: per /64)",
        "tornado_wsgi_server/connections.py",
        'return f"{network}/{IPV6_PREFIX}"',
        "return client",
        (f"{CONNECTIONS}::test_per_address_cap_counts_ipv6_per_64",),
    ),
    Mutation(
        "C3", "At the cap the address's longest-idle keep-alive connection is closed to make room",
        "tornado_wsgi_server/connections.py",
        "oldest = min((stream for stream in self.per_address[key] if stream in idle),",
        "oldest = min((stream for stream in self.per_address[key] if False),",
        (f"{CONNECTIONS}::test_at_the_address_cap_its_idle_connections_make_room",),
    ),
    Mutation(
        "C4", "When nothing is idle, a new connection gets `503` with `Retry-After`",
        "tornado_wsgi_server/connections.py",
        "self.refusals.refuse(connection)",
        "connection.close()",
        (f"{CONNECTIONS}::test_a_client_refused_at_the_address_cap_gets_503",),
    ),
    Mutation(
        "C5", "The log names an address at its cap ... and what to check (`--trusted-proxies`)",
        "tornado_wsgi_server/connections.py",
        '"reverse proxy? List it in --trusted-proxies. Do many users share it "',
        '"reverse proxy? Do many users share it "',
        (f"{CONNECTIONS}::test_a_client_refused_at_the_address_cap_gets_503",),
    ),
    Mutation(
        "C6", "The log names an address at its cap at most once a minute: addresses forgotten oldest first, bounded",
        "tornado_wsgi_server/container.py",
        "while noted and (len(noted) >= NOTED_MAX or now - next(iter(noted.values())) >= 60.0):",
        "while noted and now - next(iter(noted.values())) >= 60.0:",
        (f"{CONNECTIONS}::test_noted_addresses_are_forgotten_oldest_first",),
    ),
    Mutation(
        "C7", "(30 such lines a minute in all)",
        "tornado_wsgi_server/container.py",
        "if lines < NOTES_PER_MINUTE:",
        "if True:",
        (f"{CONNECTIONS}::test_noted_addresses_are_forgotten_oldest_first",),
    ),
    Mutation(
        "C8", "`--max-connections-per-ip` (128) ... leaves room for about 20 browsers behind one address",
        "tornado_wsgi_server/options.py",
        'Option("max_connections_per_ip", _int_range(1), "128",',
        'Option("max_connections_per_ip", _int_range(1), "50",',
        (f"{CONNECTIONS}::test_an_office_behind_one_address_is_served",),
    ),
    Mutation(
        "C9", ROUTES_PROMISE + ": the request limits of Django's views (`413`)",
        "tornado_wsgi_server/task.py",
        'if length > limit or (limit == 0 and "Transfer-Encoding" in headers):',
        "if False:",
        (f"{ROUTES}::test_bodies_over_a_tornado_routes_limit_get_413",),
    ),
    Mutation(
        "C10", ROUTES_PROMISE + ": the request limits of Django's views (`--min-body-rate`, `--body-timeout`)",
        "tornado_wsgi_server/task.py",
        "        options = container.options\n        if container.in_flight >= container.capacity",
        "        options = container.options\n        if route:\n"
        "            return self.to_tornado(start_line, headers, None)\n"
        "        if container.in_flight >= container.capacity",
        (f"{ROUTES}::test_a_stalled_body_to_a_tornado_route_is_closed",),
    ),
    Mutation(
        "C11", ROUTES_PROMISE + ": a handler gets its body whole in memory, so at most 1 MB",
        "tornado_wsgi_server/application.py",
        "return min(HANDLER_MAX_BODY, max_body_size)",
        "return max_body_size",
        (f"{ROUTES}::test_bodies_over_a_tornado_routes_limit_get_413",),
    ),
    Mutation(
        "C12", ROUTES_PROMISE + ": a WebSocket route accepts no request body",
        "tornado_wsgi_server/application.py",
        "issubclass(handler_class, websocket.WebSocketHandler):\n        return 0",
        "issubclass(handler_class, websocket.WebSocketHandler):\n        return max_body_size",
        (f"{ROUTES}::test_bodies_over_a_tornado_routes_limit_get_413",),
    ),
    Mutation(
        "C13", ROUTES_PROMISE + ": a form may have up to 1000 parts (Tornado's own default is 100)",
        "tornado_wsgi_server/application.py",
        "request._parse_body = lambda: _parse_body(request)",
        "pass",
        (f"{ROUTES}::test_a_form_of_150_parts_reaches_a_tornado_handler_whole",),
    ),
    Mutation(
        "C14", "The listener ... waits at most 10 s for a request of at most 8 KB",
        "tornado_wsgi_server/metrics_hub.py",
        "if not data or len(entry[1]) > MAX_REQUEST_BYTES:",
        "if not data:",
        (f"{METRICS}::test_idle_connections_to_the_listener_hold_no_thread",),
    ),
    Mutation(
        "C15", "idle or slow connections to it hold no thread",
        "tornado_wsgi_server/metrics_hub.py",
        "self.waiting[sock] = [time.monotonic() + HANDLER_TIMEOUT, b\"\", address]\n"
        "            self.selector.register(sock, selectors.EVENT_READ)",
        "sock.setblocking(True)\n            self.queued += 1\n            threading.Thread(target=lambda s=sock, "
        "a=address: self._handle(s, a, s.recv(MAX_REQUEST_BYTES)), daemon=True).start()",
        (f"{METRICS}::test_idle_connections_to_the_listener_hold_no_thread",),
    ),
    Mutation(
        "C16", "`worker` is its slot, `1` to `--workers` ... so the series stay the same",
        "tornado_wsgi_server/metrics.py",
        """f'worker="{process["slot"]}"'""",
        """f'worker="{process["worker"]}"'""",
        (f"{METRICS}::test_a_replaced_worker_keeps_the_worker_label",),
    ),
    Mutation(
        "WA1", "Windows sign-on: the sign-on belongs to one connection and never leaks to another",
        "tornado_wsgi_server/windows_auth.py",
        "state = task.server_conn.signon = ConnectionSignOn()",
        "state = task.server_conn.signon = type(task.server_conn).signon = ConnectionSignOn()",
        (f"{SIGNON}::test_right_password_signs_on_in_two_legs_on_one_connection_and_django_creates_the_user",),
    ),
    Mutation(
        "WA2", "Windows sign-on: multi-leg NTLM on one keep-alive connection",
        "tornado_wsgi_server/windows_auth.py",
        "if state.acceptor is None or state.scheme != scheme or _starts_handshake(data):",
        "if True:",
        (f"{SIGNON}::test_right_password_signs_on_in_two_legs_on_one_connection_and_django_creates_the_user",),
    ),
    Mutation(
        "KB1", "Windows sign-on: Kerberos' mutual-authentication token goes back in the 200",
        "tornado_wsgi_server/windows_auth.py",
        "task.signon = SignedOn(state.user, reply)",
        "task.signon = SignedOn(state.user, None)",
        (f"{KERBEROS}::test_kerberos_signs_on_in_one_request_with_mutual_authentication",),
    ),
    Mutation(
        "WA3", "Windows sign-on: the wrong password gets 401",
        "tornado_wsgi_server/windows_auth.py",
        'self.failed(task, f"{type(exc).__name__}: {exc}")',
        "task.dispatch()",
        (f"{SIGNON}::test_wrong_password_and_unknown_user_get_401_again",),
    ),
    Mutation(
        "WA4", "Windows sign-on: a header that claims a user from a client is removed",
        "tornado_wsgi_server/proxies.py",
        "_USER_CLAIM.fullmatch(key) is not None)",
        "False)",
        (f"{SIGNON}::test_client_user_headers_are_removed_with_sign_on_off",),
    ),
    Mutation(
        "WA5", "Windows sign-on behind IIS: the user header is believed from --trusted-proxies only",
        "tornado_wsgi_server/container.py",
        "if trusted_peer:\n                    claimed_user = value.strip()",
        "claimed_user = value.strip()",
        (f"{SIGNON}::test_iis_header_is_believed_from_a_trusted_proxy_only",),
    ),
    Mutation(
        "WA6", "Windows sign-on: failed handshakes are rate-limited per address",
        "tornado_wsgi_server/windows_auth.py",
        "return count >= FAILURES_PER_MINUTE and",
        "return False and",
        (f"{SIGNON}::test_failed_handshakes_are_limited_per_address",),
    ),
    Mutation(
        "WA7", "Windows sign-on: over HTTPS, channel binding (Extended Protection) is on",
        "tornado_wsgi_server/windows_auth.py",
        "self.bindings = channel_bindings(options)",
        "self.bindings = None",
        (f"{SIGNON}::test_over_https_the_sign_on_is_bound_to_the_servers_certificate",),
    ),
    Mutation(
        "WA9", "Windows sign-on: a trusted proxy's connection keeps no sign-on between requests",
        "tornado_wsgi_server/windows_auth.py",
        "state.user is not None and not self.via_proxy(task):",
        "state.user is not None:",
        (f"{SIGNON}::test_through_a_trusted_proxy_the_connection_keeps_no_sign_on",),
    ),
    Mutation(
        "WA8", "Windows sign-on: Django's request.user is the user, created on first sign-on",
        f"{PACKAGE}/settings.py",
        '"django.contrib.auth.backends.RemoteUserBackend",',
        "",
        (f"{SIGNON}::test_right_password_signs_on_in_two_legs_on_one_connection_and_django_creates_the_user",),
    ),
    Mutation(
        "ST1", "`status`: exit code 0 when it runs, 3 when it does not",
        "tornado_wsgi_server/server_status.py",
        'return RUNNING if report["state"] == "running" else NOT_RUNNING',
        "return RUNNING",
        (STATUS,),
    ),
    Mutation(
        "ST2", "A start that fails (port taken, bad `.env`, settings or code that does not load) is logged too",
        "tornado_wsgi_server/process.py",
        "    except BaseException as exc:  # the console shows why; the log file keeps it\n"
        "        log_start_failure(options.log_file, exc)\n",
        "    except BaseException as exc:  # the console shows why; the log file keeps it\n",
        (f"{STATUS}::test_port_taken_at_start_is_in_the_log_file",
         f"{STATUS}::test_bad_setting_at_start_is_in_the_log_file_with_its_traceback"),
    ),
    Mutation(
        "ST3", "`status`: requests (answered; with `--workers` each worker tells its count once a second)",
        "tornado_wsgi_server/process.py",
        'worker_link.send(f"requests {told}")',
        "pass",
        (f"{STATUS}::test_status_of_a_running_server_then_of_the_stopped_one",),
    ),
    Mutation(
        "ST4", "`service.bat status` ... use the port the service was installed with",
        "tornado_wsgi_server/service_control.py",
        'options = build_options(self.project, facts.get("stored_options") or [])',
        "options = build_options(self.project, [])",
        (f"{STATUS}::test_service_status_shows_account_start_type_and_stored_options",),
    ),
    Mutation(
        "ST5", "Last error is the newest `ERROR` line of the log file",
        "tornado_wsgi_server/server_status.py",
        "for line in reversed(text.splitlines()):",
        "for line in text.splitlines():",
        (f"{STATUS}::test_status_of_a_running_server_then_of_the_stopped_one",),
    ),
    Mutation(
        "MD1", "Uploaded files: only plain names under `MEDIA_ROOT` (no `..`, dot names, 8.3 short names, device names, trailing dots)",
        "tornado_wsgi_server/media_files.py",
        "    if not all(safe_segment(segment) for segment in segments):",
        "    if False:",
        (MEDIA,),
    ),
    Mutation(
        "MD2", "Uploaded files: a link or junction that leads out of `MEDIA_ROOT` is refused",
        "tornado_wsgi_server/media_files.py",
        "        return None  # a link that leads elsewhere",
        "        pass",
        (MEDIA,),
    ),
    Mutation(
        "MD3", "Uploaded files: HTML, SVG, XML, scripts, unknown types come with `Content-Disposition: attachment`",
        "tornado_wsgi_server/media_files.py",
        "    if not (content_type in INLINE_TYPES or content_type.startswith(INLINE_PREFIXES)):",
        "    if False:",
        (MEDIA,),
    ),
    Mutation(
        "MD4", "`manage.py backup` copies ... the uploaded files in a `.media.zip`; `restore` puts both back",
        f"{PACKAGE}/backups.py",
        "    if media and archive.is_file():",
        "    if False:",
        ("tests/test_backups.py::test_backup_and_restore_bring_the_uploaded_files_back",),
    ),
    Mutation(
        "MD5", "`EMAIL_URL` empty: nothing is sent; each message is a file in `logs/mail/`, named by a `WARNING`",
        f"{PACKAGE}/settings.py",
        '    EMAIL_BACKEND = "',
        '    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"  # "',
        ("tests/test_error_reports.py::test_without_email_url_mail_is_kept_in_the_log_folder",),
    ),
    Mutation(
        "MD6", "`--trusted-proxies`: forwarded headers from anyone else are dropped, with a `WARNING` once a minute per address",
        "tornado_wsgi_server/proxies.py",
        "            if last is not None and now - last < self.INTERVAL:",
        "            if False:",
        (f"{PROXY}::test_forwarded_headers_from_an_untrusted_peer_are_logged_once_a_minute_per_address",),
    ),
    Mutation(
        "MD7", "`--trusted-proxies`: ... with a `WARNING` [naming the peer that is not trusted]",
        "tornado_wsgi_server/container.py",
        "                self.untrusted_senders.note(peer, key)\n",
        "",
        (f"{PROXY}::test_forwarded_headers_from_an_untrusted_peer_are_logged_once_a_minute_per_address",),
    ),
    Mutation(
        "LX1", "`.env` is created readable by its owner only (mode 600) on Linux and macOS",
        "tornado_wsgi_server/bootstrap.py",
        "os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)",
        "os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)",
        ("tests/test_bootstrap.py::test_new_env_file_is_readable_by_its_owner_only",),
    ),
    Mutation(
        "LX2", "an existing `.env` that every user can read is left alone, with a WARNING that says so",
        "tornado_wsgi_server/bootstrap.py",
        "    if mode & 0o004:\n",
        "    if False:\n",
        ("tests/test_bootstrap.py::test_existing_env_file_is_left_alone_and_warned_about_when_others_can_read_it",),
    ),
    Mutation(
        "LX3", "the unit's `TimeoutStopSec` is above the drain time, so systemd does not kill a draining server",
        "deploy/my_site.service",
        "TimeoutStopSec=90\n",
        "TimeoutStopSec=30\n",
        ("tests/test_linux_service.py::test_unit_runs_the_project_as_its_own_user_and_writes_only_data_and_logs",),
    ),
    Mutation(
        "LX4", "pip is tried again when a file it must change is held (a permission error off Windows)",
        "tornado_wsgi_server/bootstrap.py",
        'LOCKED_FILE_ERRORS = ("[WinError 5]", "[WinError 32]", "[Errno 13]", "[Errno 1]")',
        'LOCKED_FILE_ERRORS = ("[WinError 5]", "[WinError 32]")',
        ("tests/test_bootstrap.py::test_pip_is_tried_again_when_a_file_it_must_change_is_held",),
    ),
    Mutation(
        "WG1", "a member of the Windows group is added, someone no longer in it is removed",
        "tornado_wsgi_server/windows_groups.py",
        "        if left:\n",
        "        if False:\n",
        ("tests/test_windows_groups.py::test_leaving_a_windows_group_takes_effect_at_the_next_sign_on_and_unmapped_groups_stay",),
    ),
    Mutation(
        "WG2", "a sign-on that changes nothing writes nothing to the database",
        "tornado_wsgi_server/windows_groups.py",
        "    flags = {name: value for name, value in flags.items() if getattr(user, name) != value}\n",
        "",
        ("tests/test_windows_groups.py::test_nothing_is_written_when_nothing_changed",),
    ),
    Mutation(
        "WG3", "Nothing changes on a password sign-in: only a Windows sign-on does, and only for the user it signed in",
        "tornado_wsgi_server/windows_groups.py",
        "    return user if user.get_username() == (clean(remote_user) if clean else remote_user) else None\n",
        "    return user\n",
        ("tests/test_windows_groups.py::test_a_user_the_sign_on_did_not_replace_keeps_its_rights",),
    ),
    Mutation(
        "WS1", "Windows sign-on: the user's groups come only with the request that completed the handshake",
        "tornado_wsgi_server/windows_auth.py",
        "task.signon = SignedOn(state.user, None)\n",
        "task.signon = SignedOn(state.user, None, ())\n",
        (f"{SIGNON}::test_the_request_that_signs_on_carries_the_users_groups_and_later_ones_do_not",),
    ),
    Mutation(
        "WS2", "Windows sign-on: groups only for deny (a UAC-filtered token) are not the user's groups",
        "tornado_wsgi_server/windows_sspi.py",
        "attributes & deny_only or ",
        "",
        ("tests/server/test_windows_sspi.py::test_groups_are_the_enabled_ones_as_sid_and_name_and_the_token_is_closed",),
    ),
    Mutation(
        "SN7", "`install` under a second name in a folder that already runs a service is refused (exit code 2)",
        "tornado_wsgi_server/service_control.py",
        "        if other.casefold() != name.casefold() and folder is not None and same_folder(",
        "        if False and folder is not None and same_folder(",
        (f"{SERVICE_CONTROL}::test_a_second_service_name_from_the_same_folder_is_refused_but_a_reinstall_is_not",),
    ),
    Mutation(
        "SN8", "`remove` takes back the folder rights its virtual account was given",
        "tornado_wsgi_server/service_control.py",
        "        # While the service is there: the name of its account resolves only then.\n"
        "        left = self.take_back_rights()\n",
        "        left = []\n",
        (f"{SERVICE_CONTROL}::test_remove_takes_back_the_folder_rights_install_gave_while_the_account_still_resolves",),
    ),
    Mutation(
        "WG4", "Windows groups reach Django's groups and staff through the server: the settings put the "
               "groups middleware after the one that signs the user in",
        f"{PACKAGE}/settings.py",
        "        MIDDLEWARE.insert(MIDDLEWARE.index(REMOTE_USER_MIDDLEWARE) + 1, WINDOWS_GROUPS_MIDDLEWARE)\n",
        "        MIDDLEWARE.insert(MIDDLEWARE.index(REMOTE_USER_MIDDLEWARE), WINDOWS_GROUPS_MIDDLEWARE)\n",
        (f"{SIGNON}::test_a_windows_group_gives_its_django_group_and_staff_at_sign_on_and_others_get_none",),
    ),
    Mutation(
        "KB2", "Kerberos sign-on proves the server back in the 200, a static file's too",
        "tornado_wsgi_server/container.py",
        "                self.static.handler = with_reply_header(self.static.handler)\n",
        "                pass\n",
        (f"{KERBEROS}::test_a_static_file_answered_on_the_event_loop_carries_the_mutual_token",),
    ),
    Mutation(
        "WG5", "a SID entry matches the user's SIDs only, never a group named like that SID",
        "tornado_wsgi_server/windows_groups.py",
        "        if backslash and not SID.fullmatch(name):\n",
        "        if backslash:\n",
        ("tests/test_windows_groups.py::test_a_group_named_like_a_sid_is_not_that_sid",),
    ),
    Mutation(
        "WA10", "Windows sign-on: a token the acceptor chokes on gets 401 at once, never a request that waits for ever",
        "tornado_wsgi_server/signon_threads.py",
        "                except StopIteration:\n",
        "                except ZeroDivisionError:\n",
        ("tests/server/test_windows_signon_hardening.py::test_a_token_the_acceptor_chokes_on_gets_401_at_once",),
    ),
    Mutation(
        "WA11", "Windows sign-on: one address has at most 2 steps on the sign-on threads; others still sign on",
        "tornado_wsgi_server/signon_threads.py",
        "            if running < self.per_address:\n",
        "            if True:\n",
        ("tests/server/test_windows_signon_hardening.py::test_one_address_with_slow_sign_ons_does_not_hold_everyone_elses",),
    ),
    Mutation(
        "WA12", "Windows sign-on: a step still running past 10 s counts its thread as lost and a new one starts",
        "tornado_wsgi_server/signon_threads.py",
        "            if self.replaced < self.replaceable:\n",
        "            if False:\n",
        ("tests/server/test_windows_signon_hardening.py::test_threads_stuck_past_the_time_out_are_replaced_and_logged",),
    ),
    Mutation(
        "WA13", "Windows sign-on: an address's steps beyond its 2 wait their turn, never refused",
        "tornado_wsgi_server/signon_threads.py",
        "                self.jobs.put(waiting.popleft())\n",
        "                waiting.popleft()\n",
        ("tests/server/test_windows_signon.py::test_a_burst_of_sign_ons_from_one_address_all_succeed",),
    ),
    Mutation(
        "WA14", "NTLMv1 and LM answers are refused (the server sets `LM_COMPAT_LEVEL=5`)",
        "tornado_wsgi_server/windows_auth.py",
        "        os.environ[LM_COMPAT_VARIABLE] = NTLMV2_ONLY\n",
        "        pass\n",
        ("tests/server/test_windows_signon_hardening.py::test_over_https_an_ntlmv1_answer_is_refused",),
    ),
    Mutation(
        "WA15", "Windows groups of a sign-on completed on a static file go with the connection's first request to Django",
        "tornado_wsgi_server/container.py",
        "        if request.signon is not None:\n            self.signon.hand_over_groups(request)\n",
        "",
        ("tests/server/test_windows_signon.py::test_groups_of_a_sign_on_completed_on_a_static_file_go_with_the_connections_next_django_request",),
    ),
    Mutation(
        "WA16", "Windows groups waiting on a connection go to Django once",
        "tornado_wsgi_server/windows_auth.py",
        "        groups, state.groups = state.groups, None\n",
        "        groups = state.groups\n",
        ("tests/server/test_windows_signon.py::test_groups_of_a_sign_on_completed_on_a_static_file_go_with_the_connections_next_django_request",),
    ),
    Mutation(
        "WA17", "Windows sign-on: while every sign-on thread is lost and none may be replaced, new sign-ons get 503 at once",
        "tornado_wsgi_server/windows_auth.py",
        "        if self.pool.exhausted:\n",
        "        if False:\n",
        ("tests/server/test_windows_signon_hardening.py::"
         "test_once_every_thread_is_lost_and_none_may_be_replaced_new_sign_ons_get_503_at_once",),
    ),
)


@dataclass
class Outcome:
    mutation: Mutation
    result: str  # caught, survived, timeout, flaky, error
    file: str  # as baked, e.g. my_site/settings.py
    caught_by: str = ""
    seconds: float = 0.0
    first_try: bool = False  # caught by the test that caught it last time, run alone


class CheckError(Exception):
    """A problem with the check itself (exit code 2), not with the tests it checks."""


def log(message: str) -> None:
    print(f"[mutation] {message}", flush=True)


# ----------------------------------------------------------------------------------------
# The bake and its virtual environment.
# ----------------------------------------------------------------------------------------


def bake(workdir: Path) -> Path:
    try:
        from cookiecutter.main import cookiecutter
    except ImportError:
        raise CheckError(
            f"cookiecutter is not installed for {sys.executable}; run this script with the "
            "template's test environment (.venv/bin/python tools/mutation_check.py)"
        ) from None
    workdir.mkdir(parents=True, exist_ok=True)
    return Path(cookiecutter(str(ROOT), no_input=True, output_dir=str(workdir)))


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if IS_WINDOWS else "bin/python")


def given_venv(venv: Path) -> Path:
    python = venv_python(venv)
    if not python.exists():
        raise CheckError(f"--venv {venv}: no Python at {python}")
    check = subprocess.run([str(python), "-c", "import pytest, django, tornado, httpx"],
                           capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        raise CheckError(f"--venv {venv} lacks the test requirements (pip install -r requirements-dev.txt):\n"
                         f"{check.stderr.strip()}")
    return python


def cached_venv(project: Path, python: str) -> Path:
    """A venv with the project's requirements_for_tests(), reused while that choice, the
    requirements files, the Python version and the platform stay the same."""
    found = subprocess.run([python, "-c", "import sys; print(sys.version)"],
                           capture_output=True, text=True, timeout=120)
    if found.returncode != 0:
        raise CheckError(f"--python {python} does not run: {found.stderr.strip()}")
    version = found.stdout.strip()
    requirements = requirements_for_tests()
    digest = hashlib.sha256(requirements.encode())
    for name in ("requirements.txt", "requirements-dev.txt", "requirements-kerberos.txt"):
        digest.update((project / name).read_bytes())
    digest.update(f"{version}|{platform.platform()}".encode())
    venv = CACHE / f"venv-{digest.hexdigest()[:16]}"
    if venv_python(venv).exists() and (venv / ".complete").exists():
        log(f"reusing {venv}")
        return venv_python(venv)
    log(f"creating {venv} ({requirements})")
    shutil.rmtree(venv, ignore_errors=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    for step in ([python, "-m", "venv", str(venv)],
                 [str(venv_python(venv)), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                  "-r", str(project / requirements)]):
        try:
            made = subprocess.run(step, timeout=1800).returncode == 0
        except subprocess.TimeoutExpired:
            made = False
        if not made:
            raise CheckError(f"could not make the virtual environment: {' '.join(step)} failed")
    (venv / ".complete").write_text(version)
    return venv_python(venv)


# ----------------------------------------------------------------------------------------
# Applying a mutation and putting the file back.
# ----------------------------------------------------------------------------------------


def target(project: Path, mutation: Mutation) -> Path:
    return project / mutation.file.replace(PACKAGE, project.name)


def mutated_bytes(project: Path, mutation: Mutation) -> tuple[bytes, bytes]:
    """(original, mutated) bytes of the mutation's file; raises CheckError when stale."""
    path = target(project, mutation)
    if not path.is_file():
        raise CheckError(f"{mutation.name} is stale: {mutation.file} does not exist")
    original = path.read_bytes()
    text = original.decode("utf-8")
    old, new = mutation.old, mutation.new
    if "\r\n" in text:  # a checkout with Windows line endings
        old, new = old.replace("\n", "\r\n"), new.replace("\n", "\r\n")
    count = text.count(old)
    if count != 1:
        raise CheckError(f"{mutation.name} is stale: its old text occurs {count} times in "
                         f"{mutation.file} (must be exactly once):\n{mutation.old}")
    return original, text.replace(old, new).encode("utf-8")


def restore(path: Path, original: bytes) -> None:
    path.write_bytes(original)
    if path.read_bytes() != original:
        raise CheckError(f"could not restore {path}; the bake is no longer the template")


# ----------------------------------------------------------------------------------------
# Running pytest.
# ----------------------------------------------------------------------------------------


FAILURE_LINE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.MULTILINE)
# pytest-timeout's banner when it stops a test (the thread method then ends pytest with exit 1).
PYTEST_TIMEOUT = re.compile(r"^\++ Timeout \++$", re.MULTILINE)


def pytest_environment() -> dict:
    env = dict(os.environ)
    # A restored file can have the same size and second as its mutant; without .pyc files
    # Python always compiles what is on disk.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.pop("PYTHONPATH", None)
    return env


def kill_tree(process: subprocess.Popen) -> None:
    """End pytest and the servers it started."""
    if IS_WINDOWS:
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(process.pid)], capture_output=True, timeout=60)
    else:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def run_pytest(python: Path, project: Path, tests: list[str], timeout: float, log_file: Path,
               stop_at_first: bool = True) -> tuple[int | None, str]:
    """pytest's exit code (None on timeout) and its output, also written to ``log_file``."""
    args = [str(python), "-m", "pytest", "-q", "-rfE", "-p", "no:cacheprovider", *tests]
    if stop_at_first:
        args.insert(3, "-x")
    kwargs = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if IS_WINDOWS
              else {"start_new_session": True})
    process = subprocess.Popen(args, cwd=project, env=pytest_environment(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, **kwargs)
    try:
        output, _ = process.communicate(timeout=timeout)
        code: int | None = process.returncode
    except subprocess.TimeoutExpired:
        kill_tree(process)
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:  # a process outside the group holds the pipe
            process.kill()
            output = b""
        code = None
    except BaseException:  # Ctrl+C: leave no test server behind
        kill_tree(process)
        process.wait(60)
        raise
    if not IS_WINDOWS:  # a test stopped by the suite's own timeout leaves its servers behind
        kill_tree(process)
    text = output.decode("utf-8", "replace")
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.write_text(f"$ {' '.join(args)}\n\n{text}", encoding="utf-8")
    return code, text


def first_failure(output: str) -> str:
    match = FAILURE_LINE.search(output)
    return match.group(1).strip() if match else ""


class Workspace:
    """One baked project with the venv that runs its tests, and the sets of tests (the files
    or node ids a mutation names) known to pass on it unmutated. With --jobs 2 each job has a
    workspace of its own."""

    def __init__(self, project: Path, python: Path, timeout: float) -> None:
        self.project, self.python, self.timeout = project, python, timeout
        self.passing: dict[tuple[str, ...], bool] = {}

    def passes(self, tests: tuple[str, ...], name: str) -> bool:
        """Whether ``tests`` (test files or node ids) pass on the unmutated bake (run once per set)."""
        if tests not in self.passing:
            log(f"    baseline: {' '.join(tests)} on the unmutated bake")
            code, _ = run_pytest(self.python, self.project, list(tests), self.timeout * len(tests),
                                 LOGS / f"{name}-baseline.log", stop_at_first=False)
            self.passing[tests] = code == 0
        return self.passing[tests]


def a_catch(code: int | None, output: str) -> bool:
    return code == 1 and not PYTEST_TIMEOUT.search(output) and bool(first_failure(output))


def check(workspace: Workspace, mutation: Mutation, timeout: float, catcher: str = "") -> Outcome:
    """Apply ``mutation``, run ``catcher`` alone, then (unless it failed) the mutation's test
    files with -x; put the file back; make sure whatever failed passes unmutated."""
    python, project = workspace.python, workspace.project
    path = target(project, mutation)
    original, mutated = mutated_bytes(project, mutation)
    started = time.monotonic()
    path.write_bytes(mutated)
    by_files = True
    try:
        code, output = None, ""
        if catcher:
            code, output = run_pytest(python, project, [catcher], timeout, LOGS / f"{mutation.name}-first.log")
            by_files = not a_catch(code, output)
        if by_files:
            code, output = run_pytest(python, project, list(mutation.tests), timeout,
                                      LOGS / f"{mutation.name}.log")
    finally:
        restore(path, original)
    file = path.relative_to(project).as_posix()
    log_name = f"{mutation.name}.log" if by_files else f"{mutation.name}-first.log"
    if code is None:
        return Outcome(mutation, "timeout", file, f"timeout after {timeout:g}s",
                       time.monotonic() - started)
    if code == 1 and PYTEST_TIMEOUT.search(output):
        return Outcome(mutation, "timeout", file, "a test hit its own time limit "
                       f"(see logs/{log_name})", time.monotonic() - started)
    if code == 0:
        return Outcome(mutation, "survived", file, "", time.monotonic() - started)
    if code != 1:  # 2: collection error or interrupted; 3-5: pytest itself did not work
        return Outcome(mutation, "error", file, f"pytest exit {code} (see logs/{log_name})",
                       time.monotonic() - started)
    failed = first_failure(output)
    if not failed:
        return Outcome(mutation, "error", file, f"pytest exit 1 without a failed test "
                       f"(see logs/{log_name})", time.monotonic() - started)
    # The same test on the unmutated bake must pass, or it proves nothing about the mutation.
    control, control_output = run_pytest(python, project, [failed], timeout,
                                         LOGS / f"{mutation.name}-control.log")
    if control != 0:
        return Outcome(mutation, "flaky", file, f"{failed} (fails unmutated too: "
                       f"logs/{mutation.name}-control.log)", time.monotonic() - started, not by_files)
    # A test that failed after others of the run may fail unmutated after them too: the same
    # run must pass unmutated.
    tests = tuple(mutation.tests)
    if by_files and not workspace.passes(tests, mutation.name):
        return Outcome(mutation, "error", file, f"{' '.join(tests)} fail unmutated "
                       f"(logs/{mutation.name}-baseline.log)", time.monotonic() - started)
    return Outcome(mutation, "caught", file, failed, time.monotonic() - started, not by_files)


# ----------------------------------------------------------------------------------------
# The test that caught each mutation last time.
# ----------------------------------------------------------------------------------------


def table_rows(text: str) -> list[dict]:
    """The rows of a results table as {column: cell}, cells unescaped."""
    rows, header = [], None
    for line in text.splitlines():
        if not line.startswith("| "):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if header is None:
            header = cells
        elif not set(line) <= set("|- "):
            rows.append(dict(zip(header, cells, strict=False)))
    return rows


def known_catchers() -> dict[str, str]:
    """Mutation name -> the test that caught it last: this machine's latest catches over the
    committed table of the last full run."""
    found = {}
    latest = RESULTS / "mutation-latest.md"
    if latest.is_file():
        for row in table_rows(latest.read_text(encoding="utf-8")):
            if row.get("result") == "caught" and row.get("caught by", "—") != "—":
                found[row["name"]] = row["caught by"]
    try:
        found.update(json.loads(CATCHERS.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return found


def catcher_for(mutation: Mutation, catchers: dict[str, str]) -> str:
    """The last catcher, if it is still one of the tests the mutation names."""
    test = catchers.get(mutation.name, "")
    if test and any(test == named or test.startswith((named + "::", named + "["))
                    for named in mutation.tests):
        return test
    return ""


def remember(outcome: Outcome, lock: threading.Lock) -> None:
    if outcome.result != "caught":
        return
    with lock:
        try:
            catchers = json.loads(CATCHERS.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            catchers = {}
        catchers[outcome.mutation.name] = outcome.caught_by
        CACHE.mkdir(parents=True, exist_ok=True)
        CATCHERS.write_text(json.dumps(catchers, indent=1, sort_keys=True) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------
# Report.
# ----------------------------------------------------------------------------------------


def duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def template_version() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                  timeout=60).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    commit = git("rev-parse", "--short", "HEAD")
    if not commit:
        return "the template (not a git checkout)"
    dirty = git("status", "--porcelain", "--", "{{cookiecutter.project_slug}}")
    return f"the template at {commit}" + (" with uncommitted changes" if dirty else "")


def report(outcomes: list[Outcome], baked: str, seconds: float, jobs: int) -> str:
    caught = sum(outcome.result == "caught" for outcome in outcomes)
    first = sum(outcome.first_try for outcome in outcomes if outcome.result == "caught")
    services = "set" if os.environ.get("REQUIRE_SERVICES") == "1" else "not set"
    lines = [
        "# Mutation check",
        "",
        f"`tools/mutation_check.py` on {baked}, {time.strftime('%Y-%m-%d')}; "
        f"{platform.system()}, Python {platform.python_version()}; `REQUIRE_SERVICES` {services}; "
        f"{duration(seconds)}" + (f" ({jobs} at a time)" if jobs > 1 else "") + ".",
        "",
        "| name | promise | file | result | caught by | seconds |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for outcome in outcomes:
        mutation = outcome.mutation
        result = outcome.result if outcome.result == "caught" else f"**{outcome.result}**"
        lines.append(f"| {mutation.name} | {cell(mutation.promise)} | `{outcome.file}` | {result} "
                     f"| {cell(outcome.caught_by) or '—'} | {outcome.seconds:.0f} |")
    lines += ["", f"caught {caught} of {len(outcomes)} ({first} by the test that caught it the "
                  "time before, run alone)"]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------------------


def choose(only: str | None) -> list[Mutation]:
    if not only:
        return list(MUTATIONS)
    by_name = {mutation.name.lower(): mutation for mutation in MUTATIONS}
    names = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in names if name.lower() not in by_name]
    if unknown or not names:
        raise CheckError(f"unknown mutation name(s): {', '.join(unknown) or '(none given)'}; "
                         f"known: {', '.join(m.name for m in MUTATIONS)}")
    return [by_name[name.lower()] for name in dict.fromkeys(names)]


def list_mutations() -> None:
    for mutation in MUTATIONS:
        print(f"{mutation.name}: {mutation.promise}")
        print(f"    {mutation.file}: {mutation.old.strip()!r} -> {mutation.new.strip()!r}")
        print(f"    tests: {' '.join(mutation.tests)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--list", action="store_true", help="print the mutations and exit")
    parser.add_argument("--only", metavar="NAME[,NAME]", help="run only these mutations")
    parser.add_argument("--venv", type=Path, help="an existing venv with requirements-dev.txt (or -kerberos.txt) installed")
    parser.add_argument("--python", default=sys.executable,
                        help="interpreter for a new cached venv (default: this one)")
    parser.add_argument("--timeout", type=float, default=300, metavar="S",
                        help="seconds per mutation's test run; a timeout is not a catch (default 300)")
    parser.add_argument("--keep", action="store_true", help="keep the baked project and print its path")
    parser.add_argument("--jobs", type=int, default=1, metavar="N",
                        help="check N mutations at a time, each in a bake of its own (default 1)")
    args = parser.parse_args(argv)
    if args.list:
        list_mutations()
        return 0
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    try:
        return run(args)
    except CheckError as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 2


def check_all(workspaces: list[Workspace], mutations: list[Mutation], timeout: float) -> list[Outcome]:
    """Every mutation checked on one of ``workspaces``, as many at a time as there are bakes."""
    catchers = known_catchers()
    outcomes: list[Outcome | None] = [None] * len(mutations)
    pending = list(enumerate(mutations))
    lock = threading.Lock()
    failures: list[BaseException] = []

    def job(workspace: Workspace) -> None:
        while not failures:
            with lock:
                if not pending:
                    return
                index, mutation = pending.pop(0)
            catcher = catcher_for(mutation, catchers)
            log(f"[{index + 1}/{len(mutations)}] {mutation.name}: {mutation.file} -> "
                f"{catcher + ', then ' if catcher else ''}{' '.join(mutation.tests)}")
            try:
                outcome = check(workspace, mutation, timeout, catcher)
            except BaseException as exc:  # a CheckError (or Ctrl+C) ends the run
                failures.append(exc)
                return
            how = " (the test that caught it last time)" if outcome.first_try else ""
            log(f"    {mutation.name} {outcome.result} in {duration(outcome.seconds)} {outcome.caught_by}{how}")
            outcomes[index] = outcome
            remember(outcome, lock)

    if len(workspaces) == 1:
        job(workspaces[0])
    else:
        threads = [threading.Thread(target=job, args=(workspace,), daemon=True) for workspace in workspaces]
        for thread in threads:
            thread.start()
        for thread in threads:
            while thread.is_alive():
                thread.join(1)
    if failures:
        raise failures[0]
    return [outcome for outcome in outcomes if outcome is not None]


def run(args: argparse.Namespace) -> int:
    mutations = choose(args.only)
    if args.venv is not None:
        python = given_venv(args.venv.expanduser().resolve())
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mutation-check-"))
    try:
        log(f"baking the template into {workdir}" + (f" ({args.jobs} times)" if args.jobs > 1 else ""))
        baked = template_version()  # before the bake: the tree may change during the run
        projects = [bake(workdir / str(number)) for number in range(1, args.jobs + 1)]
        for mutation in mutations:  # stale entries stop the run before anything is tested
            mutated_bytes(projects[0], mutation)
        if args.venv is None:
            python = cached_venv(projects[0], args.python)
        shutil.rmtree(LOGS, ignore_errors=True)
        outcomes = check_all([Workspace(project, python, args.timeout) for project in projects],
                             mutations, args.timeout)
    finally:
        if args.keep:
            log(f"kept the bake in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(outcomes, baked, time.monotonic() - started, args.jobs)
    out = RESULTS / ("mutation-partial.md" if args.only else "mutation-latest.md")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print()
    print(text, end="")
    log(f"written to {out.relative_to(ROOT)}")
    if any(outcome.result == "error" for outcome in outcomes):
        return 2
    return 0 if all(outcome.result == "caught" for outcome in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
