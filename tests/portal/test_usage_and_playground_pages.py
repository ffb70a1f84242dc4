"""The dashboard's and usage page's charts and sums, the request lookup (scoped to one's organisations,
never content), the playground page (one's own chat keys only, no key in the page, the script vendored),
and capabilities on the models page."""

import re
import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.keys.services import key_create, key_revoke
from apps.providers.models import Provider, ProviderModel
from apps.usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def _usage(organisation, **fields):
    values = {"request_id": uuid.uuid4().hex, "organisation_id": organisation.pk, "key_prefix": "abcd1234",
              "model": "GigaChat-2-Max", "provider": "gigachat", "prompt_tokens": 10, "completion_tokens": 5,
              "cost": Decimal("0.5"), "created_at": timezone.now()} | fields
    return UsageRecord.objects.create(**values)


def test_the_dashboard_charts_30_days_of_requests_tokens_and_spend(browser, alice, acme, globex):
    _usage(acme, cost=Decimal("1.25"))
    _usage(globex, cost=Decimal("9"), model="<script>alert(1)</script>")
    page = browser(alice).get("/")
    html = page.content.decode()

    assert len(page.context["charts"]) == 3
    svgs = re.findall(r"<svg .*?</svg>", html, re.S)
    assert len(svgs) == 3 and all(svg.count("<rect") == 30 for svg in svgs)
    assert "Запросов в день" in html  # Russian by default
    assert "<script>alert" not in html and "9,00" not in html  # another tenant's row is nowhere


def test_the_usage_page_sums_by_day_model_and_key(browser, alice, acme, globex):
    key, _ = key_create(user=alice, organisation=acme, issued_by=alice, name="billing-report")
    _usage(acme, key_prefix=key.prefix, api_key_id=key.id, model="GigaChat-2-Max", cost=Decimal("2"))
    _usage(acme, key_prefix=key.prefix, api_key_id=key.id, model="yandexgpt-lite", cost=Decimal("1"))
    _usage(globex, key_prefix="ffff0000", model="T-Pro", cost=Decimal("5"))

    page = browser(alice).get("/usage/")
    html = page.content.decode()

    assert [r["model"] for r in page.context["by_model"]] == ["GigaChat-2-Max", "yandexgpt-lite"]
    assert [(r["key_prefix"], r["name"], r["requests"]) for r in page.context["by_key"]] == [
        (key.prefix, "billing-report", 2)]
    assert html.count("<svg ") == 6  # three by day, one by model, one by provider, one by key
    assert "T-Pro" not in html and "ffff0000" not in html


def test_a_request_is_found_by_its_id_within_ones_organisations_only(browser, alice, charlie, acme):
    record = _usage(acme, route="chat-default", status="error", http_status=502, error_type="upstream_error",
                    latency_ms=321.0)

    found = browser(alice).get("/usage/", {"request_id": record.request_id})
    refused = browser(charlie).get("/usage/", {"request_id": record.request_id})

    assert found.context["found"].request_id == record.request_id
    html = found.content.decode()
    assert "upstream_error" in html and "chat-default" in html and "502" in html and "321" in html
    assert refused.context["found"] is None and "upstream_error" not in refused.content.decode()
    assert browser(alice).get("/usage/", {"request_id": "x" * 5000}).status_code == 200


def test_the_playground_lists_only_ones_own_keys_able_to_chat(browser, alice, bob, acme):
    mine, _ = key_create(user=alice, organisation=acme, issued_by=alice, name="mine-chat")
    mute, _ = key_create(user=alice, organisation=acme, issued_by=alice, name="mine-mute", scopes=["models:read"])
    gone, _ = key_create(user=alice, organisation=acme, issued_by=alice, name="mine-revoked")
    key_revoke(gone)
    bobs, _ = key_create(user=bob, organisation=acme, issued_by=bob, name="bobs-key")

    page = browser(alice).get("/playground/")
    html = page.content.decode()

    made_here = {mine.pk, mute.pk, gone.pk}  # (alice also holds the session gateway's keys in a full run)
    assert [k.name for k in page.context["keys"] if k.pk in made_here] == ["mine-chat"]
    assert all(k.user_id == alice.id for k in page.context["keys"])
    assert 'value="playground"' in html and f'value="{mine.pk}"' in html
    assert "xr-" + mine.prefix + "-…" in html and "bobs-key" not in html
    assert 'src="/static/portal/playground.js"' in html and 'id="pg-strings"' in html


def test_the_playground_needs_a_session(browser):
    page = browser().get("/playground/")
    assert page.status_code == 302 and page["Location"].startswith("/accounts/login/")


def test_models_show_their_capabilities(browser, alice):
    provider = Provider.objects.create(name=f"g-{uuid.uuid4().hex[:6]}", kind="gigachat", base_url="http://127.0.0.1:1",
                                       jurisdiction="RU")
    ProviderModel.objects.create(provider=provider, name="chatty", context_window=32768)
    open_ai = Provider.objects.create(name=f"o-{uuid.uuid4().hex[:6]}", kind="openai_compatible",
                                      base_url="http://127.0.0.1:1", jurisdiction="RU")
    ProviderModel.objects.create(provider=open_ai, name="seeing")
    ProviderModel.objects.create(provider=open_ai, name="embedder", kind=ProviderModel.EMBEDDING)

    client = browser(alice)
    client.post("/i18n/setlang/", {"language": "en", "next": "/models/"})
    rows = {m.name: caps for m, _kind, caps in client.get("/models/").context["models"] if m.provider in (provider, open_ai)}

    assert [str(c) for c in rows["chatty"]] == ["streaming", "tools"]
    assert [str(c) for c in rows["seeing"]] == ["streaming", "tools", "images"]
    assert [str(c) for c in rows["embedder"]] == ["dimensions"]
