"""Drains the Redis usage stream into the database, exactly once per request id.

A consumer group gives each record to one writer; a record is acknowledged (and deleted)
only after its batch is committed. A writer killed mid-batch leaves its records pending:
on restart it re-reads its own pending entries, and live writers claim those of dead ones.
The insert skips request ids that already exist, so a redelivered record is never doubled.
"""

import logging
import os
import signal
import socket
import time

import orjson
import redis

log = logging.getLogger(__name__)
GROUP = "usage-writers"
CLAIM_IDLE_MS = 60_000


def _django_insert(records: list[dict]) -> None:
    from django.db import close_old_connections

    from .services import usage_record_many

    close_old_connections()
    usage_record_many(records)


class UsageWriter:
    """The drain loop. `insert` stores a batch idempotently: the Django ORM by default, or the
    lean PostgreSQL inserter of `apps.usage.lean_writer` (no Django in that process)."""

    def __init__(self, batch_size=20, block_ms=1000, consumer=None, claim_idle_ms=CLAIM_IDLE_MS,
                 redis_url=None, stream=None, insert=None):
        if redis_url is None or stream is None:
            from django.conf import settings

            redis_url = redis_url or settings.REDIS_URL
            stream = stream or settings.XROUTER["USAGE_STREAM"]
        self.client = redis.Redis.from_url(redis_url)
        self.stream = stream
        self.insert = insert or _django_insert
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.running = True
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def write(self, entries) -> int:
        """Insert then acknowledge one batch of (id, fields) stream entries."""
        if not entries:
            return 0
        records = []
        for _id, fields in entries:
            if b"b" in fields:
                records.extend(orjson.loads(fields[b"b"]))  # a slice of records (the gateway's flush)
            else:
                records.append(orjson.loads(fields[b"r"]))
        self.insert(records)
        ids = [entry_id for entry_id, _ in entries]
        self.client.xack(self.stream, GROUP, *ids)
        self.client.xdel(self.stream, *ids)
        return len(ids)

    def recover(self) -> int:
        """Records this consumer, or a dead one, read but never acknowledged."""
        done = 0
        while True:
            own = self.client.xreadgroup(GROUP, self.consumer, {self.stream: "0"}, count=self.batch_size)
            entries = own[0][1] if own else []
            if not entries:
                break
            done += self.write(entries)
        cursor = "0-0"
        while True:
            cursor, claimed, *_ = self.client.xautoclaim(self.stream, GROUP, self.consumer, self.claim_idle_ms, cursor,
                                                         count=self.batch_size)
            done += self.write(claimed)
            if cursor in (b"0-0", "0-0"):
                return done

    def run_once(self) -> int:
        got = self.client.xreadgroup(GROUP, self.consumer, {self.stream: ">"}, count=self.batch_size, block=self.block_ms)
        return self.write(got[0][1] if got else [])

    def run_forever(self, exit_with_parent: bool = False) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "running", False))
        parent = os.getppid()
        self.recover()
        idle = 0
        while self.running:
            if exit_with_parent and os.getppid() != parent:
                break  # the server that started us is gone (even killed): drain and stop
            try:
                if self.run_once() == 0:
                    idle += 1
                    if idle % 30 == 0:
                        self.recover()
            except Exception:
                # Redis or the database is away: nothing was acknowledged, so nothing is lost.
                log.exception("usage writer failed a batch; retrying")
                time.sleep(1)
        self.recover()  # leave nothing of ours pending on a clean stop
