"""Active health checks: free calls only (token refresh, model list), results stored and broadcast."""

import httpx
import pytest

from apps.common import bus
from apps.providers.models import Credential, HealthCheck, Provider
from apps.providers.tasks import check_provider_health_task


@pytest.fixture(autouse=True)
def token_cache():
    """These checks run through async_to_sync (a loop of their own, as in a Celery worker), so
    they use the token cache's own per-loop Redis client, not the test-loop one of conftest."""
    from apps.providers.adapters.tokens import TOKENS

    TOKENS.clear()
    yield TOKENS
    TOKENS.clear()


@pytest.fixture
def gigachat_provider(db, emulators):
    provider = Provider.objects.create(name="giga-health", kind="gigachat", base_url=emulators["gigachat"].base_url,
                                       auth_url=emulators["gigachat"].auth_url)
    Credential.objects.create(provider=provider, secrets={"authorization_key": "ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ="})
    return provider


def ledger_paths(emulators, name):
    entries = httpx.get(f"{emulators[name].control_url}/ledger", timeout=5).json()["entries"]
    return [e["path"] for e in entries]


def test_a_healthy_provider_is_checked_without_a_paid_completion(gigachat_provider, emulators):
    httpx.delete(f"{emulators['gigachat'].control_url}/ledger", timeout=5)
    heard = []
    bus.subscribe("health", heard.append)
    assert check_provider_health_task.apply(args=[gigachat_provider.id]).get() is True
    check = HealthCheck.objects.get(provider=gigachat_provider)
    assert check.ok and check.latency_ms is not None
    assert not any("chat/completions" in p or "embeddings" in p for p in ledger_paths(emulators, "gigachat"))
    # The balance (GET /balance, free) rides along: the emulator's is the SDK fixture's.
    assert {"provider": "giga-health", "ok": True, "balance": {"GigaChat": 900000.0, "embeddings": 9999967.0}} in heard
    assert not any("balance" not in p and "models" not in p and "oauth" not in p
                   for p in ledger_paths(emulators, "gigachat")), ledger_paths(emulators, "gigachat")


def test_a_failing_provider_is_recorded_and_announced(gigachat_provider, emulators):
    heard = []
    bus.subscribe("health", heard.append)
    httpx.post(f"{emulators['gigachat'].control_url}/faults", json={"status": 503, "share": 1.0, "path": "/api/v1/models"}, timeout=5)
    try:
        assert check_provider_health_task.apply(args=[gigachat_provider.id]).get() is False
    finally:
        httpx.delete(f"{emulators['gigachat'].control_url}/faults", timeout=5)
    check = HealthCheck.objects.get(provider=gigachat_provider)
    assert not check.ok and check.detail
    assert {"provider": "giga-health", "ok": False} in heard


def test_the_admin_shows_health_status_and_history(gigachat_provider, admin_client):
    check_provider_health_task.apply(args=[gigachat_provider.id])
    page = admin_client.get("/admin/providers/provider/").content.decode()
    assert "OK" in page
    history = admin_client.get("/admin/providers/healthcheck/").content.decode()
    assert "giga-health" in history
