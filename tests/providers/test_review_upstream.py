"""Hostile review of issue 8 item 8: upstream-controlled CPU in the YandexGPT stream.

YandexGPT streams the whole text so far on every line. A line that repeats a prefix of what was
sent, differing only by trailing whitespace, is accepted as "nothing new"; the check copied
everything sent after that prefix on every such line, so an upstream that sends one long line
and then many tiny ones made the gateway copy the long text once per tiny line (quadratic: a
few MB of stream cost tens of GB of copying and stalled the event loop)."""

import asyncio

import orjson
import pytest

from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.yandexgpt import CumulativeText

from .conftest import collect, user
from .hostile_upstream import HostileUpstream

HANG_GUARD = 10  # seconds; the stream below takes well under one when read in linear time


@pytest.fixture
async def upstream():
    server = await HostileUpstream().start()
    yield server
    await server.stop()


def line(text: str, status: str = "ALTERNATIVE_STATUS_PARTIAL") -> bytes:
    return orjson.dumps({"result": {"alternatives": [{"message": {"role": "assistant", "text": text}, "status": status}],
                                    "usage": {"inputTextTokens": "3", "completionTokens": "2"}}}) + b"\n"


async def test_repeated_short_prefixes_of_a_long_streamed_text_are_read_in_linear_time(make_adapter, upstream):
    adapter = make_adapter("yandexgpt", base_url=upstream.origin)
    long_text = "x" + " " * 900_000  # legal: a word and a run of whitespace the next lines trim
    upstream.answer(content_type="application/x-ndjson", head=line(long_text), chunk=line("x"), repeat=60_000,
                    tail=line(long_text, "ALTERNATIVE_STATUS_FINAL"))
    chunks = await asyncio.wait_for(collect(adapter.stream_chat({"model": "m", "messages": [user("hi")], "stream": True}, "m")),
                                    HANG_GUARD)
    assert "".join(c.delta.get("content", "") for c in chunks if c.delta) == long_text
    assert chunks[-1].usage is not None


def test_cumulative_text_still_takes_trimmed_whitespace_and_refuses_rewrites():
    cumulative = CumulativeText()
    assert cumulative.delta("Hello ") == "Hello "
    assert cumulative.delta("Hello") == ""  # trailing whitespace trimmed: nothing to take back
    assert cumulative.delta("Hello world") == "world"
    assert cumulative.delta("Hello world") == ""
    with pytest.raises(ProviderError):
        cumulative.delta("Hello")  # "world" taken back
    rewritten = CumulativeText()
    rewritten.delta("abc")
    with pytest.raises(ProviderError):
        rewritten.delta("abd")
