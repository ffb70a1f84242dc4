"""Usage writes: idempotent batch inserts keyed on our request id."""

from datetime import UTC, datetime
from decimal import Decimal

from .models import UsageRecord

THOUSAND = Decimal(1000)


def cost_of(entry: dict) -> Decimal:
    """Roubles: prices are per 1,000 tokens; cached prompt tokens at their own price."""
    prompt = int(entry.get("prompt_tokens") or 0)
    cached = min(int(entry.get("cached_tokens") or 0), prompt)
    completion = int(entry.get("completion_tokens") or 0)
    input_price = Decimal(entry.get("input_price") or "0")
    output_price = Decimal(entry.get("output_price") or "0")
    cached_price = Decimal(entry.get("cached_input_price") or "0")
    total = ((prompt - cached) * input_price + cached * cached_price + completion * output_price) / THOUSAND
    return total.quantize(Decimal("0.000001"))


FIELDS = {f.name for f in UsageRecord._meta.concrete_fields} - {"id", "cost", "created_at"}


def usage_record_many(entries: list[dict]) -> int:
    """Insert a batch; rows whose request_id already exists are skipped (redelivery is harmless)."""
    rows = []
    for entry in entries:
        data = {k: v for k, v in entry.items() if k in FIELDS and v is not None}
        data["created_at"] = datetime.fromtimestamp(entry.get("ts") or 0, tz=UTC)
        data["cost"] = Decimal("0") if entry.get("cache_hit") else cost_of(entry)
        rows.append(UsageRecord(**data))
    UsageRecord.objects.bulk_create(rows, ignore_conflicts=True, batch_size=500)
    return len(rows)
