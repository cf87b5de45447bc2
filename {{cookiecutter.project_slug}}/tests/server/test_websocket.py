"""The example Tornado WebSocket shares the port with Django."""

from __future__ import annotations

import asyncio

import httpx
from tornado.websocket import websocket_connect


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
