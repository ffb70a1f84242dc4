"""apps/usage/selectors.py: the sums the portal charts and the one lookup of a request by its id."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.usage.models import UsageRecord
from apps.usage.selectors import request_lookup, usage_by, usage_by_day, usage_since, usage_totals

pytestmark = pytest.mark.django_db


def _record(organisation, **fields):
    values = {"request_id": uuid.uuid4().hex, "organisation_id": organisation.pk, "key_prefix": "abcd1234",
              "model": "GigaChat-2-Max", "provider": "gigachat", "prompt_tokens": 10, "completion_tokens": 5,
              "cost": Decimal("0.5"), "created_at": timezone.now()} | fields
    return UsageRecord.objects.create(**values)


def test_the_lookup_finds_a_request_of_ones_organisations_only(acme, globex):
    mine = _record(acme, route="default-chat", latency_ms=123.4, status="error", http_status=502,
                   error_type="upstream_error")
    theirs = _record(globex)

    found = request_lookup(mine.request_id, [acme.pk])

    assert (found.status, found.http_status, found.error_type, found.route, found.latency_ms) == (
        "error", 502, "upstream_error", "default-chat", 123.4)
    assert request_lookup(f"  chatcmpl-{mine.request_id} ", [acme.pk]) == found  # a chat id and stray blanks
    assert request_lookup(theirs.request_id, [acme.pk]) is None  # another tenant's looks like none at all
    assert request_lookup(theirs.request_id, None).request_id == theirs.request_id  # operators: everyone's
    assert request_lookup("", [acme.pk]) is None and request_lookup("x" * 65, [acme.pk]) is None


def test_the_lookup_returns_no_content_field():
    fields = set(request_lookup.__annotations__["return"].__args__[0].__dataclass_fields__)
    assert not fields & {"messages", "content", "prompt", "answer", "input", "output"}


def test_days_without_requests_are_zeros_and_totals_add_up(acme):
    now = timezone.now()
    _record(acme, created_at=now, cost=Decimal("1.25"))
    _record(acme, created_at=now - datetime.timedelta(days=2), cost=Decimal("0.75"), key_prefix="ffff0000")
    _record(acme, created_at=now - datetime.timedelta(days=45))  # outside the window

    recent = usage_since([acme.pk], 30)
    days = usage_by_day(recent, 30)

    assert len(days) == 30 and days[-1]["day"] == timezone.localdate()
    assert [d["requests"] for d in days[-3:]] == [1, 0, 1]
    assert sum(d["spend"] for d in days) == Decimal("2.0") == usage_totals(recent)["spend"]
    assert usage_totals(usage_since([], 30)) == {"requests": 0, "tokens": 0, "spend": 0}
    assert [row["key_prefix"] for row in usage_by(recent, "key_prefix")] == ["abcd1234", "ffff0000"]


def test_the_lookup_shows_a_fallen_back_request_as_its_last_attempt_with_what_every_attempt_cost(acme):
    now = timezone.now()
    first = _record(acme, attempt=0, status="error", http_status=502, error_type="server_error", completion_tokens=0,
                    cost=Decimal("0.01"), created_at=now)
    _record(acme, request_id=first.request_id, attempt=1, provider="mts", model="mws-gpt-alpha", status="ok",
            fallback_chain="gigachat/GigaChat-2-Max", cost=Decimal("0.02"), created_at=now + datetime.timedelta(seconds=1))

    found = request_lookup(first.request_id, [acme.pk])

    assert (found.attempts, found.status, found.provider, found.fallback_chain) == (2, "ok", "mts", "gigachat/GigaChat-2-Max")
    assert (found.prompt_tokens, found.completion_tokens, found.cost) == (20, 5, Decimal("0.03"))
