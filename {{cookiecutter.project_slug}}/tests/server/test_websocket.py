"""Tornado routes share the port with Django: the example WebSocket, and the checks and
limits every route gets (Host, Origin, pings, message size, the WebSocket cap)."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect


def ws_url(server, path: str = "/ws/echo") -> str:
    return server.url.replace("http://", "ws://") + path


async def talk(server) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/ws/echo"
    connection = await asyncio.wait_for(websocket_connect(ws_url), 10)
    try:
        await connection.write_message("hello")
        assert await asyncio.wait_for(connection.read_message(), 10) == "hello"
        await connection.write_message(b"\x00\x01binary", binary=True)
        assert await asyncio.wait_for(connection.read_message(), 10) == b"\x00\x01binary"
        # Django keeps answering HTTP on the same port while the socket is open.
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.get(f"{server.url}/healthz")
            assert response.status_code == 200
            assert response.text == "ok"
        await connection.write_message("still there")
        assert await asyncio.wait_for(connection.read_message(), 10) == "still there"
    finally:
        connection.close()


def test_websocket_echo_beside_django(start_server):
    server = start_server("--threads", "1")
    asyncio.run(talk(server))
    # Plain HTTP to the WebSocket path is Tornado's business too, not Django's 404.
    response = httpx.get(f"{server.url}/ws/echo", timeout=10)
    assert response.status_code == 400
    assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
    assert server.stop() == 0


def test_websocket_open_during_shutdown_does_not_block_exit(start_server):
    server = start_server()

    async def hold_open() -> None:
        ws_url = server.url.replace("http://", "ws://") + "/ws/echo"
        connection = await asyncio.wait_for(websocket_connect(ws_url), 10)
        await connection.write_message("ping")
        assert await asyncio.wait_for(connection.read_message(), 10) == "ping"
        server.signal_stop()
        await asyncio.get_running_loop().run_in_executor(None, server.process.wait, 15)
        connection.close()

    asyncio.run(hold_open())
    assert server.process.returncode == 0


def test_example_websocket_is_not_routed_by_default(start_server):
    """The project's own settings route no Tornado handler: /ws/echo is Django's 404."""
    server = start_server("--settings", "{{ cookiecutter.project_slug }}.settings")
    upgrade = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
               "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}
    response = httpx.get(f"{server.url}/ws/echo", headers=upgrade, timeout=10)
    assert response.status_code == 404
    assert "Sec-WebSocket-Accept" not in response.headers


def test_routes_setting_that_does_not_import_stops_with_one_error_line(start_server, tmp_path):
    (tmp_path / "bad_routes_settings.py").write_text(
        "from tests.settings import *  # noqa: F403\nTORNADO_ROUTES = 'tests.no_such_module.ROUTES'\n",
        encoding="utf-8")
    server = start_server("--settings", "bad_routes_settings", wait=False,
                          env={"PYTHONPATH": str(tmp_path)})
    assert server.process.wait(60) == 1
    output = server.output()
    assert "ERROR: settings.TORNADO_ROUTES = 'tests.no_such_module.ROUTES'" in output
    assert "Traceback" not in output


def handshake(port: int, path: str = "/ws/echo") -> socket.socket:
    """A raw client that completes the WebSocket handshake, then does nothing at all."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 101"), answer
    return sock


def test_peer_that_never_answers_pings_is_closed(start_server):
    """A vanished client (laptop asleep, NAT timeout) must not hold its slot for ever."""
    server = start_server("--websocket-ping-interval", "0.5", "--websocket-ping-timeout", "0.5")
    sock = handshake(server.port)
    started = time.monotonic()
    sock.settimeout(20)
    try:
        while sock.recv(4096):  # the pings and the close frame, never answered
            pass
    except TimeoutError:
        pytest.fail("the silent WebSocket was still open after 20 s")
    finally:
        sock.close()
    # Ping interval + timeout, then Tornado waits 5 s for the close handshake.
    assert time.monotonic() - started < 15


def test_message_over_the_size_limit_closes_the_websocket(start_server):
    server = start_server("--websocket-max-message-size", "1K")

    async def talk() -> None:
        connection = await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
        await connection.write_message("x" * 1000)
        assert await asyncio.wait_for(connection.read_message(), 10) == "x" * 1000
        await connection.write_message("x" * 2000)
        assert await asyncio.wait_for(connection.read_message(), 10) is None
        assert connection.close_code == 1009  # message too big

    asyncio.run(talk())


def test_websocket_cap_leaves_http_its_slots(start_server):
    server = start_server("--max-websockets", "2", "--max-connections", "20")

    async def talk() -> None:
        first = await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
        second = await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
        assert refused.value.code == 503
        assert refused.value.response.headers["Retry-After"] == "5"
        async with httpx.AsyncClient(timeout=10) as http:
            for _ in range(5):  # HTTP is served all the while
                assert (await http.get(f"{server.url}/healthz")).status_code == 200
        await second.write_message("still here")
        assert await asyncio.wait_for(second.read_message(), 10) == "still here"
        # A closed WebSocket gives its place back.
        first.close()
        deadline = time.monotonic() + 10
        while True:
            try:
                third = await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
                break
            except HTTPClientError:
                assert time.monotonic() < deadline, "the closed WebSocket's place never came back"
                await asyncio.sleep(0.1)
        third.close()
        second.close()

    asyncio.run(talk())


def test_websockets_get_half_of_the_connections_by_default(start_server):
    server = start_server("--max-connections", "4")

    async def talk() -> None:
        opened = [await asyncio.wait_for(websocket_connect(ws_url(server)), 10) for _ in range(2)]
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(websocket_connect(ws_url(server)), 10)
        assert refused.value.code == 503
        async with httpx.AsyncClient(timeout=10) as http:
            assert (await http.get(f"{server.url}/healthz")).status_code == 200
        for connection in opened:
            connection.close()

    asyncio.run(talk())


def test_max_websockets_above_max_connections_is_refused(start_server):
    server = start_server("--max-websockets", "11", "--max-connections", "10", wait=False)
    assert server.process.wait(30) == 2
    assert "--max-websockets=11" in server.output()


def test_host_not_in_allowed_hosts_is_refused(start_server):
    """DNS rebinding: the page's own origin matches its Host, which Django would refuse."""
    server = start_server()
    rebound = {"Host": f"evil.example:{server.port}", "Origin": f"http://evil.example:{server.port}"}

    async def talk() -> None:
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(websocket_connect(HTTPRequest(ws_url(server), headers=rebound)), 10)
        assert refused.value.code == 400
        # ALLOWED_HOSTS has localhost: that name is fine.
        allowed = {"Host": f"localhost:{server.port}", "Origin": f"http://localhost:{server.port}"}
        connection = await asyncio.wait_for(websocket_connect(HTTPRequest(ws_url(server), headers=allowed)), 10)
        connection.close()

    asyncio.run(talk())
    assert httpx.get(f"{server.url}/tornado/hello", headers={"Host": "evil.example"}, timeout=10).status_code == 400


def test_cross_origin_is_refused_same_origin_accepted(start_server):
    server = start_server()
    foreign = {"Origin": "https://evil.example"}
    same = {"Origin": f"http://127.0.0.1:{server.port}"}
    hello = f"{server.url}/tornado/hello"
    assert httpx.get(hello, headers=foreign, timeout=10).status_code == 403
    assert httpx.get(hello, headers={"Origin": "null"}, timeout=10).status_code == 403
    assert httpx.get(hello, headers=same, timeout=10).text == "hello from tornado"
    assert httpx.get(hello, timeout=10).status_code == 200  # no Origin: not a browser

    async def talk() -> None:
        with pytest.raises(HTTPClientError) as refused:
            await asyncio.wait_for(websocket_connect(HTTPRequest(ws_url(server), headers=foreign)), 10)
        assert refused.value.code == 403
        for path, headers in (("/ws/echo", same), ("/ws/any-origin-echo", foreign)):
            connection = await asyncio.wait_for(
                websocket_connect(HTTPRequest(ws_url(server, path), headers=headers)), 10)
            await connection.write_message("hi")
            assert await asyncio.wait_for(connection.read_message(), 10) == "hi"
            connection.close()

    asyncio.run(talk())
