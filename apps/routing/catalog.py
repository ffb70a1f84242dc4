"""The in-process snapshot of routing configuration: providers, models, aliases.

Built with a handful of queries, kept in memory, and rebuilt when the bus announces a
config edit (from any process) or when its TTL runs out, so steady-state routing makes
no database query.
"""

import asyncio
import time
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings

from apps.common import bus
from apps.common.db import run_sync
from apps.providers.adapters.base import ProviderConfig
from apps.providers.adapters.registry import adapter_for
from apps.providers.selectors import enabled_models, provider_configs

from .models import Alias, RoutingRule
from .rules import Rule


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

    @property
    def public_id(self) -> str:
        return f"{self.provider}/{self.name}"


@dataclass
class Catalog:
    providers: dict[str, ProviderConfig] = field(default_factory=dict)
    models: dict[str, ModelEntry] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
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
        )
        models[entry.public_id] = entry
    aliases = dict(Alias.objects.filter(enabled=True).values_list("name", "target"))
    rules = tuple(Rule.from_model(r) for r in RoutingRule.objects.filter(enabled=True).order_by("priority", "name"))
    return Catalog(providers=providers, models=models, aliases=aliases, rules=rules, loaded_at=time.monotonic())


class _Holder:
    def __init__(self):
        self.catalog: Catalog | None = None
        self.stale = True
        self.lock: asyncio.Lock | None = None

    def invalidate(self, _event=None):
        self.stale = True


_holder = _Holder()
bus.subscribe("config", _holder.invalidate)


async def get_catalog() -> Catalog:
    """The current snapshot; reloads (once, whoever asks first) when it is stale."""
    h = _holder
    catalog = h.catalog
    if catalog is not None and not h.stale and time.monotonic() - catalog.loaded_at < settings.XROUTER["CONFIG_TTL"]:
        return catalog
    if h.lock is None:
        h.lock = asyncio.Lock()
    if catalog is not None and h.lock.locked():
        return catalog  # someone is already reloading; keep serving the previous snapshot
    async with h.lock:
        if h.catalog is catalog:
            h.stale = False  # edits arriving during the load mark it stale again
            h.catalog = await run_sync(load_catalog)()
        return h.catalog


def catalog_age() -> float | None:
    """Seconds since the catalog in use was loaded; None before the first load (read by /readyz)."""
    catalog = _holder.catalog
    return None if catalog is None else time.monotonic() - catalog.loaded_at


def invalidate_catalog() -> None:
    _holder.invalidate()
