"""Issue 8 review of the catalog's stale-on-error: a reload that hangs (a database that accepts the
connection and never answers: connect_timeout bounds only the connect) must neither stretch the
snapshot past XROUTER_STALE_MAX nor hold requests without an answer. No server, no database: the
holder's loader blocks on an event, in the thread the real one runs in."""

import asyncio
import threading

import pytest

from apps.common.errors import ApiError


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class HangingLoader:
    """Answers at once until told to hang; a hung call returns when released."""

    def __init__(self, clock):
        self.clock = clock
        self.hang = False
        self.release = threading.Event()
        self.calls = 0

    def __call__(self):
        from apps.routing.catalog import Catalog

        self.calls += 1
        if self.hang:
            self.release.wait(30)
        return Catalog(loaded_at=self.clock())


@pytest.fixture
def xrouter(settings):
    settings.XROUTER = {**settings.XROUTER, "CONFIG_TTL": 1.0, "STALE_MAX": 60.0}
    return settings.XROUTER


@pytest.fixture
def hanging():
    from apps.routing.catalog import CatalogHolder

    clock = Clock()
    loader = HangingLoader(clock)
    holder = CatalogHolder(loader, clock=clock)
    holder.load_wait = 0.3  # how long a request waits for a load in flight (production: seconds)
    yield holder, loader, clock
    loader.release.set()


async def test_a_hung_reload_does_not_serve_the_snapshot_past_stale_max(xrouter, hanging):
    holder, loader, clock = hanging
    first = await holder.get()
    loader.hang = True
    clock.now += 2  # past the TTL: the next request starts a reload, which hangs
    reloading = asyncio.ensure_future(holder.get())
    await asyncio.sleep(0.05)
    assert await asyncio.wait_for(holder.get(), 5) is first  # young enough: served while the reload hangs
    clock.now += 120  # past STALE_MAX, the reload still hanging
    with pytest.raises(ApiError) as refused:
        await asyncio.wait_for(holder.get(), 5)
    assert refused.value.status == 503 and "retry-after" in refused.value.headers
    assert holder.status()["usable"] is False  # /readyz says what /v1 does
    loader.release.set()
    # The request that started the reload gave up waiting for it (load_wait) after the clock passed STALE_MAX:
    # a 503 too, or the late answer if it came first.
    await asyncio.wait_for(asyncio.gather(reloading, return_exceptions=True), 5)
    assert loader.calls == 2  # one load in flight, never one per request


async def test_with_no_snapshot_a_hung_load_answers_503_instead_of_holding_requests(xrouter, hanging):
    holder, loader, clock = hanging
    loader.hang = True
    waiting = [asyncio.ensure_future(holder.get()) for _ in range(5)]
    done, pending = await asyncio.wait(waiting, timeout=5)
    assert not pending, "requests still held by a load that hangs"
    assert all(isinstance(t.exception(), ApiError) and t.exception().status == 503 for t in done)
    loader.release.set()
    await asyncio.sleep(0.2)
    assert loader.calls == 1  # the hung load was not started again for each request
    assert (await asyncio.wait_for(holder.get(), 5)) is holder.catalog  # the late answer is used
