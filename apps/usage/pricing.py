"""What a request cost, in roubles (no Django here: the lean writer uses it too)."""

from datetime import UTC, datetime
from decimal import Decimal

THOUSAND = Decimal(1000)
MICRO = Decimal("0.000001")
COST_MAX = Decimal("9999999999.999999")  # UsageRecord.cost (16 digits, 6 decimals); fields.py checks it


def cost_of(entry: dict) -> Decimal:
    """Roubles: prices are per 1,000 tokens; cached prompt tokens at their own price."""
    prompt = int(entry.get("prompt_tokens") or 0)
    cached = min(int(entry.get("cached_tokens") or 0), prompt)
    completion = int(entry.get("completion_tokens") or 0)
    input_price = Decimal(entry.get("input_price") or "0")
    output_price = Decimal(entry.get("output_price") or "0")
    cached_price = Decimal(entry.get("cached_input_price") or "0")
    total = ((prompt - cached) * input_price + cached * cached_price + completion * output_price) / THOUSAND
    return min(total, COST_MAX).quantize(MICRO)


def billed_fields(entry: dict) -> dict:
    """The computed columns of a usage row: when it happened and what it cost."""
    return {
        "created_at": datetime.fromtimestamp(entry.get("ts") or 0, tz=UTC),
        "cost": Decimal("0") if entry.get("cache_hit") else cost_of(entry),
    }
