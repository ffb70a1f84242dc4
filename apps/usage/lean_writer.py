"""The usage writer as a small process of its own: Redis → PostgreSQL without loading Django.

    python -m apps.usage.lean_writer [--exit-with-parent]

Same drain loop as `manage.py usage_writer` (apps/usage/writer.py), with an inserter that
talks to PostgreSQL through psycopg directly: the process needs a third of the memory of a
Django one. The table's columns are read from the database itself, so the model stays the
only definition of the schema. SQLite deployments use `manage.py usage_writer`.
Environment: DATABASE_URL (postgres://…), REDIS_URL, XROUTER_USAGE_STREAM, XROUTER_BUS_HMAC_KEYS (or
DJANGO_SECRET_KEY in development; `serve` passes its keys to the writer it starts).
"""

import argparse
import os
import sys

import psycopg

from apps.common import signing

from .pricing import billed_fields
from .writer import UsageWriter

TABLE = "usage_usagerecord"
EMPTY_BY_TYPE = {"character varying": "", "text": "", "boolean": False}  # for NOT NULL columns a record lacks


class PostgresInserter:
    def __init__(self, dsn: str):
        self.dsn = dsn
        self.conn = None

    def _connect(self):
        # No server-side prepared statements (psycopg prepares a query run five times): behind PgBouncer in
        # transaction mode the next transaction may run on another server connection, where the statement
        # does not exist. The temporary table is created in each batch's own transaction for the same reason.
        self.conn = psycopg.connect(self.dsn, autocommit=False, prepare_threshold=None)
        with self.conn.cursor() as cur:
            cur.execute(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                "WHERE table_name = %s AND column_name <> 'id' ORDER BY ordinal_position",
                (TABLE,),
            )
            rows = cur.fetchall()
        if not rows:
            raise RuntimeError(f"table {TABLE} not found: run `manage.py migrate` first")
        self.names = [name for name, _type, _null in rows]
        self.empty = {name: (None if nullable == "YES" else EMPTY_BY_TYPE.get(dtype, 0)) for name, dtype, nullable in rows}
        self.column_list = ", ".join(f'"{n}"' for n in self.names)
        self.conn.commit()

    def __call__(self, records: list[dict]) -> None:
        if self.conn is None or self.conn.closed:
            self._connect()
        try:
            with self.conn.cursor() as cur:
                cur.execute(f"CREATE TEMP TABLE IF NOT EXISTS usage_incoming ON COMMIT DELETE ROWS AS "  # nosec B608 # identifiers from our own schema; values are bound
                            f"SELECT {self.column_list} FROM {TABLE} WITH NO DATA")
                with cur.copy(f"COPY usage_incoming ({self.column_list}) FROM STDIN") as copy:
                    for record in records:
                        row = {**record, **billed_fields(record)}
                        copy.write_row([row.get(n) if row.get(n) is not None else self.empty[n] for n in self.names])
                cur.execute(f"INSERT INTO {TABLE} ({self.column_list}) SELECT {self.column_list} FROM usage_incoming "  # nosec B608 # identifiers from our own schema; values are bound
                            "ON CONFLICT (request_id, attempt, created_at) DO NOTHING")
            self.conn.commit()
        except Exception:
            self.conn.close()  # reconnect next time; the batch stays unacknowledged and is retried
            raise


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="apps.usage.lean_writer")
    parser.add_argument("--exit-with-parent", action="store_true")
    parser.add_argument("--batch-size", type=int, default=20)
    args = parser.parse_args(argv)
    dsn, redis_url = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if not dsn.startswith(("postgres://", "postgresql://")) or not redis_url:
        print("lean_writer needs DATABASE_URL=postgres://… and REDIS_URL", file=sys.stderr)
        return 2
    try:
        signer = signing.Signer(signing.keys_from_environ())
    except (ValueError, OSError) as exc:
        print(f"lean_writer: {exc}", file=sys.stderr)
        return 2
    writer = UsageWriter(batch_size=args.batch_size, redis_url=redis_url,
                         stream=os.environ.get("XROUTER_USAGE_STREAM")
                         or f"{os.environ.get('XROUTER_REDIS_NAMESPACE') or 'xrouter'}:usage", insert=PostgresInserter(dsn),
                         transient=(psycopg.OperationalError, psycopg.InterfaceError), signer=signer)
    writer.run_forever(exit_with_parent=args.exit_with_parent)
    return 0


if __name__ == "__main__":
    sys.exit(main())
