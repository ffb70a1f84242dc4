"""The admin index's overview (apps/routing/console.py): figures from usage rows and roll-ups, provider
status, open alerts, balances — and who may see it."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.alerts.models import Alert
from apps.providers.models import HealthCheck, Provider
from apps.routing import state
from apps.routing.console import overview
from apps.usage.models import UsageRecord


def usage(provider="gigachat", status="ok", latency=100.0, cost="1.5", attempt=0, ago=datetime.timedelta(minutes=5), **kw):
    return UsageRecord.objects.create(request_id=uuid.uuid4().hex, attempt=attempt, provider=provider, model="GigaChat-2",
                                      status=status, latency_ms=latency, cost=Decimal(cost),
                                      created_at=timezone.now() - ago, **kw)


@pytest.fixture
def providers(db):
    state.reset()
    yield {name: Provider.objects.create(name=name, kind=name, base_url=f"https://{name}.example.invalid/v1")
           for name in ("gigachat", "mts")}
    state.reset()


@pytest.mark.django_db
def test_the_overview_sums_the_last_hour_per_provider_with_error_rate_and_percentiles(providers, alice_key):
    for latency in range(10, 110, 10):  # 10 … 100 ms
        usage(latency=float(latency), api_key_id=alice_key.key.id, organisation_id=alice_key.key.organisation_id)
    usage(status="error", latency=5000.0, cost="0", attempt=0)
    usage(status="ok", latency=70.0, attempt=1)  # a fallback attempt of the request above: not a request of its own
    usage(provider="mts", ago=datetime.timedelta(hours=2))  # outside the hour; still today's or yesterday's

    view = overview()

    gigachat = next(row for row in view["providers"] if row["provider"].name == "gigachat")
    assert gigachat["attempts"] == 12 and gigachat["requests"] == 11
    assert gigachat["error_rate"] == pytest.approx(1 / 12)
    assert gigachat["p50"] == pytest.approx(60.0) and 90 <= gigachat["p95"] <= 100  # 10…100 and the fallback's 70; the error's 5 s is no latency
    assert view["hour"]["requests"] == 11 and view["hour"]["cost"] == Decimal("16.5")
    assert view["week"]["requests"] == 12
    assert view["top_keys"][0]["id"] == alice_key.key.id and view["top_keys"][0]["requests"] == 10
    assert view["top_keys"][0]["label"].startswith(f"xr-{alice_key.key.prefix}")
    assert view["top_organisations"][0]["id"] == alice_key.key.organisation_id


@pytest.mark.django_db
def test_the_overview_shows_breakers_health_balances_and_open_alerts(providers):
    HealthCheck.objects.create(provider=providers["gigachat"], ok=True, latency_ms=12, balance={"GigaChat": 123456.0})
    HealthCheck.objects.create(provider=providers["mts"], ok=False, detail="401 from the token endpoint")
    state.open_breaker("mts/mws-gpt-alpha", 30)
    Alert.objects.create(fingerprint="f1", name="ProviderDown", status=Alert.FIRING, severity="critical",
                         starts_at=timezone.now())
    Alert.objects.create(fingerprint="f2", name="Old", status=Alert.RESOLVED, starts_at=timezone.now())

    view = overview()

    rows = {row["provider"].name: row for row in view["providers"]}
    assert rows["gigachat"]["balance"] == {"GigaChat": 123456.0} and rows["gigachat"]["check"].ok
    assert rows["mts"]["open_breakers"] == ["mts/mws-gpt-alpha"] and not rows["mts"]["check"].ok
    assert rows["gigachat"]["open_breakers"] == []
    assert view["alerts_open"] == 1 and [a.name for a in view["alerts"]] == ["ProviderDown"]


@pytest.mark.django_db
def test_the_admin_index_shows_the_overview_to_superusers_only(client, django_user_model, providers):
    usage()
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    html = client.get("/admin/").content.decode()
    assert 'id="provider-status"' in html and 'data-provider="gigachat"' in html and 'id="top-keys"' in html

    staff = django_user_model.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    client.force_login(staff)
    page = client.get("/admin/")
    assert page.status_code == 200 and 'id="provider-status"' not in page.content.decode()
