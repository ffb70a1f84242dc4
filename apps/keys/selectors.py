"""Key lookup for the /v1 hot path: an in-process LRU in front of one indexed query.

The same cache holds every bearer credential /v1 takes (`alookup`, with a loader of the caller's:
API keys here, OAuth access tokens and external JWTs in apps.oauth); KeyInfo.kind says which.
Steady state costs one SHA-256 and a dict lookup. A token not shaped like a key
(`xr-<8 hex>-<secret>`) is refused before any lookup. A miss looks the key up by its prefix
and compares hashes in constant time, on one worker thread per process (so a storm of unknown
keys holds at most one database connection, however many arrive) with concurrent misses for
the same token sharing one query. Unknown tokens go to a bounded negative cache of their own,
so they never push valid keys out.

A key is refused while revoked or expired, while its user or one of its organisations is inactive, and
while its user is not a member of its organisation, or only as a billing viewer (models.holds_keys_in;
a leaver's keys stay listed for the owners).

Freshness: services publish which credentials changed (keys, OAuth tokens, a user's or an
organisation's) and every process drops just those. While this process is not hearing the bus, a cached key older
than RECHECK_DISCONNECTED is re-checked. When the database cannot be reached, a cached key keeps
being served for up to XROUTER_STALE_MAX seconds after its last successful check; an uncached
one gets 503 with Retry-After.
"""

import asyncio
import fnmatch
import hmac
import logging
import re
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from hashlib import sha256

from django.conf import settings
from django.db import Error as DatabaseFailure
from django.db import connections
from django.db.models import OuterRef, Q, Subquery
from django.utils import timezone

from apps.accounts.models import Membership
from apps.common import bus
from apps.common.errors import ApiError
from apps.common.personal_data import policies_of
from apps.common.rates import Limits, parse_model_limits

from .models import DEFAULT_SCOPES, ApiKey, holds_keys_in, parse_networks
from .services import hash_key

log = logging.getLogger(__name__)

TOKEN_SHAPE = re.compile(r"xr-([0-9a-f]{8})-[A-Za-z0-9_-]{16,128}")
RECHECK_CONNECTED = 300.0  # safety net; edits reach every process at once through the bus
RECHECK_DISCONNECTED = 5.0  # deaf to the bus: an edit elsewhere would go unnoticed
NEGATIVE_TTL = 10.0  # an unknown token is not looked up again for this long
MAX_KNOWN = 100_000  # keys found in the database (active or refused), least recently used evicted first
MAX_UNKNOWN = 20_000
MAX_WAITING = 1_000  # distinct lookups queued at once; beyond, 503 rather than an unbounded queue
LOOKUP_WAIT = 2.0  # seconds a request waits for the database before it is treated as down
DOWN_PAUSE = 1.0  # after a failed lookup, no lookups for this long: cached keys serve, others get 503
RETRY_AFTER = "5"


class _LookupsFull(Exception):
    """MAX_WAITING distinct lookups are queued already (typically a storm of unknown keys)."""


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the request path knows of an active credential; `scopes` says what it may do (models.SCOPES).

    kind: "key" (id: the ApiKey), "oauth" (id: the OAuth access token; name: its application) or "jwt"
    (an external identity provider's token; id: its user). OAuth and JWT credentials always have an
    organisation, whose policy bounds them as it bounds keys made in it."""

    id: int
    prefix: str
    name: str
    user_id: int
    organisation_id: int | None
    allowed_models: tuple
    residency: str
    expires_at: float | None
    scopes: frozenset = frozenset(DEFAULT_SCOPES)
    kind: str = "key"
    networks: tuple = ()  # the IP allow-list, parsed once here (ipaddress networks); empty: any address
    organisation_networks: tuple = ()  # its organisation's, the same way: both must allow an address
    limits: Limits | None = None  # the key's own (apps.limits); None: none set
    organisation_limits: Limits | None = None
    limit_id: int = 0  # whose limits and budget counters it uses: the first key of its rotation line (or its id)
    model_limits: tuple = ()  # the key's limits on given models, ((model id, Limits), ...); a tuple: KeyInfo hashes
    # The personal-data policies of the key and its organisation (apps.common.personal_data); empty: none,
    # and the request path skips the guardrail pipeline on this one check.
    policies: tuple = ()

    def allows(self, model: str) -> bool:
        return not self.allowed_models or any(fnmatch.fnmatchcase(model, p) for p in self.allowed_models)

    def address_refusal(self, address) -> str | None:
        """Why the credential may not be used from `address` (apps.common.client_address; None: unknown), in
        words for the error; None: it may."""
        for networks, whose in ((self.networks, "its IP allow-list"),
                                (self.organisation_networks, "its organisation's IP allow-list")):
            if networks and (address is None or not any(address in n for n in networks)):
                return (f"This {'API key' if self.kind == 'key' else 'credential'} may not be used from "
                        f"{address or 'an unknown address'} (outside {whose}).")
        return None

    @property
    def cache_scope(self) -> str:
        """Whose answers may be shared: the organisation, or the key before organisations exist."""
        return f"org:{self.organisation_id}" if self.organisation_id else f"key:{self.id}"


@dataclass(slots=True)
class CacheEntry:
    info: KeyInfo | None  # None: the key exists but is refused (revoked, expired, user or organisation inactive)
    ref: tuple  # (kind, id): what a bus event names to drop it
    user_id: int
    organisation_ids: tuple
    checked: float  # monotonic time of the last successful database check


_known: "OrderedDict[str, CacheEntry]" = OrderedDict()  # by SHA-256 of the token
_by_ref: dict[tuple, str] = {}
_unknown: "OrderedDict[str, float]" = OrderedDict()  # SHA-256 → monotonic expiry
_inflight: dict[str, asyncio.Future] = {}
_epoch = 0.0  # entries checked before this are re-checked (set when the bus reconnects)
_down_until = 0.0  # monotonic time before which the database is taken to be down
_generation = 0  # bumped by every invalidation: a lookup that raced one is not cached
_executor: ThreadPoolExecutor | None = None
_queued = 0
_queued_lock = threading.Lock()
# The caches are read on the event loop and invalidated from wherever a service publishes (Django's
# sync threads in this same process, too): every touch of _known, _by_ref, _unknown holds this.
_cache_lock = threading.Lock()


def _invalidate(event: dict) -> None:
    with _cache_lock:
        _invalidate_locked(event)


def _invalidate_locked(event: dict) -> None:
    global _epoch, _generation
    _generation += 1
    if event.get("resync"):
        # Events may have been missed: re-check everything, but keep entries to serve if the database is down.
        _epoch = time.monotonic()
        _unknown.clear()
        return
    key_ids, token_ids = event.get("key_ids"), event.get("oauth_token_ids")
    user_id, org_id = event.get("user_id"), event.get("organisation_id")
    if not (key_ids or token_ids or user_id or org_id):
        _known.clear(), _by_ref.clear(), _unknown.clear()
        return
    for ref in [("key", i) for i in key_ids or ()] + [("oauth", i) for i in token_ids or ()]:
        hashed = _by_ref.pop(ref, None)
        if hashed is not None:
            _known.pop(hashed, None)
    if user_id or org_id:
        for hashed, entry in list(_known.items()):
            if entry.user_id == user_id or (org_id and org_id in entry.organisation_ids):
                del _known[hashed]
                _by_ref.pop(entry.ref, None)


bus.subscribe("keys", _invalidate)


def _load(prefix: str, hashed: str) -> CacheEntry | None:
    role = Membership.objects.filter(user_id=OuterRef("user_id"), organisation_id=OuterRef("organisation_id"))
    row = (ApiKey.objects.select_related("user__organisation", "organisation")
           .annotate(member_role=Subquery(role.values("role")[:1])).filter(prefix=prefix).first())
    if row is None or not hmac.compare_digest(row.hashed_key, hashed):
        return None
    organisations = [o for o in (row.organisation, row.user.organisation) if o is not None]
    # Removing a member, or making them a billing viewer, refuses their keys there (accounts.services announces it).
    belongs = holds_keys_in(row.organisation_id, row.member_role, row.user.organisation_id)
    active = row.is_active() and row.user.is_active and all(o.is_active for o in organisations) and belongs
    info = KeyInfo(
        id=row.id,
        prefix=row.prefix,
        name=row.name,
        user_id=row.user_id,
        organisation_id=row.organisation_id,
        allowed_models=tuple(row.allowed_models or ()),
        residency=row.residency,
        expires_at=row.expires_at.timestamp() if row.expires_at else None,
        scopes=frozenset(row.scopes or ()),
        networks=parse_networks(row.allowed_ips or []),
        organisation_networks=parse_networks(row.organisation.allowed_ips or []) if row.organisation else (),
        limits=Limits.of(row),
        organisation_limits=Limits.of(row.organisation) if row.organisation else None,
        limit_id=row.lineage or row.id,
        model_limits=tuple(parse_model_limits(row.model_limits).items()),
        policies=policies_of(row, row.organisation),
    ) if active else None
    return CacheEntry(info, ("key", row.id), row.user_id, tuple(o.id for o in organisations), time.monotonic())


def key_info_by_prefix(prefix: str) -> tuple[ApiKey | None, KeyInfo | None]:
    """For operators' tools (the rule tester): a key's row, and what the request path would know of it
    (None: the key would be refused — revoked, expired, or its owner or organisation inactive)."""
    row = ApiKey.objects.filter(prefix=prefix).first()
    if row is None:
        return None, None
    return row, _valid(_load(row.prefix, row.hashed_key).info)


def _load_key(match: re.Match, hashed: str) -> CacheEntry | None:
    return _load(match.group(1), hashed)


def _load_in_worker(load, argument, hashed: str) -> CacheEntry | None:
    global _queued
    try:
        connections["default"].close_if_unusable_or_obsolete()
        return load(argument, hashed)
    finally:
        with _queued_lock:
            _queued -= 1
            idle = _queued == 0
        if idle:  # a storm keeps its one connection; a quiet process holds none
            connections.close_all()


def _valid(info: KeyInfo | None) -> KeyInfo | None:
    if info is not None and info.expires_at is not None and info.expires_at <= time.time():
        return None
    return info


def key_info_for(plaintext: str) -> KeyInfo | None:
    """Synchronous, uncached lookup in the caller's thread (DRF authentication)."""
    match = TOKEN_SHAPE.fullmatch(plaintext)
    if match is None:
        return None
    entry = _load(match.group(1), hash_key(plaintext))
    return _valid(entry.info) if entry else None


async def akey_info_for(plaintext: str) -> KeyInfo | None:
    """The KeyInfo for a presented key, or None when it is unknown, revoked or expired.

    Raises ApiError(503) when the key must be looked up and the database cannot answer."""
    # alookup, one call shorter: this runs on every request (hash_key inlined, too)
    return await _cached(sha256(plaintext.encode()).hexdigest(), _load_key, plaintext, TOKEN_SHAPE)


async def akey_info_stored(prefix: str, hashed: str) -> KeyInfo | None:
    """akey_info_for for a key known by its stored prefix and hash, not its plaintext: the
    playground's session-authenticated sockets, which bill a key the person picked by id."""
    return await _cached(hashed, _load, argument=prefix)


async def alookup(plaintext: str, shape: re.Pattern, load, verify=None) -> KeyInfo | None:
    """The cached KeyInfo for a bearer credential, or None when it is unknown or refused.

    On a miss, a credential that fits `shape` is looked up by `load(match, sha256 hex)` → CacheEntry | None,
    on the lookup thread (it may query the database; ApiError it raises reaches the caller uncached).
    `verify`, if given, is awaited first on the event loop (a check that needs no database, such as a
    JWT's signature): what it returns is handed to `load` instead of the match, and None refuses.
    Raises ApiError(503) when it must be looked up and the database cannot answer."""
    # hash_key, inlined: this runs on every request
    return await _cached(sha256(plaintext.encode()).hexdigest(), load, plaintext, shape, verify)


async def _cached(hashed: str, load, plaintext: str = "", shape: re.Pattern | None = None, verify=None,
                  argument=None) -> KeyInfo | None:
    """The cache in front of `load(argument, hashed)`; without `argument`, it is made from the plaintext
    (alookup)."""
    global _down_until
    now = time.monotonic()
    with _cache_lock:
        entry = _known.get(hashed)
        if entry is not None:
            fresh = entry.checked >= _epoch and now - entry.checked < (
                RECHECK_CONNECTED if bus.connected() else RECHECK_DISCONNECTED)
            if fresh:
                _known.move_to_end(hashed)
        else:
            until = _unknown.get(hashed)
    if entry is not None:
        if fresh:
            return _valid(entry.info)
    elif until is not None and until > now:
        return None
    if argument is None:
        argument = shape.fullmatch(plaintext)
        if argument is None:
            return None
        if verify is not None:
            argument = await verify(plaintext)
            if argument is None:  # remembered as unknown: the same bad token is not checked again for NEGATIVE_TTL
                _remember(hashed, None)
                return None
    generation = _generation
    try:
        if now < _down_until:
            raise DatabaseFailure("the key store failed a moment ago")
        found = await asyncio.wait_for(_lookup(hashed, load, argument), LOOKUP_WAIT)
    except (DatabaseFailure, TimeoutError):
        if _down_until <= now:
            _down_until = time.monotonic() + DOWN_PAUSE
            log.warning("key store unreachable; cached keys serve for up to XROUTER_STALE_MAX, others get 503")
        if entry is not None and now - entry.checked <= settings.XROUTER["STALE_MAX"]:
            return _valid(entry.info)
        raise ApiError(503, "API keys cannot be checked right now (the key store is unreachable); retry shortly.",
                       code="service_unavailable", headers={"retry-after": RETRY_AFTER}) from None
    except _LookupsFull:
        # A storm of unknown keys must not refuse the known ones: a cached key due for a re-check serves on.
        if entry is not None and now - entry.checked <= settings.XROUTER["STALE_MAX"]:
            return _valid(entry.info)
        raise ApiError(503, "Too many API key lookups at once; retry shortly.", code="service_unavailable",
                       headers={"retry-after": "1"}) from None
    _remember(hashed, found, generation)
    return _valid(found.info) if found else None


def _remember(hashed: str, found: CacheEntry | None, generation: int | None = None) -> None:
    """Cache a lookup's result, unless an invalidation came since it started (`generation`)."""
    with _cache_lock:
        if generation is None or generation == _generation:
            _remember_locked(hashed, found)


def _remember_locked(hashed: str, found: CacheEntry | None) -> None:
    if found is None:
        _known.pop(hashed, None)
        _unknown[hashed] = time.monotonic() + NEGATIVE_TTL
        _unknown.move_to_end(hashed)
        while len(_unknown) > MAX_UNKNOWN:
            _unknown.popitem(last=False)
        return
    _unknown.pop(hashed, None)
    _known[hashed] = found
    _known.move_to_end(hashed)
    _by_ref[found.ref] = hashed
    while len(_known) > MAX_KNOWN:
        old_hash, old = _known.popitem(last=False)
        if _by_ref.get(old.ref) == old_hash:
            del _by_ref[old.ref]


def _lookup_done(hashed: str, future: asyncio.Future) -> None:
    _inflight.pop(hashed, None)
    if not future.cancelled():
        future.exception()  # retrieved: a waiter that timed out must not leave it "never retrieved"


async def _lookup(hashed: str, load, argument) -> CacheEntry | None:
    """One lookup on the key worker thread; concurrent misses for one token share it."""
    global _executor, _queued
    future = _inflight.get(hashed)
    if future is None:
        if len(_inflight) >= MAX_WAITING:
            raise _LookupsFull()
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="xrouter-keys")
        with _queued_lock:
            _queued += 1
        future = asyncio.get_running_loop().run_in_executor(_executor, _load_in_worker, load, argument, hashed)
        _inflight[hashed] = future
        future.add_done_callback(lambda f: _lookup_done(hashed, f))
    return await asyncio.shield(future)


def keys_visible_to(user):
    """The keys a person may list and revoke: owners and admins every key of their organisations (a
    removed member's too), developers their own there, billing viewers none; and their keys of no organisation."""
    roles = Membership.objects.filter(user=user).values_list("organisation_id", "role")
    managed = [org for org, role in roles if role in Membership.MANAGERS]
    developing = [org for org, role in roles if role == Membership.Role.DEVELOPER]
    role = Membership.objects.filter(user_id=OuterRef("user_id"), organisation_id=OuterRef("organisation_id"))
    return (ApiKey.objects.filter(Q(organisation_id__in=managed) | Q(user=user, organisation_id__in=developing)
                                  | Q(user=user, organisation__isnull=True))
            .annotate(member_role=Subquery(role.values("role")[:1]))  # held_by_member() reads it
            .select_related("user", "organisation").order_by("-created_at"))


PLAYGROUND_CHOICES = 100  # the newest keys offered in the playground's list


def playground_keys(user, pk: int | None = None) -> list[ApiKey]:
    """The keys a person may bill from the portal's playground: their own, active, able to chat
    (pk: just that one, if it is such a key)."""
    rows = ApiKey.objects.filter(pk=pk) if pk is not None else ApiKey.objects.all()
    rows = (rows.filter(user=user, revoked_at__isnull=True)
            .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=timezone.now()))
            .select_related("organisation").order_by("-created_at")[:PLAYGROUND_CHOICES])
    return [key for key in rows if "chat" in key.scopes]  # in Python: SQLite has no JSON containment
