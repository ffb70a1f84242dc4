"""The portal's usage page and dashboard read spend from the daily roll-ups (and today's raw rows)."""

import datetime

import pytest
from django.test import Client
from django.utils import timezone

from apps.billing import services

from .conftest import at, member, usage


@pytest.mark.django_db
def test_usage_page_spend_by_provider_and_month(org):
    owner = member(org, "owner")
    org.monthly_budget = 500
    org.save(update_fields=["monthly_budget"])
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    usage(org, "12.5", at(yesterday, 10), provider="gigachat", model="GigaChat-2")
    usage(org, "1.25", timezone.now(), provider="yandexgpt", model="yandexgpt-lite")
    services.rollup_day(yesterday)  # final: rolled up after it ended
    from apps.usage.models import UsageRecord

    UsageRecord.objects.filter(provider="gigachat", organisation_id=org.id).delete()  # as retention would
    client = Client()
    client.force_login(owner)
    html = client.get("/usage/").content.decode()
    assert "gigachat" in html and "yandexgpt" in html  # the roll-up still carries yesterday's spend
    assert '<svg viewBox' in html and ("Spend by provider" in html or "Расходы по провайдерам" in html)
    month_total = "13.75" if yesterday.month == today.month else "1.25"
    assert month_total in html.replace(",", ".") and "500.00" in html.replace(",", ".")
    dashboard = client.get("/").content.decode()
    assert "GigaChat-2" in dashboard
