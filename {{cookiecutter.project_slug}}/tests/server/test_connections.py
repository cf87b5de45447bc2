"""Many idle keep-alive connections neither exhaust the server nor lock out new clients."""

from __future__ import annotations

import collections
import socket
import sys
import time

import httpx
import pytest

from ..conftest import IS_WINDOWS, need, second_loopback_address


@pytest.fixture
def many_files():
    """Let this process hold a few thousand sockets too (Windows has no such limit)."""
    if IS_WINDOWS:
        yield
        return
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192 if hard == resource.RLIM_INFINITY else min(hard, 8192)
    need(wanted >= 4500, f"RLIMIT_NOFILE hard limit {hard} is too low for this test (ulimit -Hn)")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def open_idle(port: int, count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sockets.append(sock)
    return sockets


def get_on(sock: socket.socket, path: str = "/healthz") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok"):
        part = sock.recv(4096)
        if not part:
            break
        data += part
    return data


def closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(5)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def timed_get(url: str) -> tuple[int, float]:
    started = time.monotonic()
    status = httpx.get(f"{url}/healthz", timeout=10).status_code
    return status, time.monotonic() - started


@pytest.mark.skipif(sys.platform == "win32",
                    reason="not on Windows: it serves at most 500 connections per process")
def test_thousands_of_idle_connections(start_server, many_files):
    server = start_server("--max-connections-per-ip", "5000", "--max-connections", "3000")
    idle = open_idle(server.port, 2000)
    try:
        # Half of them have already made a request and now wait on keep-alive.
        for sock in idle[::2]:
            assert get_on(sock).startswith(b"HTTP/1.1 200 OK")
        status, elapsed = timed_get(server.url)
        assert status == 200
        # Generous: the point is that it is served at all, not how fast on a busy CI box.
        assert elapsed < 5, f"request beside 2000 idle connections took {elapsed:.2f}s"
        # Under the limit nothing was dropped: the oldest connections still work.
        assert get_on(idle[0]).startswith(b"HTTP/1.1 200 OK")
        assert get_on(idle[1]).startswith(b"HTTP/1.1 200 OK")
    finally:
        for sock in idle:
            sock.close()
    assert server.process.poll() is None


def test_connection_limit_evicts_idle_connections(start_server, many_files):
    server = start_server("--max-connections-per-ip", "5000", "--max-connections", "100")
    idle = open_idle(server.port, 300)
    try:
        for sock in idle[-50:]:
            assert get_on(sock).startswith(b"HTTP/1.1 200 OK")
        status, elapsed = timed_get(server.url)
        assert status == 200
        assert elapsed < 5
        # The oldest idle connections made room; the server closed them.
        assert closed_by_server(idle[0])
        # ...while the most recently active ones are still being served.
        assert get_on(idle[-1]).startswith(b"HTTP/1.1 200 OK")
    finally:
        for sock in idle:
            sock.close()
    assert "refusing" not in server.output()


def low_open_file_limit() -> None:
    """In the server's process before it starts: the soft limit many Linux systems have."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))


@pytest.mark.skipif(sys.platform == "win32", reason="not on Windows: it has no RLIMIT_NOFILE")
def test_server_raises_a_low_open_file_limit(start_server, many_files):
    """Started with a soft limit of 256 open files, the server still holds 1000 connections."""
    server = start_server("--max-connections-per-ip", "5000", "--max-connections", "2000", preexec_fn=low_open_file_limit)
    idle = open_idle(server.port, 1000)
    try:
        # All of them are open at once; now each one asks in turn.
        for number, sock in enumerate(idle):
            try:
                answer = get_on(sock)
            except TimeoutError:
                answer = b"(no answer in 10s)"
            assert answer.startswith(b"HTTP/1.1 200 OK"), f"connection {number} of 1000: {answer!r}"
    finally:
        for sock in idle:
            sock.close()
    assert server.process.poll() is None


def slow_upload(port: int, source: str = "127.0.0.1") -> socket.socket:
    """A client that sends the headers and one byte of a 100 KB body, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0))
    sock.sendall(b"POST /__test__/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\nx")
    return sock


def test_slow_uploads_at_the_connection_limit_are_evicted(start_server):
    """Connections still sending a body do not lock out new clients at --max-connections:
    the slowest upload makes room."""
    server = start_server("--max-connections", "3")
    uploads = [slow_upload(server.port) for _ in range(3)]
    try:
        time.sleep(1.2)  # their headers are read; they now hold every slot
        status, elapsed = timed_get(server.url)
        assert status == 200
        assert elapsed < 5
        assert any(closed_within(sock, 2) for sock in uploads)
    finally:
        for sock in uploads:
            sock.close()
    assert "closing the slowest upload" in server.output()


def open_non_readers(port: int, target: str, receive_buffer: int, count: int = 3) -> list[socket.socket]:
    """``count`` clients that ask for ``target`` with a small receive buffer and read nothing."""
    readers = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)  # before the handshake
        sock.settimeout(10)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        readers.append(sock)
    return readers


def assert_a_non_reader_makes_room(server, readers: list[socket.socket], logged: str | None = None) -> None:
    """With ``readers`` holding every connection --max-connections allows, a new client gets
    its answer within 5 s once they have read nothing for longer than the 5 s that make a
    response evictable (after each has ``logged`` its access line, when given); the server
    says it closed one. Closes ``readers``."""
    try:
        if logged is not None:
            server.wait_for_output(logged, count=len(readers))
        time.sleep(6.5)
        status, elapsed = timed_get(server.url)
        assert status == 200
        assert elapsed < 5
    finally:
        for sock in readers:
            sock.close()
    assert "closing a response its client has not read" in server.output()


def test_stalled_readers_at_the_connection_limit_are_evicted(start_server, tmp_path):
    """Clients that stop reading a download do not lock out new ones at --max-connections:
    the one that has read nothing for longest makes room."""
    big = tmp_path / "big.bin"
    with open(big, "wb") as handle:
        handle.truncate(20 * 1024 * 1024)
    server = start_server("--max-connections", "3", "--max-connections-per-ip", "100",
                          env={"TEST_FILE": str(big)})
    assert_a_non_reader_makes_room(server, open_non_readers(server.port, "/__test__/file", receive_buffer=2048))


def test_clients_that_do_not_read_a_whole_page_are_evicted_at_the_limit(start_server):
    """A page sent whole (any HttpResponse) to a client that reads none of it is evictable
    too, although no thread holds it and the server has handed all of it over."""
    server = start_server("--max-connections", "3")
    readers = open_non_readers(server.port, "/__test__/big-page?size=16000000", receive_buffer=4096)
    assert_a_non_reader_makes_room(server, readers, logged='"GET /__test__/big-page?size=16000000 HTTP/1.1" 200')


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def refused(port: int, source: str = "127.0.0.1") -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=10, source_address=(source, 0)) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            sock.settimeout(10)
            return not sock.recv(100).startswith(b"HTTP/1.1 200")
        except ConnectionError:
            return True


def test_one_address_cannot_take_every_slot(start_server):
    """--max-connections-per-ip: past it, that address is refused, others still get in, and
    the refusals are logged once, not once each."""
    need(second_loopback_address(), "127.0.0.2 is not a loopback address here")
    server = start_server("--max-connections-per-ip", "3", "--max-connections", "100")
    held = [slow_upload(server.port) for _ in range(3)]
    try:
        time.sleep(0.3)
        assert all(refused(server.port) for _ in range(5))
        assert not refused(server.port, "127.0.0.2")
    finally:
        for sock in held:
            sock.close()
    assert server.output().count("Connection limit per address (3) reached") == 1
    time.sleep(0.5)  # the held connections are gone: the address gets in again
    assert not refused(server.port)


def test_trusted_proxy_is_exempt_from_the_per_address_cap(start_server):
    """A reverse proxy carries many clients over its own address."""
    server = start_server("--max-connections-per-ip", "2", "--trusted-proxies", "127.0.0.1")
    held = [slow_upload(server.port) for _ in range(4)]
    try:
        time.sleep(0.3)
        assert not refused(server.port)
    finally:
        for sock in held:
            sock.close()


def test_at_the_address_cap_its_idle_connections_make_room(start_server):
    """A new connection from an address at its cap closes that address's idle keep-alive
    connection, the longest idle first, instead of being refused."""
    server = start_server("--max-connections-per-ip", "3", "--max-connections", "100")
    kept = open_idle(server.port, 3)
    try:
        for sock in kept:
            assert get_on(sock).startswith(b"HTTP/1.1 200 OK")
            time.sleep(0.05)
        status, _ = timed_get(server.url)
        assert status == 200
        assert closed_by_server(kept[0])  # idle longest
        assert get_on(kept[2]).startswith(b"HTTP/1.1 200 OK")
    finally:
        for sock in kept:
            sock.close()


def test_a_client_refused_at_the_address_cap_gets_503(start_server):
    """Past the cap, with no idle connection to close, a new connection gets 503 with
    Retry-After and Connection: close (not a reset), and the log says what to check."""
    server = start_server("--max-connections-per-ip", "3", "--max-connections", "100")
    held = [slow_upload(server.port) for _ in range(3)]
    try:
        time.sleep(0.3)
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                answer = b""
                while part := sock.recv(4096):
                    answer += part
            head = answer.partition(b"\r\n\r\n")[0].decode()
            assert head.startswith("HTTP/1.1 503 "), answer
            assert "Retry-After: 5" in head and "Connection: close" in head
        with httpx.Client(timeout=10) as http:
            response = http.get(f"{server.url}/healthz")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "5"
    finally:
        for sock in held:
            sock.close()
    output = server.wait_for_output("--max-connections-per-ip")
    assert output.count("Connection limit per address (3) reached by 127.0.0.1") == 1
    assert "--trusted-proxies" in output


def test_per_address_cap_counts_ipv6_per_64():
    """One IPv6 client has a whole /64: its addresses count as one; an IPv4-mapped
    address counts as its IPv4 address."""
    from tornado_wsgi_server.connections import address_key

    assert address_key("2001:db8:1:2::5") == address_key("2001:db8:1:2:ffff:ffff:ffff:ffff")
    assert address_key("2001:db8:1:2::5") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::5") != address_key("2001:db8:1:2::5")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"


def test_noted_addresses_are_forgotten_oldest_first(caplog):
    """The once-a-minute log bookkeeping stays bounded when many addresses hit a limit in
    one minute (the oldest is forgotten, no rebuild), and so does the number of lines."""
    import collections
    import logging

    from tornado_wsgi_server import container as container_module

    noting = object.__new__(container_module.ThreadedWSGIContainer)
    noting._noted = collections.OrderedDict()
    noting._note_minute = (0.0, 0)
    total = container_module.NOTED_MAX + 500
    with caplog.at_level(logging.INFO):
        started = time.monotonic()
        for number in range(total):
            noting.note(f"10.{number >> 16}.{(number >> 8) & 255}.{number & 255}", "per-address",
                        "limit reached by %s", number)
        elapsed = time.monotonic() - started
    assert len(noting._noted) <= container_module.NOTED_MAX
    assert ("per-address", "10.0.0.0") not in noting._noted
    assert ("per-address", f"10.0.{(total - 1) >> 8 & 255}.{(total - 1) & 255}") in noting._noted
    lines = [record for record in caplog.records if "limit reached" in record.getMessage()]
    assert len(lines) == container_module.NOTES_PER_MINUTE
    assert elapsed < 5


def test_an_office_behind_one_address_is_served(start_server):
    """20 browsers behind one NAT address, each loading pages over 6 keep-alive connections
    (120 connections against the default cap of 50): every request is answered 200, none
    is reset or refused. Idle keep-alive of the address makes room for new connections."""
    import asyncio
    import random

    server = start_server()  # the default --max-connections-per-ip
    outcomes: collections.Counter = collections.Counter()

    async def browser(number: int, until: float) -> None:
        rng = random.Random(number)
        limits = httpx.Limits(max_connections=6, max_keepalive_connections=6, keepalive_expiry=60)
        async with httpx.AsyncClient(limits=limits, timeout=10) as http:
            await asyncio.sleep(rng.uniform(0, 1))
            while time.monotonic() < until:
                # A page, then its assets over the browser's 6 connections at once.
                for batch in ([f"{server.url}/healthz"], [f"{server.url}/healthz?asset={n}" for n in range(6)]):
                    results = await asyncio.gather(*(http.get(url) for url in batch), return_exceptions=True)
                    for result in results:
                        outcomes[result.status_code if isinstance(result, httpx.Response)
                                 else type(result).__name__] += 1
                await asyncio.sleep(rng.uniform(0.2, 1.0))  # reading the page

    async def office() -> None:
        until = time.monotonic() + 8
        await asyncio.wait_for(asyncio.gather(*(browser(n, until) for n in range(20))), 60)

    asyncio.run(office())
    assert set(outcomes) == {200}, outcomes
    assert outcomes[200] >= 20 * 7  # every browser loaded a page at least (fewer on a busy machine)
