"""Monthly partitions of the raw usage table on PostgreSQL, and the retention that drops them.

Migration 0004 turns `usage_usagerecord` into a table partitioned by RANGE (created_at) (UTC
months, `usage_usagerecord_pYYYYMM`) with a DEFAULT partition. The writer never creates a
partition: a row whose month has none yet lands in the DEFAULT partition, so an insert never
fails for want of one. `usage_partitions_task` (Celery beat) creates the current month and
XROUTER_USAGE_PARTITIONS_AHEAD months ahead, moving any rows the DEFAULT partition holds for a
month into that month's new partition first (PostgreSQL refuses to attach a range the DEFAULT
partition has rows for). `usage_retention_task` drops whole months older than
XROUTER_USAGE_RETENTION_MONTHS (0 keeps everything): a DROP TABLE per month, no row-by-row
DELETE, and the daily roll-ups (another table) are not touched.

The unique key (request_id, attempt, created_at) includes the partition key, as PostgreSQL
requires; created_at is the attempt's start, carried in the record, so a redelivered record hits
the same key. On SQLite the table is a plain table and retention deletes rows.
"""

import datetime
import re

from django.db import connection, transaction

TABLE = "usage_usagerecord"
DEFAULT = f"{TABLE}_default"
MONTHLY = re.compile(rf"^{TABLE}_p(\d{{4}})(\d{{2}})$")


def month_start(day: datetime.datetime | datetime.date) -> datetime.datetime:
    return datetime.datetime(day.year, day.month, 1, tzinfo=datetime.UTC)


def add_months(start: datetime.datetime, months: int) -> datetime.datetime:
    index = start.year * 12 + start.month - 1 + months
    return datetime.datetime(index // 12, index % 12 + 1, 1, tzinfo=datetime.UTC)


def partition_name(start: datetime.datetime) -> str:
    return f"{TABLE}_p{start.year:04d}{start.month:02d}"


def is_partitioned() -> bool:
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_partitioned_table WHERE partrelid = to_regclass(%s)", [TABLE])
        return cur.fetchone() is not None


def partitions() -> dict[str, datetime.datetime]:
    """The monthly partitions that exist: name -> the month's first instant (UTC)."""
    with connection.cursor() as cur:
        cur.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                    "WHERE i.inhparent = to_regclass(%s)", [TABLE])
        found = {}
        for (name,) in cur.fetchall():
            match = MONTHLY.match(name)
            if match:
                found[name] = datetime.datetime(int(match.group(1)), int(match.group(2)), 1, tzinfo=datetime.UTC)
        return found


def create_month(cur, start: datetime.datetime) -> None:
    """One month's partition; rows the DEFAULT partition holds for it move in (one transaction)."""
    name, end = partition_name(start), add_months(start, 1)
    cur.execute(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s)", [start, end])  # nosec B608 # identifiers from our own schema; values are bound
    if not cur.fetchone()[0]:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {name} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)", [start, end])
        return
    # The writer keeps inserting meanwhile: hold the DEFAULT partition for the move (rows of one month).
    cur.execute(f"LOCK TABLE {DEFAULT} IN SHARE ROW EXCLUSIVE MODE")
    cur.execute(f"CREATE TABLE {name} (LIKE {TABLE} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
    cur.execute(f"WITH moved AS (DELETE FROM {DEFAULT} WHERE created_at >= %s AND created_at < %s RETURNING *) "  # nosec B608 # identifiers from our own schema; values are bound
                f"INSERT INTO {name} SELECT * FROM moved", [start, end])
    cur.execute(f"ALTER TABLE {TABLE} ATTACH PARTITION {name} FOR VALUES FROM (%s) TO (%s)", [start, end])


def partitions_ensure(ahead: int, now: datetime.datetime | None = None) -> list[str]:
    """Create the current month's partition and `ahead` more; returns the names created."""
    if not is_partitioned():
        return []
    first = month_start(now or datetime.datetime.now(datetime.UTC))
    existing, created = partitions(), []
    for offset in range(ahead + 1):
        start = add_months(first, offset)
        name = partition_name(start)
        if name in existing:
            continue
        with transaction.atomic(), connection.cursor() as cur:
            create_month(cur, start)
        created.append(name)
    return created


def retention_cutoff(months: int, now: datetime.datetime | None = None) -> datetime.datetime:
    """Rows before this instant are older than `months` whole months and may go."""
    return add_months(month_start(now or datetime.datetime.now(datetime.UTC)), -months)


def usage_retention_apply(months: int, now: datetime.datetime | None = None) -> list[str]:
    """Drop every month that ended before the cutoff (SQLite: delete its rows). Returns what went."""
    if months <= 0:
        return []
    cutoff = retention_cutoff(months, now)
    if not is_partitioned():
        from .models import UsageRecord

        deleted, _ = UsageRecord.objects.filter(created_at__lt=cutoff).delete()
        return [f"{deleted} rows"] if deleted else []
    dropped = []
    for name, start in sorted(partitions().items(), key=lambda item: item[1]):
        if add_months(start, 1) <= cutoff:
            with transaction.atomic(), connection.cursor() as cur:
                cur.execute(f"DROP TABLE {name}")
            dropped.append(name)
    with transaction.atomic(), connection.cursor() as cur:
        cur.execute(f"DELETE FROM {DEFAULT} WHERE created_at < %s", [cutoff])  # nosec B608 # identifiers from our own schema; values are bound
        if cur.rowcount:
            dropped.append(f"{DEFAULT}: {cur.rowcount} rows")
    return dropped


def partition_table(cur, ahead: int) -> None:
    """Migration 0004: the plain table becomes a partitioned one with the same name, columns,
    defaults, checks and indexes, holding the same rows (PostgreSQL 15 has no identity column on a
    partitioned table, so the id takes its values from a sequence of its own)."""
    plain = f"{TABLE}_plain"
    cur.execute(f"ALTER TABLE {TABLE} RENAME TO {plain}")
    cur.execute(f"CREATE TABLE {TABLE} (LIKE {plain} INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE (created_at)")
    cur.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
    cur.execute(f"SELECT min(created_at), max(created_at), coalesce(max(id), 0) FROM {plain}")  # nosec B608 # identifiers from our own schema; values are bound
    oldest, newest, top = cur.fetchone()
    now = datetime.datetime.now(datetime.UTC)
    start, last = month_start(min(oldest or now, now)), add_months(month_start(max(newest or now, now)), ahead)
    while start <= last:
        cur.execute(f"CREATE TABLE {partition_name(start)} PARTITION OF {TABLE} FOR VALUES FROM (%s) TO (%s)",
                    [start, add_months(start, 1)])
        start = add_months(start, 1)
    cur.execute(f"INSERT INTO {TABLE} SELECT * FROM {plain}")  # nosec B608 # identifiers from our own schema; values are bound
    cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s AND indexdef NOT LIKE %s",
                [plain, "CREATE UNIQUE INDEX%"])
    indexes = cur.fetchall()
    cur.execute(f"DROP TABLE {plain}")
    cur.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
    cur.execute(f"SELECT setval('{TABLE}_id_seq', %s + 1, false)", [top])
    cur.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
    for _name, definition in indexes:
        cur.execute(definition.replace(f" ON public.{plain} ", f" ON public.{TABLE} ").replace(f" ON {plain} ", f" ON {TABLE} "))
    cur.execute(f"ALTER TABLE {TABLE} ADD PRIMARY KEY (id, created_at)")
    cur.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT usage_request_attempt UNIQUE (request_id, attempt, created_at)")
