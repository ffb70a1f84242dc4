"""Writes and network calls on providers."""

import asyncio
import datetime
import logging
import time

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.common import bus

from .adapters import adapter_class
from .adapters.base import ProviderError
from .models import HealthCheck, Provider
from .selectors import provider_configs

log = logging.getLogger(__name__)
HISTORY = datetime.timedelta(days=settings.XROUTER["HEALTH_HISTORY_DAYS"])


def config_announce() -> None:
    """Every gateway process reloads its catalog once the current transaction commits (bus "config").

    Called by each service and admin path that writes providers, credentials, models, aliases or
    rules (README, "Configuration changes"); a write that skips it reaches the gateways only at
    XROUTER_CONFIG_TTL."""
    transaction.on_commit(lambda: bus.publish("config"))


async def _check(adapter, name: str) -> tuple:
    """(ok, latency_ms, detail, balance): the free check, then the balance of a working provider."""
    started = time.monotonic()
    try:
        await asyncio.wait_for(adapter.health_check(), 30)
    except ProviderError as exc:
        return False, (time.monotonic() - started) * 1000, exc.message[:500], None
    except TimeoutError:
        return False, None, "timed out", None
    latency = (time.monotonic() - started) * 1000
    try:
        balance = await asyncio.wait_for(adapter.balance(), 30)
    except (ProviderError, TimeoutError) as exc:  # the provider works; only its balance is unknown
        log.warning("balance of %s unavailable: %s", name, type(exc).__name__)
        balance = None
    return True, latency, "", balance


def provider_check_health(provider: Provider) -> HealthCheck:
    """Call the adapter's free health check (token refresh or model list) and record the result."""
    config = provider_configs().get(provider.name)
    if config is None:
        return HealthCheck.objects.create(provider=provider, ok=False, detail="disabled")

    async def check():
        adapter = adapter_class(config.kind)(config)
        try:
            return await _check(adapter, provider.name)
        finally:
            await adapter.close()

    ok, latency, detail, balance = async_to_sync(check)()
    # Every gateway process routes around a provider that fails its active check, and reports its
    # health and prepaid balance at /metrics (apps/routing/state.py).
    bus.publish("health", {"provider": provider.name, "ok": ok, **({"balance": balance} if balance else {})})
    # The history the console shows, kept XROUTER_HEALTH_HISTORY_DAYS (a check a minute per provider).
    HealthCheck.objects.filter(provider=provider, checked_at__lt=timezone.now() - HISTORY).delete()
    return HealthCheck.objects.create(provider=provider, ok=ok, latency_ms=latency, detail=detail, balance=balance or None)
