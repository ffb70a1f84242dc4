"""The usage path: buffer → Redis stream → writer → database, exactly once per attempt."""

import os
import signal
import subprocess
import sys
import time
import uuid

import orjson
import pytest
from django.conf import settings

from apps.common import signing
from apps.usage.models import UsageRecord
from apps.usage.services import cost_of, usage_record_many
from tests.conftest import ROOT, _database_url, need


def entry(request_id: str, **extra) -> dict:
    return {"request_id": request_id, "provider": "gigachat", "model": "GigaChat-2-Max", "prompt_tokens": 1000,
            "completion_tokens": 500, "cached_tokens": 200, "input_price": "1.95", "output_price": "1.95",
            "cached_input_price": "0", "ts": time.time(), **extra}


def test_cost_is_in_roubles_with_cached_tokens_at_their_own_price():
    # (1000 - 200) × 1.95 / 1000 + 500 × 1.95 / 1000 = 1.56 + 0.975
    assert str(cost_of(entry("x"))) == "2.535000"


@pytest.mark.django_db
def test_inserting_a_batch_twice_stores_each_request_once():
    batch = [entry(f"dup-{i}") for i in range(10)]
    usage_record_many(batch)
    usage_record_many(batch + [entry("dup-10")])
    assert UsageRecord.objects.filter(request_id__startswith="dup-").count() == 11


@pytest.fixture
def stream_name(monkeypatch, django_db_setup):  # the writers write to the test database: it must exist
    need("Redis", bool(settings.REDIS_URL))
    name = f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"
    monkeypatch.setitem(settings.XROUTER, "USAGE_STREAM", name)
    yield name
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete(name)


def push(stream: str, entries: list[dict]) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    with client.pipeline(transaction=False) as pipe:
        for e in entries:
            raw = orjson.dumps(e)
            pipe.xadd(stream, {"r": raw, "s": signing.signer().sign(raw)})  # signed, as only XRouter can
        pipe.execute()


def count(django_db_blocker, prefix: str) -> tuple[int, int]:
    with django_db_blocker.unblock():
        rows = UsageRecord.objects.filter(request_id__startswith=prefix)
        return rows.count(), rows.values("request_id").distinct().count()


def test_a_writer_that_died_mid_batch_loses_and_doubles_nothing(stream_name, django_db_blocker):
    from apps.usage.writer import GROUP, UsageWriter

    prefix = f"crash-{uuid.uuid4().hex[:6]}-"
    with django_db_blocker.unblock():
        dead = UsageWriter(consumer="dead-writer")
        push(stream_name, [entry(f"{prefix}{i}") for i in range(50)])
        # The dead writer read 50 records and committed 20 of them, then died before acknowledging.
        got = dead.client.xreadgroup(GROUP, "dead-writer", {stream_name: ">"}, count=50)
        records = [orjson.loads(fields[b"r"]) for _id, fields in got[0][1]]
        usage_record_many(records[:20])
        survivor = UsageWriter(consumer="survivor", claim_idle_ms=0)
        survivor.recover()
    assert count(django_db_blocker, prefix) == (50, 50)
    assert dead.client.xpending(stream_name, GROUP)["pending"] == 0


@pytest.mark.parametrize("command", [
    ["manage.py", "usage_writer", "--batch-size", "20"],
    ["-m", "apps.usage.lean_writer", "--batch-size", "20"],  # what `serve` starts on PostgreSQL
], ids=["django", "lean"])
def test_a_writer_process_killed_with_sigkill_loses_and_doubles_nothing(stream_name, django_db_blocker, command):
    prefix = f"kill-{uuid.uuid4().hex[:6]}-"
    env = {**os.environ, "DATABASE_URL": _database_url(), "XROUTER_USAGE_STREAM": stream_name, "LOG_LEVEL": "WARNING"}
    with django_db_blocker.unblock():
        from apps.usage.writer import UsageWriter

        UsageWriter(consumer="setup")  # creates the stream's consumer group before the first push
    push(stream_name, [entry(f"{prefix}{i}") for i in range(3000)])
    if command[1] == "apps.usage.lean_writer" and not env["DATABASE_URL"].startswith("postgres"):
        pytest.skip("the lean writer is for PostgreSQL")
    writer = subprocess.Popen([sys.executable, *command], cwd=ROOT, env=env)
    deadline = time.monotonic() + 20
    while count(django_db_blocker, prefix)[0] < 400 and time.monotonic() < deadline:
        time.sleep(0.02)
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    push(stream_name, [entry(f"{prefix}{i}") for i in range(3000, 3500)])
    # A new writer under the same consumer name re-reads what the killed one left pending.
    restarted = subprocess.run(
        [sys.executable, "-c", (
            "import django, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'xrouter_project.settings'); django.setup();"
            "from apps.usage.writer import UsageWriter;"
            "w = UsageWriter(consumer='recovery', claim_idle_ms=0); w.recover();"
            "exec(\"while w.run_once(): pass\"); w.recover()"
        )],
        cwd=ROOT, env=env, timeout=120,
    )
    assert restarted.returncode == 0
    assert count(django_db_blocker, prefix) == (3500, 3500)
