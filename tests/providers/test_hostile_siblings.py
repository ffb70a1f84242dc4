"""n > 1 emulation against the GigaChat emulator: when one sibling fails, the others are
cancelled and the ones that answered are billed on the error (issue 8 item 11)."""

import asyncio
import time

import pytest

from apps.gateway.capabilities import chat_with_emulation
from apps.providers.adapters.base import ProviderError

from .conftest import user


async def test_a_failed_sibling_cancels_the_others_and_carries_the_spent_usage(make_adapter, controls):
    adapter = make_adapter("gigachat")
    # One sibling fails after 0.3 s, one would take 5 s, one answers at once.
    controls["gigachat"].add_faults({"status": 400, "message": "bad sibling", "latency_ms": 300, "count": 1},
                                    {"latency_ms": 5000, "count": 1})
    before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await chat_with_emulation(adapter, {"model": "m", "messages": [user("three of us")], "n": 3}, "GigaChat-2-Max")
    assert time.monotonic() - started < 3
    assert "bad sibling" in caught.value.message
    assert caught.value.spent.prompt_tokens > 0 and caught.value.spent.completion_tokens > 0
    assert asyncio.all_tasks() - before == set(), "a sibling is still running"


async def test_siblings_that_all_answer_are_merged(make_adapter):
    adapter = make_adapter("gigachat")
    result = await chat_with_emulation(adapter, {"model": "m", "messages": [user("two of us")], "n": 2}, "GigaChat-2-Max")
    assert [c["index"] for c in result.choices] == [0, 1]
    assert result.usage.prompt_tokens > 0
