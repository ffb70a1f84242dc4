"""One shared asyncio Redis client per process (None when REDIS_URL is unset)."""

from django.conf import settings

_client = None


def client():
    global _client
    if not settings.REDIS_URL:
        return None
    if _client is None:
        import redis.asyncio as aioredis

        _client = aioredis.Redis.from_url(settings.REDIS_URL, max_connections=256, health_check_interval=30)
    return _client


async def aclose():
    global _client
    if _client is not None:
        await _client.aclose()
        _client = None
