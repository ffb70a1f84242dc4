"""Hostile review of issue 8 item 11: n > 1 emulation must bill the siblings that answered when
the request fails, including when it fails because its time ran out. A rule's target timeout or
deadline cancels the emulation from outside (asyncio.wait_for): the siblings that had answered
were paid for at the provider, and their usage must ride on the timeout error the router raises."""

import asyncio
import time
from decimal import Decimal

import pytest

from apps.gateway.capabilities import chat_with_emulation
from apps.providers.adapters.base import ProviderError
from apps.routing import state
from apps.routing.catalog import ModelEntry
from apps.routing.router import RoutePlan, Target, run_with_fallback

from .conftest import user


@pytest.fixture(autouse=True)
def fresh_state(settings):
    settings.REDIS_URL = ""  # breaker broadcasts stay in this process
    state.reset()
    yield
    state.reset()


async def test_siblings_that_answered_before_the_target_timeout_are_billed_on_the_timeout_error(make_adapter, controls):
    adapter = make_adapter("gigachat")
    controls["gigachat"].add_faults({"latency_ms": 10_000, "count": 1})  # one sibling outlives the timeout
    entry = ModelEntry(provider="gigachat", name="GigaChat-2-Max", kind="chat", input_price=Decimal(0),
                       output_price=Decimal(0), cached_input_price=Decimal(0), context_window=None, jurisdiction="RU",
                       created=0)
    plan = RoutePlan(requested="gigachat/GigaChat-2-Max", targets=[Target(model=entry, adapter=adapter, timeout=2.0)])
    body = {"model": "m", "messages": [user("three of us")], "n": 3}
    before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await run_with_fallback(plan, lambda target: chat_with_emulation(target.adapter, body, target.model.name))
    assert time.monotonic() - started < 8
    assert caught.value.kind == "timeout"
    assert asyncio.all_tasks() - before == set(), "a sibling is still running"
    spent = getattr(caught.value, "spent", None)
    assert spent is not None and spent.prompt_tokens > 0 and spent.completion_tokens > 0, \
        "two siblings answered (and were paid for), but the error bills nothing"
