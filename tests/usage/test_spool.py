"""Issue 8 item 14: usage is not lost when Redis hangs or is down, nor when a flush is cancelled.
Redis here is a redis-server of the test's own, paused (SIGSTOP) or stopped."""

import asyncio
import os
import time
import uuid

import pytest
import redis
from django.conf import settings

from apps.common import redis as shared_redis
from apps.usage import buffer
from tests.usage.test_writer import entry


@pytest.fixture
def on_private_redis(private_redis, monkeypatch, tmp_path):
    monkeypatch.setattr(settings, "REDIS_URL", private_redis.url)
    monkeypatch.setitem(settings.XROUTER, "USAGE_STREAM", f"xrouter:usage:test:{uuid.uuid4().hex[:8]}")
    monkeypatch.setitem(settings.XROUTER, "SPOOL_DIR", str(tmp_path / "spool"))
    monkeypatch.setattr(buffer, "_pending", [])
    return private_redis


def test_a_hanging_redis_fails_a_command_within_seconds(on_private_redis):
    on_private_redis.pause()

    async def ping():
        started = time.monotonic()
        with pytest.raises(redis.RedisError):
            await asyncio.wait_for(shared_redis.client().ping(), 10)
        await shared_redis.aclose()
        return time.monotonic() - started

    assert asyncio.run(ping()) < 3.5  # XROUTER_REDIS_TIMEOUT (2 s) and some slack; redis-py's default is 5 s


def test_a_cancelled_flush_keeps_its_batch(on_private_redis):
    on_private_redis.pause()
    for i in range(7):
        buffer.record(entry(f"cancel-{i}"))

    async def cancelled_flush():
        task = asyncio.create_task(buffer.flush())
        await asyncio.sleep(0.3)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await shared_redis.aclose()

    asyncio.run(cancelled_flush())
    assert buffer.pending_count() == 7


def test_a_batch_redis_cannot_take_is_spooled_and_replayed_once_it_is_back(on_private_redis):
    on_private_redis.stop()
    for i in range(3):
        buffer.record(entry(f"spool-{i}"))
    stream, directory = settings.XROUTER["USAGE_STREAM"], settings.XROUTER["SPOOL_DIR"]

    async def flush_then_replay():
        assert await buffer.flush() == 3
        assert buffer.pending_count() == 0
        assert len(os.listdir(directory)) == 1
        on_private_redis.start()
        await buffer.replay_spool()
        await shared_redis.aclose()

    asyncio.run(flush_then_replay())
    assert os.listdir(directory) == []
    assert on_private_redis.client().xlen(stream) == 1  # one stream entry: the spooled batch


def test_spool_files_are_claimed_by_one_process_and_never_from_a_live_one(tmp_path):
    from apps.usage import spool

    directory = str(tmp_path)
    mine = spool.write(directory, 2**20, [b"[]"])
    live_other = os.path.join(directory, f"usage-{os.getppid()}-1.batch")  # our parent runs
    dead_other = os.path.join(directory, "usage-999999999-2.batch")  # no such pid
    dead_tmp = os.path.join(directory, "usage-999999999-3.tmp")  # a crash mid-write
    for path in (live_other, dead_other, dead_tmp):
        with open(path, "wb") as f:
            f.write(b"[]\n")
    assert sorted(spool.claimable(directory)) == sorted([mine, dead_other])
    assert not os.path.exists(dead_tmp)
    claimed = spool.claim(dead_other)
    assert claimed and spool.claim(dead_other) is None  # a second claimant finds it gone
    with pytest.raises(spool.SpoolFull):
        spool.write(directory, 10, [b"x" * 100])
