"""Usage writes: idempotent batch inserts keyed on our request id."""

from datetime import UTC, datetime
from decimal import Decimal

from django.db import connection, transaction

from .models import UsageRecord

THOUSAND = Decimal(1000)
MICRO = Decimal("0.000001")


def cost_of(entry: dict) -> Decimal:
    """Roubles: prices are per 1,000 tokens; cached prompt tokens at their own price."""
    prompt = int(entry.get("prompt_tokens") or 0)
    cached = min(int(entry.get("cached_tokens") or 0), prompt)
    completion = int(entry.get("completion_tokens") or 0)
    input_price = Decimal(entry.get("input_price") or "0")
    output_price = Decimal(entry.get("output_price") or "0")
    cached_price = Decimal(entry.get("cached_input_price") or "0")
    total = ((prompt - cached) * input_price + cached * cached_price + completion * output_price) / THOUSAND
    return total.quantize(MICRO)


COLUMNS = [f for f in UsageRecord._meta.concrete_fields if f.name != "id"]
NAMES = [f.name for f in COLUMNS]
DEFAULTS = {f.name: f.get_default() for f in COLUMNS}


def _row(entry: dict) -> dict:
    data = {name: entry[name] for name in NAMES if entry.get(name) is not None}
    data["created_at"] = datetime.fromtimestamp(entry.get("ts") or 0, tz=UTC)
    data["cost"] = Decimal("0") if entry.get("cache_hit") else cost_of(entry)
    return data


def usage_record_many(entries: list[dict]) -> int:
    """Insert a batch; rows whose request_id already exists are skipped (redelivery is harmless)."""
    rows = [_row(e) for e in entries]
    if connection.vendor == "postgresql":
        _copy_insert(rows)
    else:
        UsageRecord.objects.bulk_create([UsageRecord(**r) for r in rows], ignore_conflicts=True, batch_size=500)
    return len(rows)


def _copy_insert(rows: list[dict]) -> None:
    """COPY into a temporary table, then one INSERT … ON CONFLICT DO NOTHING: several times
    cheaper in CPU than bulk_create, which the writer would otherwise spend per request."""
    table = UsageRecord._meta.db_table
    columns = ", ".join(f'"{f.column}"' for f in COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS usage_incoming ON COMMIT DELETE ROWS AS SELECT {columns} FROM {table} WITH NO DATA"
        )
        with cursor.cursor.copy(f"COPY usage_incoming ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row([row.get(name, DEFAULTS[name]) for name in NAMES])
        cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM usage_incoming ON CONFLICT (request_id) DO NOTHING")
