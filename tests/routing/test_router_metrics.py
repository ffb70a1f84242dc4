"""What the router and the token cache count for /metrics: fallbacks, retries, token refreshes
(decisions, no server: the adapters' calls are plain coroutines here)."""

from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.tokens import Token, TokenCache
from apps.routing import state
from apps.routing.catalog import ModelEntry
from apps.routing.router import RoutePlan, Target, run_with_fallback


@pytest.fixture(autouse=True)
def clean_state():
    state.reset()
    yield
    state.reset()


def _target(provider: str) -> Target:
    entry = ModelEntry(provider=provider, name="m", kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                       cached_input_price=Decimal(0), context_window=None, jurisdiction="RU", created=0)
    return Target(model=entry, adapter=None, timeout=2.0)


def _value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def test_a_fallback_and_a_retry_are_counted_against_the_target_that_failed():
    plan = RoutePlan(requested="r", targets=[_target("metrics-a"), _target("metrics-b")], retries=1)
    calls = []

    async def call(target):
        calls.append(target.model.provider)
        if target.model.provider == "metrics-a":
            raise ProviderError("down", status=503, kind="upstream_5xx")
        return "answer"

    before = (_value("xrouter_fallbacks_total", provider="metrics-a", failure="5xx"),
              _value("xrouter_retries_total", provider="metrics-a"))
    result, target = await run_with_fallback(plan, call)
    assert result == "answer" and target.model.provider == "metrics-b"
    assert calls == ["metrics-a", "metrics-a", "metrics-b"]
    assert _value("xrouter_fallbacks_total", provider="metrics-a", failure="5xx") == before[0] + 1
    assert _value("xrouter_retries_total", provider="metrics-a") == before[1] + 1
    assert plan.upstream_seconds is not None and plan.upstream_seconds >= 0


async def test_a_first_target_that_answers_counts_no_fallback():
    plan = RoutePlan(requested="r", targets=[_target("metrics-c"), _target("metrics-d")])

    async def call(target):
        return "answer"

    await run_with_fallback(plan, call)
    assert _value("xrouter_fallbacks_total", provider="metrics-c", failure="5xx") == 0


async def test_token_fetches_are_counted_by_credential_kind_and_result():
    cache = TokenCache(redis=lambda: None, prefix="test-metrics:")
    before = (_value("xrouter_provider_token_refreshes_total", provider="metrics-kind", result="success"),
              _value("xrouter_provider_token_refreshes_total", provider="metrics-kind", result="failure"))

    async def good():
        return Token("t-" + "x" * 20, 4_000_000_000.0)

    async def bad():
        raise ProviderError("refused", status=401, kind="auth")

    assert await cache.get("metrics-kind:abc", good) == "t-" + "x" * 20
    with pytest.raises(ProviderError):
        await cache.get("metrics-kind:def", bad)
    assert _value("xrouter_provider_token_refreshes_total", provider="metrics-kind", result="success") == before[0] + 1
    assert _value("xrouter_provider_token_refreshes_total", provider="metrics-kind", result="failure") == before[1] + 1
