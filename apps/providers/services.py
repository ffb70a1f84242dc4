"""Writes and network calls on providers."""

import asyncio
import time

from asgiref.sync import async_to_sync
from django.db import transaction

from apps.common import bus

from .adapters import adapter_class
from .adapters.base import ProviderError
from .models import HealthCheck, Provider
from .selectors import provider_configs


def config_announce() -> None:
    """Every gateway process reloads its catalog once the current transaction commits (bus "config").

    Called by each service and admin path that writes providers, credentials, models, aliases or
    rules (README, "Configuration changes"); a write that skips it reaches the gateways only at
    XROUTER_CONFIG_TTL."""
    transaction.on_commit(lambda: bus.publish("config"))


def provider_check_health(provider: Provider) -> HealthCheck:
    """Call the adapter's free health check (token refresh or model list) and record the result."""
    config = provider_configs().get(provider.name)
    if config is None:
        return HealthCheck.objects.create(provider=provider, ok=False, detail="disabled")

    async def check():
        adapter = adapter_class(config.kind)(config)
        started = time.monotonic()
        try:
            await asyncio.wait_for(adapter.health_check(), 30)
            return True, (time.monotonic() - started) * 1000, ""
        except ProviderError as exc:
            return False, (time.monotonic() - started) * 1000, exc.message[:500]
        except TimeoutError:
            return False, None, "timed out"
        finally:
            await adapter.close()

    ok, latency, detail = async_to_sync(check)()
    # Every gateway process routes around a provider that fails its active check.
    bus.publish("health", {"provider": provider.name, "ok": ok})
    return HealthCheck.objects.create(provider=provider, ok=ok, latency_ms=latency, detail=detail)
