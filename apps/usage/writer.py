"""Drains the Redis usage stream into the database, exactly once per attempt.

A consumer group gives each record to one writer; a record is acknowledged (and deleted)
only after its batch is committed. A writer killed mid-batch leaves its records pending:
on restart it re-reads its own pending entries, and live writers claim those of dead ones.
The insert skips (request_id, attempt, created_at) keys that already exist: a redelivered
record is never doubled.
A batch the database refuses is bisected: the records it refuses on their own go to the
dead-letter stream (apps/usage/deadletter.py) and the rest land. Pending entries are also
claimed on a timer, not only at start. `xrouter_project/server.py` restarts a writer that exits.

One row per attempt, keyed (request_id, attempt, created_at). An attempt's end record carries
every field, so the usual case is one record, one insert. A `worker_lost` record (the start of an
attempt whose gateway process died, replayed from its journal: apps/usage/journal.py) is not
inserted when read: it waits LOST_GRACE seconds in a Redis sorted set (`<stream>:lost`, scored by
when it is due), then goes in with ON CONFLICT DO NOTHING. The dead process's own end records
entered the stream before its lost starts (buffer.replay_spool replays batches first), and the
grace outlasts CLAIM_IDLE_MS, so a real end record still pending with a dead writer is inserted
first: the real row wins and the lost one is skipped. Rows are never updated.

Every entry must carry a valid signature (apps/common/signing.py): one that does not — written by
something without XROUTER_BUS_HMAC_KEYS — goes to the dead letter unread and is never billed.
"""

import logging
import os
import signal
import socket
import time

import orjson
import redis

from apps.common import signing

from . import deadletter

log = logging.getLogger(__name__)
GROUP = "usage-writers"
CLAIM_IDLE_MS = 60_000
CLAIM_INTERVAL = 30.0  # at most this many seconds between looks for entries dead writers left pending
# Seconds a worker_lost record waits for its attempt's real row: more than CLAIM_IDLE_MS.
LOST_GRACE = float(os.environ.get("XROUTER_USAGE_LOST_GRACE") or 120)
LOST = "worker_lost"


def _django_transient() -> tuple:
    from django.db import InterfaceError, OperationalError

    return (OperationalError, InterfaceError)


def _django_insert(records: list[dict]) -> None:
    from django.db import close_old_connections

    from .services import usage_record_many

    close_old_connections()
    usage_record_many(records)


class UsageWriter:
    """The drain loop. `insert` stores a batch idempotently: the Django ORM by default, or the
    lean PostgreSQL inserter of `apps.usage.lean_writer` (no Django in that process)."""

    def __init__(self, batch_size=20, block_ms=1000, consumer=None, claim_idle_ms=CLAIM_IDLE_MS,
                 redis_url=None, stream=None, insert=None, transient=None, claim_interval=None, lost_grace=None,
                 signer=None):
        if redis_url is None or stream is None:
            from django.conf import settings

            redis_url = redis_url or settings.REDIS_URL
            stream = stream or settings.XROUTER["USAGE_STREAM"]
        # Bounded: a hung Redis makes the loop retry instead of waiting forever (reads block block_ms).
        self.client = redis.Redis.from_url(redis_url, socket_timeout=block_ms / 1000 + 2, socket_connect_timeout=2)
        self.stream = stream
        self.lost_key = f"{stream}:lost"
        self.signer = signer or signing.signer()  # the lean writer passes its own (it has no Django settings)
        self.lost_grace = LOST_GRACE if lost_grace is None else lost_grace
        self.insert = insert or _django_insert
        # Failures of the database itself: the batch waits; only other failures are bisected.
        self.transient = transient if transient is not None else (() if insert else _django_transient())
        # Look for orphans twice per idle time that makes an entry one (and at least every 30 s).
        self.claim_interval = claim_interval if claim_interval is not None else min(CLAIM_INTERVAL, max(claim_idle_ms / 2000, 0.1))
        self.batch_size = batch_size
        self.block_ms = block_ms
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self.claim_idle_ms = claim_idle_ms
        self.running = True
        self.create_group()

    def create_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def write(self, entries) -> int:
        """Insert then acknowledge one batch of (id, fields) stream entries."""
        if not entries:
            return 0
        records, dead, unsigned = [], [], []
        for _id, fields in entries:
            fields = fields or {}
            raw = fields.get(b"b") if b"b" in fields else fields.get(b"r")
            if not self.signer.verify(raw, fields.get(b"s")):
                unsigned.append(raw if isinstance(raw, bytes) else b"")
                continue
            try:
                if b"b" in fields:
                    got = orjson.loads(raw)  # a slice of records (the gateway's flush)
                else:
                    got = [orjson.loads(raw)]
                if not isinstance(got, list) or not all(isinstance(r, dict) for r in got):
                    raise ValueError("not a list of records")
            except (ValueError, KeyError, TypeError) as exc:
                dead.append(({"raw": raw[:100_000].decode("utf-8", "replace")}, f"unreadable stream entry: {exc}"))
                continue
            records.extend(got)
        lost = [r for r in records if r.get("status") == LOST]
        if lost:
            records = [r for r in records if r.get("status") != LOST]
            due = time.time() + self.lost_grace
            self.client.zadd(self.lost_key, {orjson.dumps(r): due for r in lost})
        dead += deadletter.isolate(self.insert, records, self.transient)
        deadletter.to_stream(self.client, self.stream, dead, self.signer, unsigned)
        ids = [entry_id for entry_id, _ in entries]
        self.client.xack(self.stream, GROUP, *ids)
        self.client.xdel(self.stream, *ids)
        return len(ids)

    def release_lost(self) -> int:
        """Insert the worker_lost records whose grace has passed (a real row already there wins)."""
        due = self.client.zrangebyscore(self.lost_key, "-inf", time.time(), start=0, num=self.batch_size * 50)
        if not due:
            return 0
        records, unreadable = [], []
        for raw in due:
            try:
                records.append(orjson.loads(raw))
            except ValueError as exc:  # kept for a person to read, like an unreadable stream entry
                unreadable.append(({"raw": raw[:100_000].decode("utf-8", "replace")}, f"unreadable worker_lost record: {exc}"))
        dead = unreadable + deadletter.isolate(self.insert, records, self.transient)
        deadletter.to_stream(self.client, self.stream, dead, self.signer)
        self.client.zrem(self.lost_key, *due)
        return len(due)

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
        next_claim = 0.0  # at once: what this consumer, or a dead one, left pending
        while self.running:
            if exit_with_parent and os.getppid() != parent:
                break  # the server that started us is gone (even killed): drain and stop
            try:
                if time.monotonic() >= next_claim:
                    self.recover()
                    next_claim = time.monotonic() + self.claim_interval
                self.run_once()
                self.release_lost()
            except Exception as exc:
                # Redis or the database is away: nothing was acknowledged, so nothing is lost.
                log.exception("usage writer failed a batch; retrying")
                time.sleep(1)
                if "NOGROUP" in str(exc):  # Redis restarted without its data: start the stream over
                    try:
                        self.create_group()
                    except redis.RedisError:
                        pass
        try:
            self.recover()  # leave nothing of ours pending on a clean stop
        except Exception:
            log.exception("usage writer could not drain its pending entries at exit; the next writer will")
