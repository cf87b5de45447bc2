"""The Redis cache (REDIS_URL): Django's built-in RedisCache, shared by every process."""

from __future__ import annotations

import secrets

import httpx
import pytest
import redis
from django.core.cache import cache


@pytest.fixture
def redis_client(redis_cache_url):
    client = redis.Redis.from_url(redis_cache_url)
    yield client
    client.close()


def test_cache_backend_is_redis(redis_client):
    key = f"test-{secrets.token_hex(4)}"
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


@pytest.mark.slow
def test_every_worker_process_sees_the_same_cache(start_server):
    server = start_server("--workers", "2", "--threads", "2")
    key = f"k{secrets.token_hex(4)}"
    httpx.post(f"{server.url}/__test__/cache", params={"key": key, "value": "shared"}).raise_for_status()
    values = set()
    for _ in range(40):
        # A new connection each time, so either worker may answer.
        values.add(httpx.get(f"{server.url}/__test__/cache", params={"key": key}, timeout=30).json()["value"])
    assert values == {"shared"}
