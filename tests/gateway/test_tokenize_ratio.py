"""Each model's characters per token, learned from its usage rows (apps/routing/token_ratio.py) and used
by the gateway's estimates: usage a provider did not report, prompt-size routing, /v1/xrouter/tokenize."""

import math
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from django.utils import timezone

from apps.gateway.accounting import estimate_tokens
from apps.gateway.handlers import routing_context
from apps.routing.catalog import Catalog, ModelEntry
from tests.conftest import wait_for_usage


def _entry(name: str, ratio: float | None) -> ModelEntry:
    return ModelEntry(provider="p", name=name, kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                      cached_input_price=Decimal(0), context_window=None, jurisdiction="RU", created=0,
                      chars_per_token=ratio)


def test_the_estimate_divides_by_the_learned_ratio_else_by_four():
    assert estimate_tokens(10) == estimate_tokens(10, _entry("m", None)) == 3
    assert estimate_tokens(10, _entry("m", 2.5)) == 4
    assert estimate_tokens(11, _entry("m", 2.5)) == 5


def test_prompt_size_routing_uses_the_requested_models_ratio():
    catalog = Catalog(models={"p/dense": _entry("dense", 2.0), "p/plain": _entry("plain", None)}, aliases={"fast": "p/dense"})
    req = SimpleNamespace(header=lambda name: "", prompt_chars=0)
    key = SimpleNamespace(prefix="k", organisation_id=None)
    body = {"messages": [{"role": "user", "content": "x" * 100}]}
    sizes = {model: routing_context(req, key, {**body, "model": model}, catalog).prompt_tokens
             for model in ("p/dense", "fast", "p/plain", "some-rule")}
    assert sizes == {"p/dense": 50, "fast": 50, "p/plain": 25, "some-rule": 25}
    assert req.prompt_chars == 100  # what the request's usage rows carry


@pytest.fixture
def ratio_model(db):
    from apps.providers.models import Provider, ProviderModel

    provider = Provider.objects.create(name=f"ratio-{uuid.uuid4().hex[:6]}", kind="mts", base_url="https://example.invalid/v1")
    return ProviderModel.objects.create(provider=provider, name="dense-model")


def _rows(model, n: int, chars: int, tokens: int, **fields):
    from apps.usage.models import UsageRecord

    created_at = fields.pop("created_at", timezone.now())
    UsageRecord.objects.bulk_create([
        UsageRecord(request_id=uuid.uuid4().hex, provider=model.provider.name, model=model.name, prompt_chars=chars,
                    prompt_tokens=tokens, created_at=created_at, **fields)
        for _ in range(n)])


def test_the_task_learns_from_counted_prompts_only(ratio_model):
    from apps.routing.token_ratio import MIN_ROWS, token_ratios_update

    _rows(ratio_model, MIN_ROWS, chars=300, tokens=100)
    _rows(ratio_model, 50, chars=900, tokens=100, estimated=True)  # the gateway's own estimate: teaches nothing
    _rows(ratio_model, 50, chars=900, tokens=100, status="error")
    _rows(ratio_model, 50, chars=900, tokens=100, cache_hit=True)
    _rows(ratio_model, 50, chars=900, tokens=100, created_at=timezone.now() - timedelta(days=30))  # too old
    token_ratios_update()
    ratio_model.refresh_from_db()
    assert ratio_model.chars_per_token == 3.0


def test_too_few_rows_teach_nothing_and_a_small_change_writes_nothing(ratio_model):
    from apps.routing.token_ratio import MIN_ROWS, token_ratios_update

    _rows(ratio_model, MIN_ROWS - 1, chars=300, tokens=100)
    token_ratios_update()
    ratio_model.refresh_from_db()
    assert ratio_model.chars_per_token is None
    ratio_model.chars_per_token = 2.99
    ratio_model.save()
    _rows(ratio_model, 1, chars=300, tokens=100)
    token_ratios_update()
    ratio_model.refresh_from_db()
    assert ratio_model.chars_per_token == 2.99  # 3.0 is within CHANGE of it: not worth a catalog reload


def test_usage_rows_carry_the_prompts_characters(openai_client, django_db_blocker):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="mts/mws-gpt-alpha", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}])
    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert record.prompt_chars == len("Be brief.") + len("hello there")


def _tokenize(gateway, chars: int) -> dict:
    response = httpx.post(gateway.v1 + "/xrouter/tokenize", headers={"Authorization": f"Bearer {gateway.keys['alice']}"},
                          json={"model": "tbank/t-tech/T-lite-it-2.1", "messages": [{"role": "user", "content": "x" * chars}]},
                          timeout=10)
    return response.json()


def test_the_served_gateway_estimates_with_a_learned_ratio(gateway, committed_db):
    from apps.common import bus
    from apps.providers.models import ProviderModel

    model = ProviderModel.objects.filter(provider__name="tbank", name="t-tech/T-lite-it-2.1")
    assert _tokenize(gateway, 100) == {"object": "xrouter.tokenize", "model": "tbank/t-tech/T-lite-it-2.1",
                                       "prompt_tokens": 25, "source": "estimate"}
    model.update(chars_per_token=2.5)
    try:
        bus.publish("config")
        deadline = time.monotonic() + 10
        while _tokenize(gateway, 100)["prompt_tokens"] != math.ceil(100 / 2.5) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _tokenize(gateway, 100)["prompt_tokens"] == 40
    finally:
        model.update(chars_per_token=None)
        bus.publish("config")
    deadline = time.monotonic() + 10
    while _tokenize(gateway, 100)["prompt_tokens"] != 25 and time.monotonic() < deadline:
        time.sleep(0.1)
