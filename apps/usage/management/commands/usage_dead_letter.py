import os

import orjson
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from apps.common import signing
from apps.usage import deadletter
from apps.usage.fields import usage_clean
from apps.usage.services import usage_record_many

CHUNK = 500


def _records(fields: dict) -> list[dict]:
    """The records a dead-letter entry holds (an unreadable stream entry keeps its raw text)."""
    record = orjson.loads(fields[b"r"] if isinstance(fields, dict) else fields)
    if isinstance(record, dict) and set(record) == {"raw"}:
        try:
            record = orjson.loads(record["raw"])
        except orjson.JSONDecodeError:
            return []
    records = record if isinstance(record, list) else [record]
    return [r for r in records if isinstance(r, dict)]


class Command(BaseCommand):
    help = ("List or replay usage records the database refused (the dead letter: the Redis stream "
            "<usage stream>:dead, or files under XROUTER_SPOOL_DIR/dead without Redis).")
    requires_system_checks = []

    def add_arguments(self, parser):
        action = parser.add_mutually_exclusive_group(required=True)
        action.add_argument("--list", action="store_true", help="show each dead record and why it was refused")
        action.add_argument("--replay", action="store_true",
                            help="insert them again, cleaned to fit the columns (after fixing the cause); "
                                 "those still refused stay")
        parser.add_argument("--limit", type=int, default=100, help="--list: at most this many")

    def handle(self, *args, **opts):
        if settings.REDIS_URL:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=10, socket_connect_timeout=5)
            stream = deadletter.dead_stream(settings.XROUTER["USAGE_STREAM"])
            self._stream(client, stream, opts)
        self._files(deadletter.dead_dir(settings.XROUTER["SPOOL_DIR"]), opts)

    def _show(self, where: str, entry_id: str, fields_record: dict, error: str) -> None:
        request_id = fields_record.get("request_id", "?") if isinstance(fields_record, dict) else "?"
        self.stdout.write(f"{where} {entry_id} request_id={str(request_id)[:80]!r} error={error}")

    def _replay(self, records: list[dict]) -> set[int]:
        """Insert cleaned copies; returns the ids (id()) of the records still refused."""
        cleaned = {id(r): usage_clean(dict(r)) for r in records}
        back = {id(c): key for key, c in cleaned.items()}
        try:
            dead = deadletter.isolate(usage_record_many, list(cleaned.values()), (OperationalError, InterfaceError))
        except Exception as exc:
            raise CommandError(f"the database refused the replay as a whole ({type(exc).__name__}); try again later") from exc
        return {back[id(record)] for record, _ in dead}

    def _stream(self, client, stream: str, opts) -> None:
        shown = replayed = kept = unsigned = 0
        cursor = "-"
        while True:
            entries = client.xrange(stream, min=cursor, max="+", count=CHUNK)
            if cursor != "-":
                entries = [e for e in entries if e[0].decode() != cursor]
            if not entries:
                break
            cursor = entries[-1][0].decode()
            if opts["list"]:
                for entry_id, fields in entries:
                    for record in _records(fields) or [{}]:
                        self._show(stream, entry_id.decode(), record, fields.get(b"error", b"").decode("utf-8", "replace"))
                        shown += 1
                        if shown >= opts["limit"]:
                            return
                continue
            # Only what a writer signed is replayed: an entry refused for its signature, or one written into
            # the dead letter by anyone else, stays (listed) and is never billed.
            sign = signing.signer()
            held = [(entry_id, _records(fields)) for entry_id, fields in entries
                    if sign.verify(fields.get(b"r"), fields.get(b"s"))]
            unsigned += len(entries) - len(held)
            refused = self._replay([r for _, records in held for r in records])
            done = [entry_id for entry_id, records in held if records and not any(id(r) in refused for r in records)]
            if done:
                client.xdel(stream, *done)
            replayed += len(done)
            kept += len(held) - len(done)
        if opts["replay"]:
            self.stdout.write(f"{stream}: {replayed} entries replayed, {kept} still refused (kept), "
                              f"{unsigned} without a writer's signature (kept, never replayed)")
        elif not shown:
            self.stdout.write(f"{stream}: empty")

    def _files(self, directory: str, opts) -> None:
        try:
            names = sorted(n for n in os.listdir(directory) if n.endswith(".jsonl"))
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(directory, name)
            if opts["list"]:
                with open(path, "rb") as f:
                    for n, line in enumerate(f):
                        item = orjson.loads(line)
                        self._show(path, str(n), item.get("r"), item.get("error", ""))
                continue
            claimed = f"{path}.replaying-{os.getpid()}"  # the gateway then appends to a new file
            os.rename(path, claimed)
            with open(claimed, "rb") as f:
                items = [orjson.loads(line) for line in f if line.strip()]
            refused = self._replay([item["r"] for item in items if isinstance(item.get("r"), dict)])
            left = [item for item in items if not isinstance(item.get("r"), dict) or id(item["r"]) in refused]
            if left:
                with open(path, "ab") as f:
                    f.write(b"".join(orjson.dumps(item) + b"\n" for item in left))
            os.unlink(claimed)
            self.stdout.write(f"{path}: {len(items) - len(left)} records replayed, {len(left)} still refused (kept)")
