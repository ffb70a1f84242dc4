"""Exact-match response cache: Redis when configured, else in-process.

Only deterministic requests (temperature 0) or those whose routing rule enables it are
cached. The key hashes the tenant's scope (organisation, or key before organisations exist)
and everything routing read outside the body — the matched rule, the ordered targets, the
key's residency — with the normalised body, so one tenant never receives another's answer and
two keys (or tags) that a rule routes differently never share one.
`Cache-Control: no-cache` skips the lookup (the fresh answer still refreshes the entry).
"""

import hashlib
import logging
import os
import time

import orjson
from django.conf import settings

from apps.common import redis as shared_redis

log = logging.getLogger(__name__)
DEFAULT_TTL = int(os.environ.get("XROUTER_CACHE_TTL", "300"))
MAX_LOCAL_ENTRIES = 10_000
# Answers have no size of their own worth trusting (a long deterministic answer is cheap to ask
# for): the in-process cache is bounded in bytes too, and an answer over an eighth of it is not kept.
MAX_LOCAL_BYTES = 64 * 1024 * 1024
PREFIX = f"{settings.XROUTER['REDIS_NAMESPACE']}:cache:"
_local: dict[str, tuple[float, bytes]] = {}
_local_bytes = 0
_NOT_PART_OF_THE_ANSWER = ("stream", "stream_options", "metadata")


def ttl_for(body: dict, plan) -> int | None:
    if plan.cache_ttl:
        return plan.cache_ttl
    if body.get("temperature") == 0 and body.get("n", 1) == 1:
        return DEFAULT_TTL
    return None


def cache_key(key, plan, body: dict) -> str:
    """One canonical JSON document (sorted keys) of the scope, the route and the body, hashed."""
    normalised = {k: v for k, v in body.items() if k not in _NOT_PART_OF_THE_ANSWER}
    document = {
        "scope": key.cache_scope,
        "residency": key.residency,
        "rule": plan.rule,
        "targets": [t.model.public_id for t in plan.targets],
        "body": normalised,
    }
    return PREFIX + hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


def bypass(req) -> bool:
    return "no-cache" in req.header(b"cache-control").lower()


async def get(key: str) -> dict | None:
    client = shared_redis.client()
    if client is not None:
        try:
            raw = await client.get(key)
        except Exception:
            return None  # a cache outage must not fail requests
    else:
        hit = _local.get(key)
        raw = hit[1] if hit and hit[0] > time.monotonic() else None
    return orjson.loads(raw) if raw else None


async def put(key: str, entry: dict, ttl: int) -> None:
    raw = orjson.dumps(entry)
    client = shared_redis.client()
    if client is not None:
        try:
            await client.set(key, raw, ex=ttl)
        except Exception:
            log.warning("response cache write failed; the answer was served uncached", exc_info=True)
        return
    global _local_bytes
    if len(raw) > MAX_LOCAL_BYTES // 8:
        return
    old = _local.pop(key, None)
    if old is not None:
        _local_bytes -= len(old[1])
    while _local and (len(_local) >= MAX_LOCAL_ENTRIES or _local_bytes + len(raw) > MAX_LOCAL_BYTES):
        _local_bytes -= len(_local.pop(next(iter(_local)))[1])  # oldest first: dicts keep insertion order
    _local[key] = (time.monotonic() + ttl, raw)
    _local_bytes += len(raw)


def entry_for(choices: list[dict], usage, model: str, provider: str, route: str) -> dict:
    return {
        "choices": choices,
        "usage": {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                  "cached_tokens": usage.cached_tokens, "reasoning_tokens": usage.reasoning_tokens},
        "model": model,
        "provider": provider,
        "route": route,
    }
