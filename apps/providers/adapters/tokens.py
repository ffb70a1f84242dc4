"""Short-lived access tokens (GigaChat OAuth, Yandex IAM), fetched once and shared.

A token is kept in-process with its expiry and replaced a minute before it runs out (the
GigaChat SDK's `token_expiry_buffer_ms`). Refresh is serialised per credential: under a burst
of 100 requests exactly one coroutine fetches, the others wait on an asyncio.Lock and then
find the fresh token (double-checked).

With REDIS_URL set, the token is also shared between processes: it is stored with its expiry
under a key made from a hash of the credential (never the credential itself), and a
`SET NX PX` lock lets one process fetch while the others poll briefly and re-read. Redis is an
optimisation: when it fails, each process simply fetches for itself. The shared copy is encrypted
(Fernet, XROUTER_FERNET_KEYS, as credentials at rest are): whoever reads Redis gets no provider token,
and one written by anyone without the key reads as absent (the process fetches its own).

Token values are never logged; Token's repr hides them.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

REFRESH_MARGIN = 60.0  # seconds before expiry when a token counts as stale
NEVER = float("inf")  # externally supplied tokens: valid until a 401 says otherwise
LOCK_TTL_MS = 15_000  # a crashed refresher frees the Redis lock after this
WAIT_FOR_PEER = 10.0  # how long a process waits for another one's refresh before fetching itself
POLL_INTERVAL = 0.05
FAILURE_HOLD = 1.0  # callers queued behind a failed fetch get its error instead of each retrying it


@dataclass(slots=True)
class Token:
    value: str = field(repr=False)
    expires_at: float  # unix seconds; NEVER for tokens without a known expiry
    issued_at: float = field(default_factory=time.time)

    def fresh(self, now: float | None = None) -> bool:
        if self.expires_at == NEVER:
            return True
        now = time.time() if now is None else now
        return now < self.refresh_at

    @property
    def refresh_at(self) -> float:
        # A minute early, but never more than half the lifetime: a token that lives 30 s (an
        # emulator, a misconfigured server) is still used instead of being refetched per call.
        return self.expires_at - min(REFRESH_MARGIN, (self.expires_at - self.issued_at) / 2)

    def __repr__(self) -> str:  # belt and braces: the dataclass field is already repr=False
        return f"Token(expires_at={self.expires_at}, value=<hidden>)"


def credential_key(kind: str, *parts: str) -> str:
    """A stable cache key for a credential that reveals nothing about it."""
    digest = hashlib.sha256("\x00".join((kind, *parts)).encode()).hexdigest()[:40]
    return f"{kind}:{digest}"


def _redis():
    from apps.common.redis import client

    return client()


def _key_prefix() -> str:
    from django.conf import settings

    return f"{settings.XROUTER['REDIS_NAMESPACE']}:token:"


class _Entry:
    __slots__ = ("error", "failed_at", "lock", "loop", "token")

    def __init__(self) -> None:
        self.token: Token | None = None
        self.lock: asyncio.Lock | None = None
        self.loop = None
        self.error: BaseException | None = None
        self.failed_at = 0.0

    def get_lock(self) -> asyncio.Lock:
        # An asyncio.Lock belongs to one event loop; tests (and `manage.py` commands) may run
        # several loops in one process over time.
        loop = asyncio.get_running_loop()
        if self.lock is None or self.loop is not loop:
            self.lock, self.loop = asyncio.Lock(), loop
        return self.lock


class TokenCache:
    """Process-wide token store. `fetch` is the provider's own exchange; it returns a Token."""

    def __init__(self, redis: Callable[[], object] = _redis, prefix: str | None = None) -> None:
        self._entries: dict[str, _Entry] = {}
        self._redis = redis
        self._prefix = prefix  # tests give each run its own namespace

    @property
    def prefix(self) -> str:
        if self._prefix is None:  # read on first use: this module loads without Django settings
            self._prefix = _key_prefix()
        return self._prefix

    @prefix.setter
    def prefix(self, value: str) -> None:
        self._prefix = value

    def _entry(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        return entry

    async def get(self, key: str, fetch: Callable[[], Awaitable[Token]], *, force: bool = False) -> str:
        """A usable token for `key`, fetching it at most once at a time. `force` skips every cache."""
        entry = self._entry(key)
        stale = entry.token
        if not force and stale is not None and stale.fresh():
            return stale.value
        async with entry.get_lock():
            current = entry.token
            # Double check: whoever held the lock before us may have refreshed already.
            if current is not None and current.fresh() and (not force or current is not stale):
                return current.value
            # A token endpoint that just failed is not asked again by every queued caller
            # (GigaChat allows 10 token requests a second): they share the failure for a moment.
            if entry.error is not None and time.monotonic() - entry.failed_at < FAILURE_HOLD:
                raise copy.copy(entry.error)
            try:
                token = await self._refresh(key, fetch, force=force)
            except Exception as exc:
                entry.error, entry.failed_at = exc, time.monotonic()
                raise
            entry.token, entry.error = token, None
            return token.value

    async def invalidate(self, key: str, bad_value: str) -> None:
        """Forget a token the provider refused (a 401), unless it was already replaced."""
        entry = self._entries.get(key)
        if entry is not None and entry.token is not None and entry.token.value == bad_value:
            entry.token = None
        redis = self._client()
        if redis is None:
            return
        try:
            shared = _decode(await redis.get(self.prefix + key))
            if shared is not None and shared.value == bad_value:
                await redis.delete(self.prefix + key)
        except Exception as exc:  # noqa: BLE001 - Redis is only an optimisation here
            log.warning("token cache: Redis unavailable while invalidating (%s)", type(exc).__name__)

    def clear(self) -> None:
        self._entries.clear()

    # --- internals -------------------------------------------------------------------------
    def _client(self):
        try:
            return self._redis()
        except Exception:  # noqa: BLE001
            return None

    async def _refresh(self, key: str, fetch, *, force: bool) -> Token:
        fetch = _counted(fetch, key.partition(":")[0])
        redis = self._client()
        if redis is None:
            return await fetch()
        try:
            return await self._refresh_shared(redis, key, fetch, force=force)
        except _RedisDown:
            return await fetch()

    async def _refresh_shared(self, redis, key: str, fetch, *, force: bool) -> Token:
        store_key, lock_key = self.prefix + key, self.prefix + "lock:" + key
        if not force:
            shared = await _read(redis, store_key)
            if shared is not None and shared.fresh():
                return shared
        nonce = secrets.token_hex(8)
        deadline = time.monotonic() + WAIT_FOR_PEER
        while not await _try(redis.set(lock_key, nonce, nx=True, px=LOCK_TTL_MS)):
            # Another process is fetching: wait for its token rather than hitting the
            # provider's auth endpoint (GigaChat allows 10 token requests a second).
            await asyncio.sleep(POLL_INTERVAL)
            shared = await _read(redis, store_key)
            if shared is not None and shared.fresh() and not force:
                return shared
            if time.monotonic() > deadline:
                log.warning("token cache: a peer held the refresh lock for %.0fs; fetching without it", WAIT_FOR_PEER)
                return await self._fetch_and_store(redis, store_key, fetch)
        try:
            if not force:  # it may have landed between our read and taking the lock
                shared = await _read(redis, store_key)
                if shared is not None and shared.fresh():
                    return shared
            return await self._fetch_and_store(redis, store_key, fetch)
        finally:
            await _try(redis.eval(_RELEASE, 1, lock_key, nonce), default=None)

    async def _fetch_and_store(self, redis, store_key: str, fetch) -> Token:
        token = await fetch()
        if token.expires_at == NEVER:
            return token  # nothing worth sharing: every process has the same static token
        ttl_ms = int((token.expires_at - time.time()) * 1000)
        if ttl_ms > 0:
            await _try(redis.set(store_key, _encode(token), px=ttl_ms), default=None)
        return token


def _counted(fetch, kind: str):
    """`fetch`, counted at /metrics by credential kind (gigachat, gigachat-user, yandex-iam) and result."""
    from apps.common.metrics import TOKEN_REFRESHES

    async def counted() -> Token:
        try:
            token = await fetch()
        except BaseException:
            TOKEN_REFRESHES.labels(kind, "failure").inc()
            raise
        TOKEN_REFRESHES.labels(kind, "success").inc()
        return token

    return counted


# Delete the lock only if we still own it (it may have expired and been taken by a peer).
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class _RedisDown(Exception):
    """Redis could not be reached; the token cache falls back to this process alone."""


async def _try(awaitable, default=_RedisDown):
    try:
        return await awaitable
    except Exception as exc:
        log.warning("token cache: Redis call failed (%s)", type(exc).__name__)
        if default is _RedisDown:
            raise _RedisDown from exc
        return default


async def _read(redis, store_key: str) -> Token | None:
    return _decode(await _try(redis.get(store_key)))


def _encode(token: Token) -> str:
    from apps.common.crypto import encrypt_json

    return encrypt_json({"t": token.value, "e": token.expires_at, "i": token.issued_at})


def _decode(raw) -> Token | None:
    """The shared token, or None: absent, or not sealed with our Fernet keys (forged, or written before
    tokens were encrypted), or malformed."""
    if not raw:
        return None
    from django.core.exceptions import ImproperlyConfigured

    from apps.common.crypto import decrypt_json

    try:
        data = decrypt_json(raw.decode() if isinstance(raw, bytes) else raw)
        return Token(value=data["t"], expires_at=float(data["e"]), issued_at=float(data.get("i") or 0))
    except (ImproperlyConfigured, UnicodeDecodeError, KeyError, TypeError, ValueError):
        return None


TOKENS = TokenCache()
