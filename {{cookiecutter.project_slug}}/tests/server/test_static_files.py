"""Static files answered on the event loop (static_files.py): no thread needed, and the same
answer, header for header, as from a thread. The servers run Django's own WSGI handler
(TEST_PLAIN_WSGI): behind the tests' fault-injecting wrapper every request goes to a thread."""

import concurrent.futures
import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.test import override_settings

from tornado_wsgi_server.static_files import loop_static

PLAIN = {"TEST_PLAIN_WSGI": "1"}


def static_path(server_env, name: str = "css/site.css") -> str:
    manifest = json.loads((Path(server_env["DJANGO_STATIC_ROOT"]) / "staticfiles.json").read_text())
    return f"/static/{manifest['paths'][name]}"


def wait_for(path: Path) -> None:
    deadline = time.monotonic() + 30
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


@pytest.mark.parametrize("from_loop", [True, False])
def test_static_files_need_no_free_thread(start_server, server_env, tmp_path, from_loop):
    """With the only thread held by a view, a static file still comes at once, unless
    --no-static-from-loop sends it to the (busy) thread like any request."""
    server = start_server("--threads", "1", *([] if from_loop else ["--no-static-from-loop"]),
                          env=PLAIN)
    held = tmp_path / "held"
    held.touch()
    path = static_path(server_env)
    with concurrent.futures.ThreadPoolExecutor(1) as pool, httpx.Client(timeout=30) as client:
        holder = pool.submit(client.get, f"{server.url}/__test__/hold?path={held}")
        wait_for(Path(f"{held}.started"))
        try:
            if from_loop:
                response = httpx.get(server.url + path, timeout=5)
                assert response.status_code == 200
                assert response.headers["cache-control"].endswith("immutable")
                assert not holder.done()  # the thread was busy all along
            else:
                with pytest.raises(httpx.ReadTimeout):
                    httpx.get(server.url + path, timeout=1.5)
        finally:
            held.unlink()
        assert holder.result(timeout=60).status_code == 200


REQUESTS = [
    ("GET", {}),
    ("HEAD", {}),
    ("GET", {"Accept-Encoding": "gzip"}),
    ("GET", {"Range": "bytes=0-9"}),
    ("GET", {"Range": "bytes=1-"}),  # for big.bin: streamed past the 1 MB mark, from a thread
    ("GET", {"Range": "bytes=999999-"}),
    ("GET", {"If-None-Match": "ETAG"}),
    ("POST", {}),
]


def test_loop_and_threads_give_the_same_answer(start_server, server_env):
    """Every answer WhiteNoise gives (200, HEAD, gzip, 206, 416, 304) and the ones it leaves
    to Django (an unknown file, a POST) are byte for byte the same apart from Date; also for
    a file large enough to be sent block by block as the client reads, and a range of it
    that has to be streamed."""
    big = Path(server_env["DJANGO_STATIC_ROOT"]) / "test-static-files" / "big.bin"
    big.parent.mkdir(exist_ok=True)
    big.write_bytes(os.urandom(2560 * 1024))  # WhiteNoise lists STATIC_ROOT as the servers start
    loop = start_server(env=PLAIN)
    threads = start_server("--no-static-from-loop", env=PLAIN)
    paths = [static_path(server_env), static_path(server_env, "admin/css/base.css"),
             "/static/test-static-files/big.bin", "/static/css/no-such-file.css"]
    etag = httpx.get(loop.url + paths[0], timeout=10).headers["etag"]
    compared = 0
    statuses = set()
    for path in paths:
        for method, headers in REQUESTS:
            headers = {name: value.replace("ETAG", etag) for name, value in headers.items()}
            answers = []
            for server in (loop, threads):
                # The bytes as sent: a range of a gzip file is no gzip stream to decode.
                with httpx.stream(method, server.url + path, headers=headers, timeout=10) as response:
                    answers.append((response.status_code, sorted(
                        (name, value) for name, value in response.headers.multi_items() if name != "date"
                    ), b"".join(response.iter_raw())))
            assert answers[0] == answers[1], (method, path, headers)
            compared += 1
            statuses.add(answers[0][0])
    assert compared == len(paths) * len(REQUESTS)
    assert {200, 206, 304, 404, 416} <= statuses


def test_a_static_file_error_is_handled_on_a_thread_not_the_loop(start_server, server_env):
    """A file in WhiteNoise's table that has gone since start-up (a deploy, collectstatic
    --clear): Django's 500 handling and the error mail, here to a mail server that never
    answers, run on a worker thread while the loop serves everyone else."""
    gone = Path(server_env["DJANGO_STATIC_ROOT"]) / "test-static-files" / "gone.css"
    gone.parent.mkdir(exist_ok=True)
    gone.write_text("body { color: black }\n")
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never greets
    accepted: list = []

    def accept() -> None:
        silent.settimeout(60)
        try:
            accepted.append(silent.accept()[0])
        except OSError:
            pass

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        server = start_server("--threads", "2", env={
            **PLAIN, "EMAIL_URL": f"smtp://127.0.0.1:{silent.getsockname()[1]}"})
        gone.unlink()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            failing = pool.submit(httpx.get, f"{server.url}/static/test-static-files/gone.css",
                                  timeout=60)
            acceptor.join(30)
            assert accepted, "the error mail was never sent"
            started = time.monotonic()
            assert httpx.get(f"{server.url}/healthz", timeout=30).status_code == 200
            elapsed = time.monotonic() - started
            assert failing.result().status_code == 500
        assert elapsed < 2, f"/healthz took {elapsed:.1f}s while the error mail was being sent"
        assert "Internal Server Error: /static/test-static-files/gone.css" in server.output()
    finally:
        gone.unlink(missing_ok=True)
        for sock in [*accepted, silent]:
            sock.close()


@pytest.fixture
def only_djangos_receivers():
    """The tests' own request_finished receiver (tests/views.py) off, as in a plain project."""
    from tests import views

    connected = request_finished.disconnect(views.count_finished)
    yield
    if connected:
        request_finished.connect(views.count_finished)


def test_the_loop_answers_only_behind_safe_middleware(settings, caplog, only_djangos_receivers):
    """Any middleware before WhiteNoise but SecurityMiddleware (it might query the
    database), a wrapped application, or WhiteNoise's per-request disk lookups: threads."""
    static = loop_static(WSGIHandler())
    assert static is not None and static.prefix == "/static/"

    first = "django.contrib.sessions.middleware.SessionMiddleware"
    with override_settings(MIDDLEWARE=[first, *settings.MIDDLEWARE]), caplog.at_level(logging.INFO):
        assert loop_static(WSGIHandler()) is None
    assert first in caplog.text

    with override_settings(WHITENOISE_AUTOREFRESH=True):
        assert loop_static(WSGIHandler()) is None

    handler = WSGIHandler()
    assert loop_static(lambda environ, start_response: handler(environ, start_response)) is None

    with override_settings(MIDDLEWARE=[m for m in settings.MIDDLEWARE if "whitenoise" not in m]):
        assert loop_static(WSGIHandler()) is None


def test_the_loop_answers_only_with_djangos_own_code_around_whitenoise(monkeypatch, caplog,
                                                                     only_djangos_receivers):
    """A handler a monitoring tool patched, or a receiver of request_started/finished that
    is not Django's own (it may use the database; an async one cannot run beside a running
    event loop): threads, with the reason in the log."""
    handler = WSGIHandler()
    assert loop_static(handler) is not None
    caplog.set_level(logging.INFO)

    original = WSGIHandler.__call__

    def patched(self, environ, start_response):
        return original(self, environ, start_response)

    with monkeypatch.context() as patch:
        patch.setattr(WSGIHandler, "__call__", patched)
        assert loop_static(handler) is None
    assert "patched" in caplog.text

    def project_receiver(**kwargs):
        pass

    async def async_receiver(**kwargs):
        pass

    for signal in (request_started, request_finished):
        for receiver in (project_receiver, async_receiver):
            signal.connect(receiver)
            try:
                assert loop_static(handler) is None, (signal, receiver)
            finally:
                signal.disconnect(receiver)
    assert loop_static(handler) is not None
