"""Leases shared by every process: a place in a Redis sorted set (member → expiry), taken atomically
under a limit, renewed while held and given back at once; a killed worker's leases expire within
LEASE_MS. The rate limiter's concurrency slots (apps/limits, taken inside its admission script) and
the provider credentials' concurrency (apps/providers/adapters/base.py) are such leases; this module
renews them both, all of a process's in one call every LEASE_MS / 3.

A request under limits gets its first target's credential lease in the admission call itself
(`grant`): the adapter takes it from there (`take_granted`) instead of asking Redis again, and the
limiter's settle gives it back with the request's other leases.
"""

import asyncio
import logging
from contextvars import ContextVar

from apps.common import redis as shared_redis

log = logging.getLogger(__name__)
LEASE_MS = 30_000
RENEW_EVERY = LEASE_MS / 3000

ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]) + 1000)
return 1
"""

# KEYS: lease sets; ARGV[1] the lease (ms), ARGV[1 + i] the member holding one in KEYS[i].
# XX: a lease that expired or was given back stays gone.
RENEW = """
local t = redis.call('TIME')
local until_ = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[1])
for i = 1, #KEYS do
  redis.call('ZADD', KEYS[i], 'XX', until_, ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[1]) + 1000)
end
return #KEYS
"""

_held: dict[tuple[str, str], None] = {}  # (lease set, member) this process holds in Redis
_granted: ContextVar[dict | None] = ContextVar("granted_leases", default=None)  # lease set → member, per request


def grant(key: str, member: str) -> None:
    """The admission took a place in `key` for this request (held, and renewed, until given back)."""
    _granted.set({key: member})
    hold(key, member)


def ungrant(key: str, member: str) -> None:
    """The request is over: a place it was granted and did not use is no longer there to take (its settle
    gives it back), whatever later runs in the same context (a WebSocket connection's next request)."""
    granted = _granted.get()
    if granted and granted.get(key) == member:
        del granted[key]
    drop(key, member)


def take_granted(key: str) -> str | None:
    """The member of a place granted to this request in `key` (once: a second attempt takes its own)."""
    granted = _granted.get()
    return granted.pop(key, None) if granted else None
_renewer: asyncio.Task | None = None


async def evalsha(client, script: str, keys: list, args: list):
    """EVALSHA, loading the script once when Redis does not know it (NOSCRIPT)."""
    from redis.exceptions import NoScriptError

    sha = shared_redis.script_sha(script)
    try:
        return await client.evalsha(sha, len(keys), *keys, *args)
    except NoScriptError:
        await client.script_load(script)
        return await client.evalsha(sha, len(keys), *keys, *args)


async def acquire(client, key: str, member: str, limit: int) -> bool:
    """Take a lease in `key` if fewer than `limit` are held; held ones are renewed until release()."""
    if not await evalsha(client, ACQUIRE, [key], [member, limit, LEASE_MS]):
        return False
    hold(key, member)
    return True


def hold(key: str, member: str) -> None:
    """Renew this lease (taken elsewhere, e.g. by the admission script) until drop() or release()."""
    global _renewer
    _held[(key, member)] = None
    loop = asyncio.get_running_loop()
    if _renewer is None or _renewer.done() or _renewer.get_loop() is not loop:
        _renewer = loop.create_task(_run_renewer(), name="lease-renewer")


def drop(key: str, member: str) -> None:
    """Stop renewing (the lease is given back by someone else, e.g. the limiter's settle)."""
    _held.pop((key, member), None)


async def release(key: str, member: str) -> None:
    """Give the lease back now (a failure leaves it to expire within LEASE_MS)."""
    drop(key, member)
    client = shared_redis.client()
    if client is None:
        return
    try:
        await client.zrem(key, member)
    except Exception as exc:
        log.warning("a lease could not be given back (%s); it expires within %d s", type(exc).__name__,
                    LEASE_MS // 1000)


async def _run_renewer() -> None:
    while _held:
        await asyncio.sleep(RENEW_EVERY)
        try:
            await renew()
        except Exception as exc:
            log.warning("renewing %d leases failed (%s)", len(_held), type(exc).__name__)


async def renew() -> None:
    client = shared_redis.client()
    pairs = list(_held)
    if client is not None and pairs:
        await evalsha(client, RENEW, [k for k, _ in pairs], [LEASE_MS, *(m for _, m in pairs)])
