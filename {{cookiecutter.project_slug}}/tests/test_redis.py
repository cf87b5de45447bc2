"""The Redis cache (REDIS_URL): Django's built-in RedisCache, shared by every process."""

from __future__ import annotations

import secrets

import httpx
import pytest
import redis
from django.core.cache import cache

# Every test here is about Redis: none runs against the local memory cache that servers get
# when Redis does not answer (conftest.py server_env).
pytestmark = pytest.mark.usefixtures("redis_cache_url")

@pytest.fixture
def redis_client(redis_cache_url):
    client = redis.Redis.from_url(redis_cache_url)
    yield client
    client.close()


def test_cache_backend_is_redis(redis_client):
    key = f"test-{secrets.token_hex(4)}"
    # Not the site's own prefix: the tests never touch the keys a running site uses.
    assert cache.make_and_validate_key(key).startswith("{{ cookiecutter.project_slug }}_test:")
    cache.set(key, {"answer": 42}, 30)
    try:
        assert cache.get(key) == {"answer": 42}
        assert redis_client.exists(cache.make_and_validate_key(key)) == 1
        assert 0 < redis_client.ttl(cache.make_and_validate_key(key)) <= 30
    finally:
        cache.delete(key)
    assert redis_client.exists(cache.make_and_validate_key(key)) == 0


def test_server_writes_to_redis_under_its_own_prefix(start_server, server_env, redis_client):
    server = start_server()
    key = f"k{secrets.token_hex(4)}"
    response = httpx.post(f"{server.url}/__test__/cache", params={"key": key, "value": "from-server"})
    assert response.status_code == 200
    stored = redis_client.keys(f"{server_env['TEST_CACHE_KEY_PREFIX']}:*:{key}")
    assert len(stored) == 1, stored


def answered_by_another_process(pid: int, request) -> dict:
    """Repeat ``request()`` (a new connection each time) until a process other than ``pid``
    answers; return that answer."""
    for _ in range(200):
        info = request()
        if info["pid"] != pid:
            return info
    pytest.fail(f"200 new connections were all answered by process {pid}")


@pytest.mark.slow
def test_every_worker_process_sees_the_same_cache(start_server):
    """A value stored through one worker process is read through the other, both ways."""
    server = start_server("--workers", "2", "--threads", "2")
    url = f"{server.url}/__test__/cache"
    key = f"k{secrets.token_hex(4)}"

    def store(value: str) -> dict:
        response = httpx.post(url, params={"key": key, "value": value}, timeout=30)
        response.raise_for_status()
        return response.json()

    def read() -> dict:
        return httpx.get(url, params={"key": key}, timeout=30).json()

    first = store("from-first")
    other = answered_by_another_process(first["pid"], read)
    assert other["value"] == "from-first"
    second = answered_by_another_process(first["pid"], lambda: store("from-second"))
    assert second["pid"] == other["pid"]
    back = answered_by_another_process(second["pid"], read)
    assert back["pid"] == first["pid"]
    assert back["value"] == "from-second"
