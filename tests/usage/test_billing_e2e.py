"""Billing across real processes: `manage.py serve` (workers and its usage writer), PostgreSQL,
Redis (the shared one, or one of the test's own that is stopped, paused and restarted), and the
provider emulators. Issue 8 items 13 and 14."""

import signal
import time

import httpx
import psutil

from apps.common import signing
from apps.usage.models import UsageRecord
from tests.conftest import start_gateway

from .conftest import spool_files, stop_with_children, writer_processes

MTS, TBANK = "mts/mws-gpt-alpha", "tbank/t-tech/T-lite-it-2.1"


def chat(gw, model: str, timeout: float = 20) -> str:
    response = httpx.post(gw.v1 + "/chat/completions", timeout=timeout,
                          headers={"Authorization": f"Bearer {gw.keys['alice']}"},
                          json={"model": model, "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200, response.text
    return response.headers["x-request-id"]


def rows(django_db_blocker, request_ids) -> dict[str, UsageRecord]:
    with django_db_blocker.unblock():
        return {r.request_id: r for r in UsageRecord.objects.filter(request_id__in=list(request_ids))}


def wait_rows(django_db_blocker, request_ids, timeout: float = 20) -> dict[str, UsageRecord]:
    deadline = time.monotonic() + timeout
    while True:
        found = rows(django_db_blocker, request_ids)
        if len(found) == len(set(request_ids)) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


def test_a_provider_with_200_character_request_ids_does_not_stop_billing(own_gateway, emulator_control, django_db_blocker):
    gw = own_gateway()
    emulator_control("mts", request_id="r" * 200, count=3)
    served = [chat(gw, MTS) for _ in range(3)] + [chat(gw, TBANK) for _ in range(3)]
    found = wait_rows(django_db_blocker, served)
    assert len(found) == 6, f"{len(found)} of 6 served requests billed"
    assert {found[r].provider_request_id for r in served[:3]} == {"r" * 128}


def test_a_usage_writer_that_dies_is_restarted(own_gateway, django_db_blocker):
    gw = own_gateway()
    deadline = time.monotonic() + 10
    while not writer_processes(gw.process) and time.monotonic() < deadline:
        time.sleep(0.1)
    (writer,) = writer_processes(gw.process)
    writer.send_signal(signal.SIGKILL)
    psutil.wait_procs([writer], timeout=5)
    deadline = time.monotonic() + 10
    while not [w for w in writer_processes(gw.process) if w.pid != writer.pid] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert [w for w in writer_processes(gw.process) if w.pid != writer.pid], "no writer runs after the first died"
    request_id = chat(gw, TBANK)
    assert wait_rows(django_db_blocker, [request_id]), "usage is not written after the writer died"


def test_usage_served_while_redis_is_down_is_spooled_and_lands_once(own_gateway, private_redis, django_db_blocker, tmp_path):
    gw = own_gateway(REDIS_URL=private_redis.url)
    spool = tmp_path / "spool"
    before = [chat(gw, TBANK) for _ in range(3)]
    assert len(wait_rows(django_db_blocker, before)) == 3
    private_redis.stop()
    during = [chat(gw, TBANK) for _ in range(5)]
    deadline = time.monotonic() + 15
    while not spool_files(spool) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert spool_files(spool), "nothing was spooled while Redis was down"
    private_redis.start()  # empty, as a Redis without persistence comes back
    after = [chat(gw, TBANK) for _ in range(2)]
    found = wait_rows(django_db_blocker, before + during + after, timeout=40)
    assert len(found) == 10, f"{10 - len(found)} of 10 served requests were not billed"
    assert not spool_files(spool), "the spool was not emptied"
    with django_db_blocker.unblock():
        assert UsageRecord.objects.filter(request_id__in=before + during + after).count() == 10


def test_sigterm_while_redis_hangs_loses_no_usage(own_gateway, private_redis, django_db_blocker, tmp_path):
    env = {"REDIS_URL": private_redis.url, "XROUTER_USAGE_FLUSH_INTERVAL": "0.1"}
    gw = own_gateway(**env)
    assert len(wait_rows(django_db_blocker, [chat(gw, TBANK)])) == 1
    private_redis.pause()
    served = [chat(gw, TBANK) for _ in range(4)]
    started = time.monotonic()
    code = stop_with_children(gw.process, timeout=30)
    assert code is not None, "the gateway did not stop within 30 s of SIGTERM while Redis hung"
    assert time.monotonic() - started < 30
    assert spool_files(tmp_path / "spool"), "the pending usage was not spooled"
    private_redis.resume()
    # A new gateway on the same spool replays what the stopped one left (its pid is gone).
    process, _ = start_gateway({**gw.env})
    try:
        found = wait_rows(django_db_blocker, served, timeout=40)
    finally:
        stop_with_children(process)
    assert len(found) == 4, f"{4 - len(found)} of 4 requests served before SIGTERM were not billed"


def test_sigterm_with_usage_pending_loses_none_of_it(own_gateway, django_db_blocker):
    gw = own_gateway(XROUTER_USAGE_FLUSH_INTERVAL="30")  # nothing leaves the worker before the stop
    served = [chat(gw, TBANK) for _ in range(4)]
    assert stop_with_children(gw.process) == 0
    assert len(wait_rows(django_db_blocker, served)) == 4


def test_a_writer_started_on_a_stream_holding_a_refused_record_writes_the_rest(own_gateway, django_db_blocker):
    """The reproduction's last step: records queued before the fix (uncleaned) make the writer
    fail at start; now it sets them aside and writes the others."""
    import uuid

    import orjson
    import redis
    from django.conf import settings

    from tests.usage.test_writer import entry

    stream = f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"
    prefix = f"start-{uuid.uuid4().hex[:6]}-"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.xadd(stream, signing.usage_entry(orjson.dumps([entry(f"{prefix}ok-1"), entry(f"{prefix}bad", provider_request_id="p" * 200),
                                                          entry(f"{prefix}ok-2")])))
    gw = own_gateway(XROUTER_USAGE_STREAM=stream)
    served = [chat(gw, TBANK)]
    found = wait_rows(django_db_blocker, [f"{prefix}ok-1", f"{prefix}ok-2", *served])
    assert len(found) == 3
    assert [orjson.loads(f[b"r"])["request_id"] for _, f in client.xrange(f"{stream}:dead")] == [f"{prefix}bad"]
    metrics = httpx.get(gw.base_url + "/metrics", timeout=10).text  # the writer's count, seen from a gateway
    assert "xrouter_usage_dead_letter_total 1.0" in metrics.splitlines()
