"""The battery's TCP fault proxy (bench/chaos/proxy.py): its plan decisions, and each fault on real loopback
connections in front of a small aiohttp server."""

import time

import httpx
import pytest
from aiohttp import web

from bench.chaos.proxy import FaultProxy, Plan


def test_a_share_hits_every_nth_request_and_an_empty_plan_none():
    plan = Plan.from_json({"reset": True, "share": 0.25})
    assert [plan.roll() for _ in range(8)] == [False, False, False, True] * 2
    assert not any(Plan().roll() for _ in range(5))


@pytest.mark.parametrize("bad", [{"share": 0}, {"share": 1.5}, {"nope": 1}, []])
def test_a_bad_plan_is_refused(bad):
    with pytest.raises((ValueError, TypeError)):
        Plan.from_json(bad)


@pytest.fixture
async def proxied():
    async def answer(request):
        return web.Response(body=b"x" * 10_000)

    app = web.Application()
    app.router.add_get("/", answer)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    proxy = FaultProxy("127.0.0.1", runner.addresses[0][1])
    await proxy.start()
    yield proxy
    await proxy.stop()
    await runner.cleanup()


async def test_each_fault_on_a_real_connection(proxied):
    url = f"http://127.0.0.1:{proxied.port}/"
    # No keep-alive: each request on a connection of its own, as each fault is decided per request anyway.
    async with httpx.AsyncClient(timeout=5, limits=httpx.Limits(max_keepalive_connections=0)) as client:
        assert len((await client.get(url)).content) == 10_000
        await proxied.set_plan(Plan(cut_after_bytes=500))
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get(url)
        await proxied.set_plan(Plan(reset=True))
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            await client.get(url)
        await proxied.set_plan(Plan(latency_ms=300))
        started = time.monotonic()
        assert (await client.get(url)).status_code == 200 and time.monotonic() - started >= 0.3
        await proxied.set_plan(Plan(down=True))
        with pytest.raises(httpx.ConnectError):
            await client.get(url)
        await proxied.set_plan(Plan())
        assert (await client.get(url)).status_code == 200
    assert proxied.stats.faulted == {"cut": 1, "reset": 1, "latency": 1}
