"""Issue 8 item 18, the decisions: what the catalog does when a reload fails (no server, no database).

The loader and the clock are the holder's inputs, so each rule is checked in microseconds; the
end-to-end proof with a real PostgreSQL stopped under a serving gateway is test_database_outage.py.
"""

import asyncio
import logging

import pytest


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Loader:
    """Answers a fresh catalog, or raises what a database outage raises, as told."""

    def __init__(self, clock):
        self.clock = clock
        self.down = False
        self.calls = 0

    def __call__(self):
        from django.db import OperationalError

        from apps.routing.catalog import Catalog

        self.calls += 1
        if self.down:
            raise OperationalError("connection to server at 127.0.0.1 failed: Connection refused")
        return Catalog(loaded_at=self.clock())


@pytest.fixture
def xrouter(settings):
    settings.XROUTER = {**settings.XROUTER, "CONFIG_TTL": 1.0, "STALE_MAX": 60.0}
    return settings.XROUTER


def holder_for(clock):
    from apps.routing.catalog import CatalogHolder

    loader = Loader(clock)
    return CatalogHolder(loader, clock=clock), loader


def get(holder):
    return asyncio.run(holder.get())


def test_a_failed_reload_keeps_serving_the_last_good_catalog(xrouter, caplog):
    clock = Clock()
    holder, loader = holder_for(clock)
    good = get(holder)
    loader.down = True
    clock.now += 5
    with caplog.at_level(logging.ERROR, logger="apps.routing.catalog"):
        assert get(holder) is good
    status = holder.status()
    assert status["loaded"] and status["stale"] and "Connection refused" in status["last_error"]
    assert status["age_s"] == pytest.approx(5)


def test_reload_attempts_back_off_and_the_outage_is_logged_once(xrouter, caplog):
    clock = Clock()
    holder, loader = holder_for(clock)
    get(holder)
    loader.down = True
    pauses = []
    with caplog.at_level(logging.ERROR, logger="apps.routing.catalog"):
        for _ in range(5):
            clock.now += 2
            calls = loader.calls
            get(holder)
            assert loader.calls == calls + 1  # the first request after the pause tries again...
            get(holder)
            get(holder)
            assert loader.calls == calls + 1  # ...the ones during the pause do not
            pauses.append(holder.retry_at - clock.now)
            clock.now = holder.retry_at
    assert pauses == sorted(pauses) and pauses[-1] > pauses[0]
    assert len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 1


def test_without_any_catalog_the_answer_is_503_with_retry_after(xrouter):
    from apps.common.errors import ApiError

    clock = Clock()
    holder, loader = holder_for(clock)
    loader.down = True
    with pytest.raises(ApiError) as caught:
        get(holder)
    assert caught.value.status == 503 and caught.value.code == "config_unavailable"
    assert int(caught.value.headers["retry-after"]) >= 1
    assert "Connection refused" not in caught.value.message  # the database's address stays in the log
    assert not holder.status()["loaded"]


def test_a_catalog_older_than_stale_max_is_not_served(xrouter):
    from apps.common.errors import ApiError

    clock = Clock()
    holder, loader = holder_for(clock)
    get(holder)
    loader.down = True
    clock.now += 61
    with pytest.raises(ApiError) as caught:
        get(holder)
    assert caught.value.status == 503


def test_it_recovers_when_the_database_comes_back(xrouter, caplog):
    clock = Clock()
    holder, loader = holder_for(clock)
    get(holder)
    loader.down = True
    clock.now += 5
    get(holder)
    loader.down = False
    clock.now = holder.retry_at
    with caplog.at_level(logging.INFO, logger="apps.routing.catalog"):
        fresh = get(holder)
    assert fresh.loaded_at == clock.now
    status = holder.status()
    assert not status["stale"] and status["last_error"] is None
    assert any("recovered" in r.getMessage() for r in caplog.records)


def test_a_burst_on_a_long_idle_worker_waits_for_the_reload_instead_of_getting_503(xrouter):
    """Found by the battery (a gateway worker idle for 20 minutes, then 15 requests at once): the first
    request reloads the catalog, and those arriving during that reload were answered 503
    `config_unavailable` because the snapshot was older than XROUTER_STALE_MAX — though no reload had
    failed and the database was fine. They wait for the reload in flight now, as the first one does."""
    import threading

    clock = Clock()
    holder, loader = holder_for(clock)
    first = get(holder)
    clock.now += 61  # idle for longer than STALE_MAX; nothing failed
    released = threading.Event()

    def slow_load():
        released.wait(5)
        return loader()

    holder.loader = slow_load

    async def burst():
        requests = [asyncio.ensure_future(holder.get()) for _ in range(5)]
        await asyncio.sleep(0.1)  # all five are in while the load is in flight
        released.set()
        return await asyncio.gather(*requests, return_exceptions=True)

    got = asyncio.run(burst())
    assert [type(c).__name__ for c in got] == ["Catalog"] * 5, got
    assert all(c is not first for c in got) and loader.calls == 2  # one reload, shared
