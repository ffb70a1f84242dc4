"""Issue 8 item 13: /readyz answers 503 only when this process cannot serve /v1; the state of the
database, Redis and the usage writer is reported in its body (and metrics) with 200."""

import asyncio
import time

import httpx
import orjson
import pytest
from django.conf import settings

from tests.conftest import need


def test_readyz_reports_the_stores_and_the_writer(own_gateway):
    gw = own_gateway()
    response = httpx.get(gw.base_url + "/readyz", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert body["database"]["ok"] and body["redis"]["ok"]
    assert body["catalog"]["loaded"]
    assert {"stream_length", "pending", "dead_letter", "buffered", "spool_files", "running"} <= set(body["usage"])


def test_a_failing_store_is_reported_without_taking_the_replica_out(own_gateway, private_redis):
    gw = own_gateway(REDIS_URL=private_redis.url)
    assert httpx.get(gw.base_url + "/readyz", timeout=10).json()["redis"]["ok"]
    private_redis.stop()
    # The probe is cached for a moment: ask until it has looked again.
    for _ in range(20):
        response = httpx.get(gw.base_url + "/readyz", timeout=10)
        if not response.json()["redis"]["ok"]:
            break
        asyncio.run(asyncio.sleep(0.2))
    assert response.status_code == 200 and response.json()["status"] == "ready"
    assert response.json()["redis"]["ok"] is False
    metrics = httpx.get(gw.base_url + "/metrics", timeout=10).text
    assert 'xrouter_store_up{store="redis"} 0.0' in metrics
    assert "xrouter_usage_dead_letter_total" in metrics


async def _get_readyz() -> tuple[int, dict]:
    from apps.gateway.readiness import readyz

    sent = []

    async def send(message):
        sent.append(message)

    await readyz({"type": "http", "path": "/readyz", "method": "GET"}, None, send)
    return sent[0]["status"], orjson.loads(sent[1]["body"])


@pytest.mark.usefixtures("committed_db")
@pytest.mark.parametrize("state, catalog_age, status", [
    ("serving", 10.0, 200),
    ("starting", 10.0, 503),
    ("draining", 10.0, 503),
    ("serving", None, 503),  # no catalog ever loaded (and the database gives none)
    ("serving", 10_000.0, 503),  # reloads failing, and older than XROUTER_STALE_MAX
])
def test_readyz_is_503_only_when_this_process_cannot_serve(monkeypatch, state, catalog_age, status):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    from apps.gateway import lifecycle, readiness

    monkeypatch.setattr(settings, "REDIS_URL", "")
    monkeypatch.setattr(lifecycle, "state", state)
    failing = catalog_age is not None and catalog_age > 900.0
    monkeypatch.setattr(readiness, "catalog_status", lambda: {
        "loaded": catalog_age is not None, "age_s": catalog_age or 0.0, "stale": failing,
        "last_error": "database down" if failing else None, "usable": catalog_age is not None and not failing})
    monkeypatch.setitem(settings.XROUTER, "CONFIG_TTL", 1e9)  # the probe must not reload it here
    monkeypatch.setitem(settings.XROUTER, "STALE_MAX", 900.0)
    got, body = asyncio.run(_get_readyz())
    assert got == status, body
    assert body["database"]["ok"] is True  # a store's state never decides the status


def test_a_flood_of_readyz_probes_the_stores_about_once_per_second(own_gateway, private_redis):
    gw = own_gateway(REDIS_URL=private_redis.url)
    redis_client = private_redis.client()
    redis_client.config_resetstat()
    started = time.monotonic()
    with httpx.Client(base_url=gw.base_url, timeout=10) as client:
        statuses = {client.get("/readyz").status_code for _ in range(300)}
    elapsed = time.monotonic() - started
    assert statuses == {200}
    probes = redis_client.info("commandstats").get("cmdstat_xlen", {}).get("calls", 0) / 2  # stream + dead letter
    assert 1 <= probes <= elapsed / 1.5 + 2, f"{probes} probes for 300 requests in {elapsed:.1f} s"


def test_readyz_reports_celery_beat_freshness(own_gateway, tmp_path):
    """A real Celery worker with its beat (`celery -A xrouter_project worker -B`) sends the heartbeat."""
    import os
    import subprocess
    import sys
    import uuid

    from tests.conftest import ROOT, _database_url, stop_gateway

    namespace = f"xrbeat{uuid.uuid4().hex[:8]}"
    gw = own_gateway(XROUTER_REDIS_NAMESPACE=namespace)
    before = httpx.get(gw.base_url + "/readyz", timeout=10).json()
    assert before["status"] == "ready" and before["redis"]["beat"] == {"seen": False, "fresh": False}
    env = {**os.environ, "XROUTER_REDIS_NAMESPACE": namespace, "DATABASE_URL": _database_url()}
    worker = subprocess.Popen([sys.executable, "-m", "celery", "-A", "xrouter_project", "worker", "-B", "--pool", "solo",
                               "--loglevel", "warning", "--schedule", str(tmp_path / "beat-schedule")], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            beat = httpx.get(gw.base_url + "/readyz", timeout=10).json()["redis"]["beat"]
            if beat["seen"]:
                break
            time.sleep(0.5)
        assert beat["seen"] and beat["fresh"] and 0 <= beat["age_s"] < 60, beat
    finally:
        stop_gateway(worker)
