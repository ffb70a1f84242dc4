"""Hostile review of issue 8 item 10: a half-open probe that ends without a verdict on the
provider (its client left, the request was cancelled, our own code broke) must give the probe
back. Otherwise one client that leaves while its request probes a recovering target keeps that
target closed to everyone for a whole cooldown (XROUTER_BREAKER_COOLDOWN, 30 s)."""

import asyncio
from decimal import Decimal

import pytest

from apps.routing import state
from apps.routing.catalog import ModelEntry
from apps.routing.failures import FALLBACK_NAMES
from apps.routing.router import RoutePlan, Target, run_with_fallback


@pytest.fixture(autouse=True)
def fresh_state(settings):
    settings.REDIS_URL = ""  # the bus stays in this process
    state.reset()
    yield
    state.reset()


def make_plan(*labels) -> RoutePlan:
    targets = []
    for label in labels:
        provider, name = label.split("/", 1)
        entry = ModelEntry(provider=provider, name=name, kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                           cached_input_price=Decimal(0), context_window=None, jurisdiction="RU", created=0)
        targets.append(Target(model=entry, adapter=None))
    return RoutePlan(requested=labels[0], targets=targets, rule="r", fallback_on=frozenset(FALLBACK_NAMES))


def half_open(label: str) -> None:
    state.open_breaker(label, 0.0)  # open, and already past its cooldown
    assert state.available(label, label.split("/")[0])


async def test_a_half_open_probe_whose_request_is_cancelled_lets_the_next_request_probe():
    half_open("a/m")
    started = asyncio.Event()

    async def call(target):
        started.set()
        await asyncio.sleep(60)  # the upstream is still thinking when the client leaves

    request = asyncio.ensure_future(run_with_fallback(make_plan("a/m"), call))
    await asyncio.wait_for(started.wait(), 5)
    request.cancel()  # a WebSocket `cancel`, or the client leaving, while the target is being opened
    with pytest.raises(asyncio.CancelledError):
        await request
    assert state.state("a/m").recent.count(False) == 0  # nothing learnt about the provider...
    assert state.available("a/m", "a"), "the next request may not probe: the target stays shut for a cooldown"


async def test_a_half_open_probe_that_breaks_with_an_unexpected_error_lets_the_next_request_probe():
    half_open("a/m")

    async def call(target):
        raise RuntimeError("our own bug, not the provider's health")

    with pytest.raises(RuntimeError):
        await run_with_fallback(make_plan("a/m"), call)
    assert state.available("a/m", "a")


async def test_a_probe_that_is_still_out_keeps_other_requests_off_the_target():
    """The fix must not hand the probe to a second request while the first is still running."""
    half_open("a/m")
    started = asyncio.Event()

    async def call(target):
        started.set()
        await asyncio.sleep(60)

    request = asyncio.ensure_future(run_with_fallback(make_plan("a/m"), call))
    try:
        await asyncio.wait_for(started.wait(), 5)
        assert not state.available("a/m", "a") and not state.reserve_probe("a/m")
    finally:
        request.cancel()
        await asyncio.gather(request, return_exceptions=True)


class BrokenAfterFirstChunk:
    """An adapter whose stream breaks after its first chunk with an error that is not a ProviderError."""

    supports_images = supports_n = supports_stop = True

    async def stream_chat(self, body, model):
        from apps.providers.adapters.base import StreamChunk

        yield StreamChunk(delta={"role": "assistant", "content": "Hel"})
        raise RuntimeError("our own bug, not the provider's health")


class Req:
    request_id = "review3-relay-probe"
    admission = None
    span = None
    started = 0.0

    def __init__(self):
        self.attempts = []


async def test_a_half_open_probe_whose_stream_breaks_unexpectedly_lets_the_next_request_probe():
    from apps.gateway.streaming import WsSink, stream_chat
    from apps.keys.selectors import KeyInfo

    half_open("a/m")
    plan = make_plan("a/m")
    plan.targets[0].adapter = BrokenAfterFirstChunk()
    frames: list[str] = []

    async def send_text(text: str) -> None:
        frames.append(text)

    key = KeyInfo(id=1, prefix="xr-review", name="k", user_id=1, organisation_id=None, allowed_models=(), residency="",
                  expires_at=None)
    body = {"model": "a/m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    await stream_chat(Req(), WsSink(Req(), send_text), key, plan, body, legacy=False)
    assert '"type":"error"' in frames[-1]  # the answer ended as an error, as item 15 wants
    assert state.available("a/m", "a"), "the probe was kept: the target stays shut for a cooldown"
