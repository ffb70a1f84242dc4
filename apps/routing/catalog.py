"""The in-process snapshot of routing configuration: providers, models, aliases.

Built with a handful of queries, kept in memory, and rebuilt when the bus announces a
config edit (from any process) or when its TTL runs out, so steady-state routing makes
no database query.
"""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from apps.common import bus
from apps.common.db import run_sync
from apps.common.errors import ApiError
from apps.common.rates import Limits
from apps.providers.adapters.base import ProviderConfig
from apps.providers.adapters.registry import adapter_for
from apps.providers.selectors import enabled_models, provider_configs

from . import state
from .models import Alias, ManualBreaker, RoutingRule
from .rules import Rule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ModelEntry:
    provider: str
    name: str
    kind: str
    input_price: Decimal
    output_price: Decimal
    cached_input_price: Decimal
    context_window: int | None
    jurisdiction: str
    created: int
    limits: Limits | None = None  # a cap across all tenants (apps.limits)
    max_output_tokens: int | None = None
    chars_per_token: float | None = None  # learned from usage rows (token_ratio.py); None: the default estimate

    @property
    def public_id(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass
class Catalog:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    forced: dict = field(default_factory=dict)  # breakers set by hand: target or provider → (open, until epoch)
    loaded_at: float = 0.0
    _adapters: dict = field(default_factory=dict)

    def adapter(self, provider: str):
        """The live adapter of a provider, looked up once per snapshot (the hot path asks often)."""
        adapter = self._adapters.get(provider)
        if adapter is None:
            adapter = self._adapters[provider] = adapter_for(self.providers[provider])
        return adapter


def load_catalog() -> Catalog:
    """Read the whole configuration (synchronous: call it in a thread)."""
    providers = provider_configs()
    models = {}
    for m in enabled_models():
        if m.provider.name not in providers:
            continue
        entry = ModelEntry(
            provider=m.provider.name,
            name=m.name,
            kind=m.kind,
            input_price=m.input_price,
            output_price=m.output_price,
            cached_input_price=m.cached_input_price if m.cached_input_price is not None else Decimal("0"),
            context_window=m.context_window,
            jurisdiction=m.effective_jurisdiction,
            created=int(m.provider.created_at.timestamp()),
            limits=Limits.of(m),
            max_output_tokens=m.max_output_tokens,
            chars_per_token=m.chars_per_token,
        )
        models[entry.public_id] = entry
    aliases = dict(Alias.objects.filter(enabled=True).values_list("name", "target"))
    rules = tuple(Rule.from_model(r) for r in RoutingRule.objects.filter(enabled=True).order_by("priority", "name"))
    forced = {b.target: (b.open, b.until.timestamp() if b.until else None) for b in ManualBreaker.objects.all()}
    return Catalog(providers=providers, models=models, aliases=aliases, rules=rules, forced=forced,
                   loaded_at=time.monotonic())


RETRY_FIRST = 1.0  # seconds before the first retry of a failed reload; doubles up to RETRY_MAX
RETRY_MAX = 30.0
LOAD_WAIT = 10.0  # longest a request waits for a load in flight (a database that accepted the connection may never answer)


class CatalogHolder:
    """The process's snapshot, and what happens when it cannot be refreshed.

    A failed reload (the database is down or unreachable) keeps the last good snapshot serving
    while it is younger than XROUTER_STALE_MAX, retries after a pause that doubles with each
    failure (one attempt in flight, never one per request), and logs once per outage. With no
    usable snapshot the answer is a 503 with Retry-After: a client retries, nothing is a 500.
    A load that hangs holds nobody longer than LOAD_WAIT and is never started twice: its thread
    is the only one, and whatever it finally returns is used.
    """

    def __init__(self, loader, clock=time.monotonic):
        self.loader = loader
        self.clock = clock
        self.catalog: Catalog | None = None
        self.stale = True
        self.loading: asyncio.Future | None = None
        self.load_wait = LOAD_WAIT
        self.failures = 0
        self.retry_at = 0.0
        self.last_error: str | None = None

    def invalidate(self, _event=None):
        self.stale = True

    async def get(self) -> Catalog:
        """The current snapshot; reloads (once, whoever asks first) when it is stale."""
        catalog = self.catalog
        now = self.clock()
        if catalog is not None and not self.stale and now - catalog.loaded_at < settings.XROUTER["CONFIG_TTL"]:
            return catalog
        if now < self.retry_at:
            return self._fallback(catalog, now)  # pausing after a failure
        loading = self.loading
        if loading is None or loading.get_loop() is not asyncio.get_running_loop():  # (a test's closed loop)
            loading = self.loading = asyncio.ensure_future(self._load())
        elif catalog is not None and now - catalog.loaded_at <= settings.XROUTER["STALE_MAX"]:
            return catalog  # someone is already reloading: the previous snapshot, while it may serve
        # Otherwise wait for the load in flight, as the request that started it does: a snapshot past
        # STALE_MAX on a worker nobody asked for a while (no reload failed) is no reason for a 503.
        try:
            await asyncio.wait_for(asyncio.shield(loading), self.load_wait)
        except TimeoutError:
            pass  # the load goes on (its result will be used); this request is answered now
        if self.catalog is not catalog:
            return self.catalog
        return self._fallback(catalog, self.clock())

    async def _load(self) -> None:
        self.stale = False  # edits arriving during the load mark it stale again
        try:
            catalog = await run_sync(self.loader)()
        except Exception as exc:
            self.stale = True
            self._failed(exc)
            return
        finally:
            self.loading = None
        if self.last_error is not None:
            log.warning("configuration reloaded: the catalog recovered after %d failed attempts", self.failures)
        self.failures, self.retry_at, self.last_error = 0, 0.0, None
        self.catalog = catalog
        state.set_forced(catalog.forced)

    def _failed(self, exc: Exception) -> None:
        detail = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
        if self.last_error is None:  # once per outage; the recovery is logged too
            age = f"{self.clock() - self.catalog.loaded_at:.0f} s old" if self.catalog else "none loaded yet"
            log.error("configuration reload failed (%s); serving the last good catalog (%s) for up to %.0f s, "
                      "retrying with backoff", detail, age, settings.XROUTER["STALE_MAX"])
        self.failures += 1
        self.last_error = detail
        self.retry_at = self.clock() + min(RETRY_FIRST * 2 ** (self.failures - 1), RETRY_MAX)

    def _fallback(self, catalog: Catalog | None, now: float) -> Catalog:
        if catalog is not None and now - catalog.loaded_at <= settings.XROUTER["STALE_MAX"]:
            return catalog
        retry = max(1, int(self.retry_at - now + 0.999))
        raise ApiError(503, "The gateway's configuration is temporarily unavailable; retry shortly.",
                       code="config_unavailable", headers={"retry-after": str(retry)})

    def status(self) -> dict:
        """For /readyz: `stale` means the last reload failed (the snapshot is served past its TTL);
        `usable` is whether requests are being served from it."""
        catalog = self.catalog
        age = self.clock() - catalog.loaded_at if catalog is not None else 0.0
        # Served: within STALE_MAX, or with no failure and no load in flight (the next request loads);
        # a load that hangs past STALE_MAX means 503s, so not usable.
        usable = catalog is not None and (age <= settings.XROUTER["STALE_MAX"]
                                          or (self.last_error is None and self.loading is None))
        return {"loaded": catalog is not None, "age_s": round(age, 3), "stale": self.last_error is not None,
                "last_error": self.last_error, "usable": usable}


_holder = CatalogHolder(lambda: load_catalog())
bus.subscribe("config", _holder.invalidate)


async def get_catalog() -> Catalog:
    """The current snapshot (see CatalogHolder)."""
    return await _holder.get()


def catalog_status() -> dict:
    """loaded, age_s, stale, last_error, usable: this process's catalog, for /readyz and metrics."""
    return _holder.status()


def invalidate_catalog() -> None:
    _holder.invalidate()
