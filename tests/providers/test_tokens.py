"""The token cache: one fetch under a burst, refresh before expiry, 401 invalidation, Redis sharing."""

import asyncio
import logging
import time

from apps.providers.adapters.tokens import NEVER, Token, TokenCache, credential_key


class Issuer:
    """A fake token endpoint that counts its calls."""

    def __init__(self, lifetime: float = 1800, delay: float = 0.05):
        self.calls = 0
        self.lifetime = lifetime
        self.delay = delay

    async def __call__(self) -> Token:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return Token(f"token-{self.calls}", time.time() + self.lifetime)


async def test_it_fetches_once_under_a_burst_of_callers():
    cache, issuer = TokenCache(redis=lambda: None), Issuer()
    values = await asyncio.gather(*(cache.get("k", issuer) for _ in range(100)))
    assert issuer.calls == 1
    assert set(values) == {"token-1"}


async def test_it_refreshes_a_minute_before_expiry(monkeypatch):
    cache, issuer = TokenCache(redis=lambda: None), Issuer(lifetime=1800)
    assert await cache.get("k", issuer) == "token-1"
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 1800 - 61)
    assert await cache.get("k", issuer) == "token-1"
    monkeypatch.setattr(time, "time", lambda: now + 1800 - 59)
    assert await cache.get("k", issuer) == "token-2"


async def test_it_keeps_short_lived_tokens_for_half_their_life():
    cache, issuer = TokenCache(redis=lambda: None), Issuer(lifetime=0.4, delay=0)
    await cache.get("k", issuer)
    await cache.get("k", issuer)
    assert issuer.calls == 1
    await asyncio.sleep(0.25)
    assert await cache.get("k", issuer) == "token-2"


async def test_it_forgets_a_refused_token_only_once():
    cache, issuer = TokenCache(redis=lambda: None), Issuer()
    bad = await cache.get("k", issuer)
    await cache.invalidate("k", bad)
    fresh = await asyncio.gather(*(cache.get("k", issuer) for _ in range(10)))
    # Late 401s for the old token must not throw the new one away.
    await cache.invalidate("k", bad)
    assert set(fresh) == {"token-2"} and await cache.get("k", issuer) == "token-2"
    assert issuer.calls == 2


async def test_callers_queued_behind_a_failed_fetch_share_its_error():
    calls = 0

    async def failing() -> Token:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise ConnectionError("token endpoint down")

    cache = TokenCache(redis=lambda: None)
    results = await asyncio.gather(*(cache.get("k", failing) for _ in range(20)), return_exceptions=True)
    assert calls == 1 and all(isinstance(r, ConnectionError) for r in results)


async def test_it_treats_tokens_without_expiry_as_valid():
    assert Token("x", NEVER).fresh()


def test_it_never_shows_a_token_in_its_repr_or_key():
    token = Token("super-secret-token", time.time() + 60)
    assert "super-secret-token" not in repr(token)
    key = credential_key("gigachat", "https://auth", "GIGACHAT_API_PERS", "my-authorization-key")
    assert "my-authorization-key" not in key and key.startswith("gigachat:")


async def test_it_falls_back_to_fetching_when_redis_fails(caplog):
    class Broken:
        async def get(self, key):
            raise ConnectionError("redis down")

        async def set(self, *args, **kwargs):
            raise ConnectionError("redis down")

    cache, issuer = TokenCache(redis=lambda: Broken()), Issuer()
    with caplog.at_level(logging.WARNING):
        assert await cache.get("k", issuer) == "token-1"
    assert "token-1" not in caplog.text


async def test_processes_share_one_fetch_through_redis(redis_url):
    """Two caches stand for two gateway processes: only one of them calls the token endpoint."""
    import uuid

    import redis.asyncio as aioredis

    client_a, client_b = aioredis.Redis.from_url(redis_url), aioredis.Redis.from_url(redis_url)
    prefix = f"xrouter:test:{uuid.uuid4().hex[:8]}:"
    try:
        process_a = TokenCache(redis=lambda: client_a, prefix=prefix)
        process_b = TokenCache(redis=lambda: client_b, prefix=prefix)
        issuer = Issuer(delay=0.2)
        values = await asyncio.gather(
            *(process_a.get("k", issuer) for _ in range(50)), *(process_b.get("k", issuer) for _ in range(50))
        )
        assert issuer.calls == 1
        assert set(values) == {"token-1"}
        stored = await client_a.get(prefix + "k")
        assert stored is not None and await client_a.pttl(prefix + "k") > 0
        assert await client_a.exists(prefix + "lock:k") == 0

        # A 401 in one process clears the shared copy; the other refetches instead of reusing it.
        await process_a.invalidate("k", "token-1")
        process_b.clear()
        assert await process_b.get("k", issuer) == "token-2"
        assert await process_a.get("k", issuer) == "token-2"
        assert issuer.calls == 2
    finally:
        keys = await client_a.keys(prefix + "*")
        if keys:
            await client_a.delete(*keys)
        await client_a.aclose()
        await client_b.aclose()


async def test_a_forced_refresh_fetches_even_when_fresh():
    cache, issuer = TokenCache(redis=lambda: None), Issuer()
    await cache.get("k", issuer)
    assert await cache.get("k", issuer, force=True) == "token-2"
