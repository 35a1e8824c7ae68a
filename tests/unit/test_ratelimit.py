"""Rate limiter stores."""

from __future__ import annotations

import secrets

from app.ratelimit import MemoryRateLimiter, RedisRateLimiter, Unlimited, build


async def test_memory_limiter_counts_per_key() -> None:
    limiter = MemoryRateLimiter(limit=2, period=3600)
    assert [(await limiter.hit("a")).allowed for _ in range(3)] == [True, True, False]
    assert (await limiter.hit("b")).allowed
    denied = await limiter.hit("a")
    assert not denied.allowed
    assert 1 <= denied.retry_after <= 3600


async def test_redis_limiter_counts_across_instances() -> None:
    key = secrets.token_hex(8)
    first = RedisRateLimiter("redis://127.0.0.1:6379/0", limit=2, period=3600)
    second = RedisRateLimiter("redis://127.0.0.1:6379/0", limit=2, period=3600)
    try:
        results = [(await first.hit(key)).allowed, (await second.hit(key)).allowed]
        results.append((await first.hit(key)).allowed)
        assert results == [True, True, False]
    finally:
        await first.close()
        await second.close()


async def test_unreachable_redis_lets_requests_through() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0", limit=1, period=60)
    try:
        assert (await limiter.hit("x")).allowed
        assert (await limiter.hit("x")).allowed
    finally:
        await limiter.close()


def test_build_picks_the_store() -> None:
    assert isinstance(build(None, None), Unlimited)
    assert isinstance(build((1, 60), None), MemoryRateLimiter)
    assert isinstance(build((1, 60), "redis://127.0.0.1:6379/0"), RedisRateLimiter)
