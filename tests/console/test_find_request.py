"""Finding one request by its x-request-id in the admin: how it went, its route and every attempt (the
usage rows), through the portal's own lookup (apps.usage.selectors.request_lookup)."""

import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.usage.models import UsageRecord

FIND = "/admin/usage/usagerecord/find/"


@pytest.fixture
def root(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


def attempt(n, **fields):
    base = dict(request_id="req-abc123", attempt=n, provider="mts", model="mws-gpt-alpha", requested_model="xrouter/auto",
                route="default-chat", key_prefix="0123abcd", status="ok", http_status=200, latency_ms=120.0,
                prompt_tokens=10, completion_tokens=5, cost=Decimal("0.5"),
                created_at=timezone.now() - datetime.timedelta(minutes=1) + datetime.timedelta(seconds=n))
    return UsageRecord.objects.create(**{**base, **fields})


def test_a_request_is_found_with_its_route_status_and_every_attempt(root):
    attempt(0, status="error", http_status=502, error_type="5xx", provider="gigachat", model="GigaChat-2", latency_ms=900.0)
    attempt(1, fallback_chain="gigachat/GigaChat-2")

    page = root.get(FIND, {"request_id": "chatcmpl-req-abc123"})
    html = page.content.decode()
    assert page.status_code == 200
    summary = html.split('id="request-summary"')[1].split("</table>")[0]
    assert "ok (HTTP 200)" in summary and "default-chat → mts/mws-gpt-alpha" in summary and "over 2 attempts" in summary
    attempts = html.split('id="request-attempts"')[1].split("</table>")[0]
    assert attempts.index("gigachat/GigaChat-2") < attempts.index("mts/mws-gpt-alpha")
    assert "error (502)" in attempts and "5xx" in attempts


def test_an_unknown_id_says_so_and_an_overlong_one_is_refused(root):
    assert 'id="request-not-found"' in root.get(FIND, {"request_id": "nope"}).content.decode()
    page = root.get(FIND, {"request_id": "x" * 200})
    assert page.status_code == 200 and "errorlist" in page.content.decode()


def test_staff_without_the_right_to_view_usage_are_refused(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True))
    assert client.get(FIND, {"request_id": "req-abc123"}).status_code == 403
