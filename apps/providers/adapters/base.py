"""The provider adapter interface.

An adapter translates one OpenAI-shaped request into one provider call and the answer back.
It makes exactly ONE attempt (plus one token refresh on a 401, as the official SDKs do) and
raises ProviderError: retries, fallbacks and deadlines belong to the router, so they never
multiply. The base class owns what every provider needs: the pooled aiohttp session, TLS,
timeouts and the per-credential concurrency cap (shared by every process through a Redis lease
when REDIS_URL is set; per process otherwise, or while Redis cannot answer).

Requests reach adapters as plain dicts of the OpenAI chat/embeddings schema, already
validated by the gateway; answers leave as OpenAI-shaped dicts. Translation only lives here.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass, field

import aiohttp
import orjson
from django.conf import settings

from apps.common import leases
from apps.common import redis as shared_redis
from apps.common.rates import parse_rate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CredentialConfig:
    name: str
    secrets: dict
    max_concurrency: int = 0
    token_owner: str = ""  # "user" | "service_account": whose token a YandexGPT iam_token is
    requests_rate: str = ""  # calls per period for every process together ("10/s"; apps.limits paces them)


@dataclass(frozen=True)
class ProviderConfig:
    """Everything an adapter needs, decrypted and detached from the ORM."""

    name: str
    kind: str
    base_url: str
    auth_url: str = ""
    credentials: tuple[CredentialConfig, ...] = ()
    extra_headers: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    ca_bundle: str = ""
    verify_tls: bool = True
    client_cert: str = ""
    client_key: str = ""
    timeout: float | None = None
    jurisdiction: str = "RU"
    model_options: dict = field(default_factory=dict)  # model name → ProviderModel.options (validated)
    allowed_hosts: tuple[str, ...] = ()  # where its connections may go (apps/providers/destinations.py)

    @property
    def secrets(self) -> dict:
        return self.credentials[0].secrets if self.credentials else {}


@dataclass(slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    estimated: bool = False

    def to_openai(self) -> dict:
        out = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }
        if self.cached_tokens:
            out["prompt_tokens_details"] = {"cached_tokens": self.cached_tokens}
        if self.reasoning_tokens:
            out["completion_tokens_details"] = {"reasoning_tokens": self.reasoning_tokens}
        return out


@dataclass(slots=True)
class ChatResult:
    """A non-streamed answer: OpenAI `choices` (message + finish_reason per index) and usage."""

    choices: list[dict]
    usage: Usage
    provider_request_id: str = ""
    upstream_model: str = ""


@dataclass(slots=True)
class StreamChunk:
    """One step of a stream. Any field may be empty: a chunk can carry only usage or an id."""

    delta: dict | None = None  # OpenAI delta: role, content, tool_calls, reasoning_content
    finish_reason: str | None = None
    index: int = 0
    usage: Usage | None = None
    provider_request_id: str | None = None


@dataclass(slots=True)
class EmbeddingResult:
    vectors: list[list[float]]
    usage: Usage
    provider_request_id: str = ""


class ProviderError(Exception):
    """A failed upstream call, already translated.

    status: what the gateway answers (502/503/504/429, or 400 for a client error the provider
    caught). kind: a short machine name (timeout, connection, rate_limited, concurrency,
    server_error, bad_request, context_length, auth, ...); what it means for retries, fallbacks
    and circuit breakers is the router's to decide (apps/routing/failures.py), from kind and
    status alone.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        kind: str = "upstream_error",
        provider_status: int | None = None,
        retry_after: float | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.status = status
        self.kind = kind
        self.provider_status = provider_status
        self.retry_after = retry_after


class StreamRevisedError(ProviderError):
    """A cumulative stream (YandexGPT) rewrote text that was already sent to the client."""

    def __init__(self, message="the provider revised text it had already streamed"):
        super().__init__(message, status=502, kind="stream_revised")


def error_for_status(provider: str, status: int, message: str, retry_after: float | None = None) -> ProviderError:
    """Map an upstream HTTP status to the gateway's error (never leaking credentials)."""
    text = f"{provider}: {message}" if message else f"{provider}: HTTP {status}"
    if status == 429:
        return ProviderError(text, status=429, kind="rate_limited", provider_status=status, retry_after=retry_after)
    if status in (401, 403):
        # Our credential is wrong: not the client's fault, and another provider may work.
        return ProviderError(text, status=502, kind="auth", provider_status=status)
    if status == 404:
        return ProviderError(text, status=404, kind="model_not_found", provider_status=status)
    if status == 408:
        return ProviderError(text, status=504, kind="timeout", provider_status=status)
    if 400 <= status < 500:
        kind = "context_length" if _looks_like_context_error(message) else "bad_request"
        return ProviderError(text, status=400, kind=kind, provider_status=status)
    if status == 503:
        return ProviderError(text, status=503, kind="unavailable", provider_status=status)
    if status == 504:
        return ProviderError(text, status=504, kind="timeout", provider_status=status)
    return ProviderError(text, status=502, kind="server_error", provider_status=status)


def _looks_like_context_error(message: str) -> bool:
    lowered = (message or "").lower()
    return any(s in lowered for s in ("context length", "maximum context", "context window", "too many tokens", "must be no more than"))


def parse_retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


class ProviderAdapter:
    """Base for one provider kind. Subclasses implement the five members below."""

    kind = ""
    supports_n = False  # the gateway fans out n > 1 into parallel calls when False
    supports_stop = False  # the gateway cuts the answer at the stop sequence when False
    supports_images = False  # image_url content parts are refused with a 400 when False

    @classmethod
    def takes_images(cls, model: str) -> bool:
        """Whether this provider's `model` sees image parts (the models page lists it)."""
        return cls.supports_images
    supports_dimensions = False  # embeddings `dimensions` is refused with a 400 when False

    def __init__(self, config: ProviderConfig):
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        namespace = settings.XROUTER["REDIS_NAMESPACE"]
        self._slots = [_Slot(c.max_concurrency, f"{namespace}:lease:credential:{config.name}:{c.name}",
                             parse_rate(c.requests_rate) if c.requests_rate else None)
                       for c in config.credentials] or [_Slot(0)]

    # --- the interface -------------------------------------------------------------------
    async def chat(self, body: dict, model: str) -> ChatResult:
        """One non-streamed chat completion for the provider's `model`."""
        raise NotImplementedError

    def stream_chat(self, body: dict, model: str) -> AsyncIterator[StreamChunk]:
        """An async iterator of StreamChunk; the first chunk may come only after the upstream answered."""
        raise NotImplementedError

    async def embeddings(self, inputs: list[str], model: str, body: dict) -> EmbeddingResult:
        raise NotImplementedError

    async def list_models(self) -> list[dict]:
        """The provider's models as OpenAI model dicts (`id`, `owned_by`, ...)."""
        raise NotImplementedError

    async def health_check(self) -> None:
        """A call that costs nothing (token refresh, model list); raises ProviderError when unhealthy."""
        await self.list_models()

    async def balance(self) -> dict[str, float] | None:
        """What a prepaid account has left, by usage kind (tokens); None where the provider tells nothing."""
        return None

    async def count_tokens(self, body: dict, model: str) -> int | None:
        """The prompt tokens of chat request `body` as the provider's own tokenizer counts them (for
        /v1/xrouter/tokenize, never on a chat's path); None where the provider has no such endpoint."""
        return None

    # --- shared plumbing ----------------------------------------------------------------
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            from ..destinations import guarded_connector, policy

            xr = settings.XROUTER
            # Every new connection's address is checked (server-side request forgery); keep-alive reuses them.
            connector = guarded_connector(
                self.config.name, policy(self.config.kind, self.config.allowed_hosts),
                limit=xr["POOL_SIZE"],  # aiohttp's default of 100 would queue thousands of streams
                limit_per_host=0,
                ssl=self.ssl_context(),
                ttl_dns_cache=300,
                keepalive_timeout=30,
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                timeout=self.timeout(),
                json_serialize=lambda obj: orjson.dumps(obj).decode(),
                # What a response may have read ahead of its consumer (aiohttp pauses the socket at twice this):
                # a stream whose client stopped reading held ≈ 1.3 MiB here at aiohttp's 64 KiB, ≈ 0.4 MiB now.
                read_bufsize=16 * 1024,
                headers=self.config.extra_headers or None,
                auto_decompress=True,
            )
        return self._session

    def timeout(self) -> aiohttp.ClientTimeout:
        xr = settings.XROUTER
        return aiohttp.ClientTimeout(
            total=self.config.timeout or xr["TOTAL_TIMEOUT"], sock_connect=xr["CONNECT_TIMEOUT"], sock_read=xr["READ_TIMEOUT"]
        )

    def ssl_context(self) -> ssl.SSLContext | bool:
        """Default verification, plus the configured CA bundle and client certificate. Never silently off."""
        if not self.config.base_url.startswith("https") and not self.config.auth_url.startswith("https"):
            return True
        if not self.config.verify_tls:
            log.warning("TLS verification is switched off for provider %s by its configuration", self.config.name)
            return False
        ctx = ssl.create_default_context()
        if self.config.ca_bundle:
            bundle = self.config.ca_bundle.strip()
            if bundle.startswith("-----BEGIN"):
                ctx.load_verify_locations(cadata=bundle)
            else:
                ctx.load_verify_locations(cafile=bundle)
        if self.config.client_cert:
            ctx.load_cert_chain(self.config.client_cert, self.config.client_key or None)
        return ctx

    def lease_slot(self) -> tuple[str, int] | None:
        """The lease set and limit of the credential the next call would take (the least busy), if it
        is capped: the admission call (apps/limits) takes a place in it for the request."""
        slots = self._slots
        slot = min(slots, key=lambda s: s.in_flight - (s.limit or 1_000_000))
        return (slot.key, slot.limit) if slot.limit else None

    def slot(self) -> _SlotGuard:
        """Hold a place under the credential's concurrency cap, waiting a bounded time for one."""
        return _SlotGuard(self)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()


def connection_error(provider: str, exc: Exception) -> ProviderError:
    from ..destinations import RefusedDestination

    refused = getattr(exc, "os_error", None)
    if isinstance(refused, RefusedDestination):  # our own refusal (destinations.py): say so, not "failed"
        return ProviderError(f"{provider}: {refused.public}", status=502, kind="connection")
    return ProviderError(f"{provider}: connection failed ({type(exc).__name__})", status=502, kind="connection")


class LocalWait:
    """Set around one attempt by the router: `waiting` stays True when the attempt was cancelled
    (its time ran out) while waiting for a local concurrency slot, so that timeout is ours —
    class `capacity` — and not the provider's."""

    __slots__ = ("waiting",)

    def __init__(self) -> None:
        self.waiting = False


local_wait: ContextVar[LocalWait | None] = ContextVar("local_wait", default=None)
# The client's conversation id for providers that key a prompt cache on it (GigaChat's
# X-Session-ID), set by the gateway for one request (already scoped to the tenant); "" when none.
session_id: ContextVar[str] = ContextVar("session_id", default="")

# The id of the attempt being sent, `<request id>.<attempt>` (our client-visible x-request-id, a dot,
# the attempt's number from 0): set by the gateway before each attempt, sent in the provider's own
# request-id header so its logs (and the emulators' ledger) join our usage rows. Empty outside /v1.
UPSTREAM_REQUEST_ID: ContextVar[str] = ContextVar("upstream_request_id", default="")


class _Slot:
    __slots__ = ("limit", "sem", "in_flight", "waiting", "key", "rate")

    def __init__(self, limit: int, key: str = "", rate=None):
        self.rate = rate  # apps.common.rates.Rate: the account's calls per period, or None
        self.limit = limit
        self.sem = asyncio.Semaphore(limit) if limit else None
        self.in_flight = 0
        self.waiting = 0  # requests of this process waiting for a shared lease
        self.key = key  # the credential's lease set in Redis


async def pace(key: str, rate, what: str, max_wait: float | None = None) -> None:
    """One call under a shared rate (a provider account's, apps.limits's sliding window for every process):
    waits for room up to `max_wait` (default XROUTER_CONCURRENCY_WAIT), then raises ProviderError
    `concurrency` (class capacity: the router falls back, no breaker counts it)."""
    from apps.limits.services import take_call  # limits sits above the adapters; only paced accounts need it

    started = time.monotonic()
    deadline = started + (settings.XROUTER["CONCURRENCY_WAIT"] if max_wait is None else max_wait)
    mark = local_wait.get()
    while True:
        wait = await take_call(key, rate)
        if not wait:
            if mark is not None:
                mark.waiting = False
            return
        if time.monotonic() + wait > deadline:
            raise ProviderError(f"{what}: its rate of {rate} calls was used up for {time.monotonic() - started:.1f}s",
                                status=429, kind="concurrency", retry_after=max(1.0, wait))
        if mark is not None:
            mark.waiting = True  # a timeout while waiting here is ours (capacity), not the provider's
        await asyncio.sleep(wait)


class _SlotGuard:
    """async with adapter.slot() as credential: ... — picks the least busy credential.

    With Redis, a credential's cap is one lease set for every process: a request takes a lease or
    waits for one, up to XROUTER_CONCURRENCY_WAIT, but at most as many of this process's requests
    wait as the cap (others give up at once); then `capacity` (the router falls back). Without
    Redis, or when it fails, the cap is this process's semaphore."""

    __slots__ = ("adapter", "slot", "credential", "lease", "granted")

    def __init__(self, adapter: ProviderAdapter):
        self.adapter = adapter
        self.lease = None
        self.granted = False  # the lease came with the request's admission (apps/limits), which gives it back

    async def __aenter__(self) -> CredentialConfig | None:
        slots = self.adapter._slots
        index = None
        for i, slot in enumerate(slots):  # a place the request's admission took comes first
            if slot.limit and (member := leases.take_granted(slot.key)) is not None:
                index, self.lease, self.granted = i, member, True
                break
        if index is None:
            index = min(range(len(slots)), key=lambda i: slots[i].in_flight - (slots[i].limit or 1_000_000))
        self.slot = slots[index]
        creds = self.adapter.config.credentials
        self.credential = creds[index] if creds else None
        if self.slot.rate is not None:
            await pace(f"{self.slot.key}:rate", self.slot.rate, self.adapter.config.name)
        if self.slot.limit and not self.granted and shared_redis.client() is not None:
            try:
                await self._shared()
            except ProviderError:
                raise
            except Exception as exc:  # Redis cannot answer: this process's cap, as without Redis
                log.warning("credential lease unavailable (%s); capping %s per process", type(exc).__name__,
                            self.adapter.config.name)
        if self.lease is None and self.slot.sem is not None:
            started = time.monotonic()
            mark = local_wait.get() if self.slot.sem.locked() else None
            if mark is not None:
                mark.waiting = True  # left set if the caller's timeout cancels us during the wait
            try:
                await asyncio.wait_for(self.slot.sem.acquire(), settings.XROUTER["CONCURRENCY_WAIT"])
            except TimeoutError:
                raise self._busy(time.monotonic() - started) from None
            if mark is not None:
                mark.waiting = False
        self.slot.in_flight += 1
        return self.credential

    async def _shared(self) -> None:
        slot, client, member = self.slot, shared_redis.client(), os.urandom(8).hex()
        if await leases.acquire(client, slot.key, member, slot.limit):
            self.lease = member
            return
        if slot.waiting >= slot.limit:
            raise self._busy(0)
        started, delay = time.monotonic(), 0.02
        deadline = started + settings.XROUTER["CONCURRENCY_WAIT"]
        mark = local_wait.get()
        if mark is not None:
            mark.waiting = True
        slot.waiting += 1
        try:
            while time.monotonic() + delay < deadline:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.25)  # polls stay few: at most `limit` waiters per process
                if await leases.acquire(client, slot.key, member, slot.limit):
                    self.lease = member
                    break
            else:
                raise self._busy(time.monotonic() - started)
        finally:
            slot.waiting -= 1
        if mark is not None:
            mark.waiting = False

    def _busy(self, waited: float) -> ProviderError:
        return ProviderError(
            f"{self.adapter.config.name}: all {self.slot.limit} concurrent upstream slots stayed busy for {waited:.0f}s",
            status=429,
            kind="concurrency",
            retry_after=1,  # a place comes back as soon as a call ends: the client may try again shortly
        )

    async def __aexit__(self, *exc):
        self.slot.in_flight -= 1
        if self.granted and exc[0] is None:
            pass  # given back by the request's settle, in the limiter's next batch (no round trip here)
        elif self.lease is not None:
            await leases.release(self.slot.key, self.lease)
        elif self.slot.sem is not None:
            self.slot.sem.release()
        return False
