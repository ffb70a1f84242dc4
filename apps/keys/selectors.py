"""Key lookup for the /v1 hot path: an in-process cache in front of one indexed query.

Steady state costs a SHA-256 and a dict lookup. A miss runs one query in a thread
(sync_to_async); a revocation or edit clears every process's cache through the bus.
"""

import fnmatch
import hashlib
import time
from dataclasses import dataclass

from apps.common import bus
from apps.common.db import run_sync

from .models import ApiKey

POSITIVE_TTL = 300.0  # safety net; edits invalidate at once through the bus
NEGATIVE_TTL = 10.0  # a wrong key is not looked up again for this long
MAX_ENTRIES = 100_000


@dataclass(frozen=True, slots=True)
class KeyInfo:
    id: int
    prefix: str
    name: str
    user_id: int
    organisation_id: int | None
    allowed_models: tuple
    residency: str
    expires_at: float | None

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatch.fnmatchcase(model, p) for p in self.allowed_models)

    @property
    def cache_scope(self) -> str:
        """Whose answers may be shared: the organisation, or the key before organisations exist."""
        return f"org:{self.organisation_id}" if self.organisation_id else f"key:{self.id}"


_cache: dict[str, tuple[float, KeyInfo | None]] = {}


def _clear(_event=None):
    _cache.clear()


bus.subscribe("keys", _clear)


def _load(hashed: str) -> KeyInfo | None:
    key = ApiKey.objects.filter(hashed_key=hashed).first()
    if key is None or not key.is_active():
        return None
    return KeyInfo(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        user_id=key.user_id,
        organisation_id=key.organisation_id,
        allowed_models=tuple(key.allowed_models or ()),
        residency=key.residency,
        expires_at=key.expires_at.timestamp() if key.expires_at else None,
    )


def key_info_for(plaintext: str) -> KeyInfo | None:
    """Synchronous lookup (DRF authentication, the WebSocket consumer)."""
    return _load(hashlib.sha256(plaintext.encode()).hexdigest())


async def akey_info_for(plaintext: str) -> KeyInfo | None:
    """The KeyInfo for a presented key, or None when it is unknown, revoked or expired."""
    hashed = hashlib.sha256(plaintext.encode()).hexdigest()
    now = time.monotonic()
    hit = _cache.get(hashed)
    if hit is not None and hit[0] > now:
        info = hit[1]
    else:
        info = await run_sync(_load)(hashed)
        if len(_cache) >= MAX_ENTRIES:
            _cache.clear()
        _cache[hashed] = (now + (POSITIVE_TTL if info else NEGATIVE_TTL), info)
    if info is not None and info.expires_at is not None and info.expires_at <= time.time():
        return None
    return info
