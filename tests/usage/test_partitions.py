"""The raw usage table on real PostgreSQL: monthly partitions made ahead, retention that drops
whole months, and the (request_id, attempt, created_at) key that makes a redelivered record, or
a worker_lost record whose real row came, land once."""

import datetime
import time
import uuid

import orjson
import pytest
from django.conf import settings
from django.db import connection

from apps.common import signing
from apps.usage import partitions
from apps.usage.models import UsageRecord
from apps.usage.services import usage_record_many
from tests.conftest import _database_url, need

UTC = datetime.UTC


def record(request_id: str, ts: float, attempt: int = 0, **extra) -> dict:
    return {"request_id": request_id, "attempt": attempt, "provider": "mts", "model": "mws-gpt-alpha",
            "prompt_tokens": 10, "completion_tokens": 5, "input_price": "0.5", "output_price": "1", "ts": ts, **extra}


def where(request_id: str) -> str:
    with connection.cursor() as cur:
        cur.execute(f"SELECT tableoid::regclass::text FROM {partitions.TABLE} WHERE request_id = %s", [request_id])
        return cur.fetchone()[0]


@pytest.fixture
def postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("partitions are PostgreSQL's")
    assert partitions.is_partitioned()


def test_months_are_created_ahead_and_take_the_rows_the_default_partition_held(postgres):
    july = datetime.datetime(2031, 7, 15, 12, tzinfo=UTC).timestamp()
    usage_record_many([record("early-bird", july)])
    assert where("early-bird") == partitions.DEFAULT  # no July 2031 partition yet: nothing is refused

    created = partitions.partitions_ensure(2, now=datetime.datetime(2031, 5, 20, tzinfo=UTC))
    assert created == ["usage_usagerecord_p203105", "usage_usagerecord_p203106", "usage_usagerecord_p203107"]
    assert where("early-bird") == "usage_usagerecord_p203107"
    assert partitions.partitions_ensure(2, now=datetime.datetime(2031, 5, 20, tzinfo=UTC)) == []  # idempotent
    usage_record_many([record("later", datetime.datetime(2031, 6, 30, 23, 59, 59, tzinfo=UTC).timestamp())])
    assert where("later") == "usage_usagerecord_p203106"
    # The partition keeps the table's unique key: the same record again is skipped.
    usage_record_many([record("early-bird", july)])
    assert UsageRecord.objects.filter(request_id="early-bird").count() == 1


def test_retention_drops_whole_old_months_and_keeps_the_rest(postgres):
    partitions.partitions_ensure(3, now=datetime.datetime(2019, 1, 1, tzinfo=UTC))  # Jan to Apr 2019
    for month in (1, 2, 3, 4):
        usage_record_many([record(f"old-{month}", datetime.datetime(2019, month, 10, tzinfo=UTC).timestamp())])
    usage_record_many([record("stray", datetime.datetime(2018, 6, 1, tzinfo=UTC).timestamp())])  # DEFAULT partition
    assert partitions.usage_retention_apply(0) == []  # 0 keeps everything

    # Twelve whole months before April 2020: everything before 1 April 2019 goes.
    dropped = partitions.usage_retention_apply(12, now=datetime.datetime(2020, 4, 15, tzinfo=UTC))
    assert dropped == ["usage_usagerecord_p201901", "usage_usagerecord_p201902", "usage_usagerecord_p201903",
                       f"{partitions.DEFAULT}: 1 rows"]
    assert "usage_usagerecord_p201901" not in partitions.partitions()
    assert "usage_usagerecord_p201904" in partitions.partitions()
    assert set(UsageRecord.objects.filter(request_id__in=["old-1", "old-2", "old-3", "old-4", "stray"])
               .values_list("request_id", flat=True)) == {"old-4"}


def test_the_attempt_is_part_of_the_key_and_a_redelivery_lands_once(postgres):
    ts = time.time()
    usage_record_many([record("r1", ts), record("r1", ts + 0.5, attempt=1)])
    usage_record_many([record("r1", ts), record("r1", ts + 0.5, attempt=1)])  # the same stream entry again
    assert list(UsageRecord.objects.filter(request_id="r1").order_by("attempt").values_list("attempt", flat=True)) == [0, 1]


@pytest.fixture
def stream(monkeypatch, django_db_setup):
    need("Redis", bool(settings.REDIS_URL))
    name = f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"
    monkeypatch.setitem(settings.XROUTER, "USAGE_STREAM", name)
    yield name
    import redis

    redis.Redis.from_url(settings.REDIS_URL).delete(name, name + ":lost")


def _push(stream: str, records: list[dict]) -> None:
    import redis

    redis.Redis.from_url(settings.REDIS_URL).xadd(stream, signing.usage_entry(orjson.dumps(records)))


def _rows(prefix: str) -> list[tuple]:
    return list(UsageRecord.objects.filter(request_id__startswith=prefix).order_by("request_id", "attempt")
                .values_list("request_id", "attempt", "status"))


@pytest.mark.parametrize("inserter", ["django", "lean"])
def test_the_real_record_wins_over_a_worker_lost_one_and_a_lost_attempt_lands_after_the_grace(
        stream, django_db_blocker, inserter):
    from apps.usage.journal import lost_record
    from apps.usage.lean_writer import PostgresInserter
    from apps.usage.writer import UsageWriter

    if inserter == "lean" and connection.vendor != "postgresql":
        pytest.skip("the lean writer is for PostgreSQL")
    prefix = f"lost-{uuid.uuid4().hex[:6]}-"
    ts = time.time()
    start = {"request_id": "", "attempt": 0, "ts": ts, "principal": "key", "principal_id": 1, "api_key_id": 1,
             "key_prefix": "abcd1234", "user_id": 1, "organisation_id": None, "endpoint": "chat", "provider": "mts",
             "model": "mws-gpt-alpha", "requested_model": "mts/mws-gpt-alpha", "route": "", "stream": True,
             "prompt_tokens": 40, "input_price": "0.5", "output_price": "1", "cached_input_price": "0",
             "fallback_chain": ""}
    lost = {name: lost_record(list({**start, "request_id": prefix + name}.values())) for name in ("ended", "early", "died")}
    with django_db_blocker.unblock():
        writer = UsageWriter(consumer="grace", lost_grace=1.0, block_ms=50, stream=stream, redis_url=settings.REDIS_URL,
                             **({"insert": PostgresInserter(_database_url())} if inserter == "lean" else {}))
        # "ended": its real row is in before the lost one is read; "early": the lost record is read
        # first (another process replayed it sooner) and its real end comes in the next entry.
        _push(stream, [record(prefix + "ended", ts, status="ok")])
        writer.run_once()
        _push(stream, [lost["ended"], lost["early"], lost["died"]])
        _push(stream, [record(prefix + "early", ts, status="ok")])
        _push(stream, [lost["ended"]])  # a redelivered replay: still one row
        while writer.run_once():
            pass
        assert writer.release_lost() == 0  # nothing due before the grace
        assert _rows(prefix) == [(prefix + "early", 0, "ok"), (prefix + "ended", 0, "ok")]
        time.sleep(1.1)
        assert writer.release_lost() == 3
        assert _rows(prefix) == [(prefix + "died", 0, "worker_lost"), (prefix + "early", 0, "ok"), (prefix + "ended", 0, "ok")]
        died = UsageRecord.objects.get(request_id=prefix + "died")
        assert (died.prompt_tokens, died.completion_tokens, died.estimated, died.key_prefix) == (40, 0, True, "abcd1234")
        assert str(died.cost) == "0.020000"  # 40 × 0.5 / 1000
        assert died.created_at == datetime.datetime.fromtimestamp(ts, UTC)
        UsageRecord.objects.filter(request_id__startswith=prefix).delete()
