"""Issue 8 item 13: a record the database refuses must not stop billing for everyone. A failing
batch is bisected; the refused records go to the dead letter; the others land; the dead ones
can be listed and replayed; a busy writer still claims what dead writers left pending."""

import asyncio
import io
import threading
import time
import uuid

import orjson
import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connections
from prometheus_client import REGISTRY

from apps.common import signing
from apps.usage import buffer
from apps.usage.models import UsageRecord
from tests.conftest import _database_url, need
from tests.usage.test_writer import count, entry, push, stream_name  # noqa: F401 (stream_name: a fixture)


def poison(request_id: str) -> dict:
    """A record as queued before item 12's cleaning (or by another producer): it fits no column."""
    return entry(request_id, provider_request_id="p" * 200)


def dead_letter_total() -> float:
    return REGISTRY.get_sample_value("xrouter_usage_dead_letter_total") or 0.0


def make_writer(kind: str, consumer: str):
    from apps.usage.writer import UsageWriter

    if kind == "django":
        return UsageWriter(consumer=consumer)
    need("PostgreSQL", _database_url().startswith("postgres"))
    from apps.usage.lean_writer import PostgresInserter

    return UsageWriter(consumer=consumer, insert=PostgresInserter(_database_url()))


@pytest.mark.parametrize("kind", ["django", "lean"])
def test_a_refused_record_is_dead_lettered_and_the_rest_of_its_batch_lands(stream_name, django_db_blocker, kind):  # noqa: F811
    prefix = f"dl-{kind}-{uuid.uuid4().hex[:6]}-"
    records = [entry(f"{prefix}{i}") for i in range(40)]
    records[7], records[31] = poison(f"{prefix}bad-7"), poison(f"{prefix}bad-31")
    before = dead_letter_total()
    with django_db_blocker.unblock():
        writer = make_writer(kind, "dl-writer")
        client = redis.Redis.from_url(settings.REDIS_URL)
        client.xadd(stream_name, signing.usage_entry(orjson.dumps(records)))  # the gateway's shape: one entry, many records
        push(stream_name, [poison(f"{prefix}bad-single"), entry(f"{prefix}single-ok")])  # one record per entry
        while writer.run_once():
            pass
        if kind == "lean":
            writer.insert.conn.close()
    assert count(django_db_blocker, prefix) == (39, 39)
    dead = client.xrange(f"{stream_name}:dead")
    assert sorted(orjson.loads(fields[b"r"])["request_id"] for _, fields in dead) == [
        f"{prefix}bad-31", f"{prefix}bad-7", f"{prefix}bad-single"]
    assert all(b"provider_request_id" in fields[b"error"] or fields[b"error"] for _, fields in dead)
    assert client.xpending(stream_name, "usage-writers")["pending"] == 0
    assert dead_letter_total() - before == 3
    client.delete(f"{stream_name}:dead", f"{stream_name}:dead:total")


def test_dead_letters_are_listed_and_replayed_clamped(stream_name, django_db_blocker):  # noqa: F811
    prefix = f"replay-{uuid.uuid4().hex[:6]}-"
    with django_db_blocker.unblock():
        writer = make_writer("django", "replay-writer")
        push(stream_name, [poison(f"{prefix}bad"), entry(f"{prefix}ok")])
        while writer.run_once():
            pass
        listed = io.StringIO()
        call_command("usage_dead_letter", "--list", stdout=listed)
        assert f"{prefix}bad" in listed.getvalue()
        replayed = io.StringIO()
        call_command("usage_dead_letter", "--replay", stdout=replayed)
        row = UsageRecord.objects.get(request_id=f"{prefix}bad")
    assert row.provider_request_id == "p" * 128
    assert count(django_db_blocker, prefix) == (2, 2)
    client = redis.Redis.from_url(settings.REDIS_URL)
    assert client.xlen(f"{stream_name}:dead") == 0
    client.delete(f"{stream_name}:dead", f"{stream_name}:dead:total")


@pytest.mark.usefixtures("committed_db")
def test_without_redis_a_refused_record_is_set_aside_and_the_rest_lands(monkeypatch, tmp_path):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    monkeypatch.setattr(settings, "REDIS_URL", "")
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(tmp_path))
    prefix = f"noredis-{uuid.uuid4().hex[:6]}-"
    monkeypatch.setattr(buffer, "_pending", [entry(f"{prefix}{i}") for i in range(10)] + [poison(f"{prefix}bad")])
    asyncio.run(buffer.flush())
    assert buffer.pending_count() == 0, "the batch was re-queued"
    assert UsageRecord.objects.filter(request_id__startswith=prefix).count() == 10
    dead = [orjson.loads(line) for path in (tmp_path / "dead").iterdir() for line in path.read_bytes().splitlines()]
    assert [d["r"]["request_id"] for d in dead] == [f"{prefix}bad"]


def test_a_busy_writer_claims_what_a_dead_writer_left_pending(stream_name, django_db_blocker):  # noqa: F811
    from apps.usage.writer import GROUP, UsageWriter

    prefix = f"claim-{uuid.uuid4().hex[:6]}-"
    with django_db_blocker.unblock():
        writer = UsageWriter(consumer="busy", claim_idle_ms=300, block_ms=50)
        push(stream_name, [entry(f"{prefix}orphan-{i}") for i in range(5)])
        writer.client.xreadgroup(GROUP, "dead-writer", {stream_name: ">"}, count=5)  # ...and it died
    landed_while_busy = threading.Event()

    def keep_it_busy():
        deadline = time.monotonic() + 8
        n = 0
        while time.monotonic() < deadline:
            push(stream_name, [entry(f"{prefix}busy-{n}")])
            n += 1
            if count(django_db_blocker, f"{prefix}orphan-")[0] == 5:
                landed_while_busy.set()
                break
            time.sleep(0.02)
        writer.running = False
        connections.close_all()  # this thread's own connection

    feeder = threading.Thread(target=keep_it_busy)
    with django_db_blocker.unblock():
        feeder.start()
        writer.run_forever()
    feeder.join()
    assert landed_while_busy.is_set(), "the orphaned entries waited for the writer to become idle or stop"


@pytest.mark.usefixtures("committed_db")
def test_without_redis_dead_letter_files_are_listed_and_replayed(monkeypatch, tmp_path):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    monkeypatch.setattr(settings, "REDIS_URL", "")
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(tmp_path))
    prefix = f"filereplay-{uuid.uuid4().hex[:6]}-"
    monkeypatch.setattr(buffer, "_pending", [entry(f"{prefix}ok"), poison(f"{prefix}bad")])
    asyncio.run(buffer.flush())
    listed = io.StringIO()
    call_command("usage_dead_letter", "--list", stdout=listed)
    assert f"{prefix}bad" in listed.getvalue()
    call_command("usage_dead_letter", "--replay", stdout=io.StringIO())
    assert UsageRecord.objects.get(request_id=f"{prefix}bad").provider_request_id == "p" * 128
    assert list((tmp_path / "dead").iterdir()) == []
