"""PostgreSQL through DATABASE_URL: persistent connections per thread, health checks
that replace connections the database dropped, and no connection leak."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import postgresql_connect

pytestmark = pytest.mark.usefixtures("postgresql_url")


def connection_info(url: str, count: int, concurrency: int = 1) -> list[dict]:
    def one(_):
        with httpx.Client(timeout=30) as http:
            response = http.get(f"{url}/__test__/db-connection")
            assert response.status_code == 200, response.text
            return response.json()

    with ThreadPoolExecutor(concurrency) as pool:
        return list(pool.map(one, range(count)))


def server_database(server_env) -> str:
    return server_env["DATABASE_URL"].rsplit("/", 1)[1]


def test_servers_use_a_throwaway_postgresql_database(start_server, server_env):
    server = start_server()
    info = connection_info(server.url, 1)[0]
    assert info["vendor"] == "postgresql"
    assert info["database"] == server_database(server_env)
    assert info["database"].startswith("{{ cookiecutter.project_slug }}_srv_")


def test_connections_are_kept_per_thread(start_server, postgresql_url, server_env):
    server = start_server("--threads", "4")
    infos = connection_info(server.url, 80, concurrency=8)
    backends = {info["backend_pid"] for info in infos}
    # DATABASE_CONN_MAX_AGE=60: each of the 4 threads keeps its connection open.
    assert 1 <= len(backends) <= 4, backends
    with postgresql_connect(postgresql_url) as admin:
        open_connections = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (server_database(server_env),)
        ).fetchone()[0]
    assert open_connections <= 4


def test_conn_max_age_zero_closes_after_each_request(start_server):
    """The control for the test above: without persistence every request connects anew."""
    server = start_server("--threads", "2", env={"DATABASE_CONN_MAX_AGE": "0"})
    infos = connection_info(server.url, 20)
    assert len({info["backend_pid"] for info in infos}) >= 15


def test_health_checks_replace_connections_the_database_dropped(start_server, postgresql_url, server_env):
    server = start_server("--threads", "3")
    before = {info["backend_pid"] for info in connection_info(server.url, 30, concurrency=6)}
    with postgresql_connect(postgresql_url) as admin:
        # What a database restart or a firewall timeout does to idle connections.
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
            (server_database(server_env),),
        ).fetchone()[0]
    assert killed == len(before)
    # CONN_HEALTH_CHECKS: each thread notices its dead connection and opens a new one,
    # instead of answering 500 once per thread.
    after = connection_info(server.url, 30, concurrency=6)
    assert {info["backend_pid"] for info in after}.isdisjoint(before)
    assert "OperationalError" not in server.output()


@pytest.mark.slow
def test_workers_share_the_database(start_server, postgresql_url, server_env):
    """Both worker processes answer, each from the same database: a row written through one
    is read through the other; and together they keep at most their 2 x 3 connections."""
    server = start_server("--workers", "2", "--threads", "3")
    infos = connection_info(server.url, 60, concurrency=10)
    assert {info["vendor"] for info in infos} == {"postgresql"}
    assert {info["database"] for info in infos} == {server_database(server_env)}
    assert len({info["pid"] for info in infos}) == 2, "one worker answered all 60 requests"

    url = f"{server.url}/__test__/group"
    name = f"shared-{secrets.token_hex(4)}"
    created = httpx.post(url, params={"name": name}, timeout=30).json()
    assert created["exists"] is True
    for _ in range(200):  # a new connection each time, until the other worker answers
        seen = httpx.get(url, params={"name": name}, timeout=30).json()
        if seen["pid"] != created["pid"]:
            break
    else:
        pytest.fail(f"200 new connections were all answered by process {created['pid']}")
    assert seen["exists"] is True, "the other worker does not see the row"

    with postgresql_connect(postgresql_url) as admin:
        open_connections = admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (server_database(server_env),)
        ).fetchone()[0]
    assert open_connections <= 2 * 3
