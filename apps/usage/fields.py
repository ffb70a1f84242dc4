"""What a usage record may hold: the one place that knows UsageRecord's columns.

Every record is cleaned where it is made (`buffer.record`) and again when a dead-lettered one
is replayed, so no value a provider or a client controls (a 200-character upstream request id,
a count of -1 or 2**40, a NaN latency) can make the database refuse a batch. The limits are
read from the model once, at import; cleaning a well-formed record is a few type and length
checks per field (about a microsecond and a half).
"""

import math
import time
from decimal import Decimal, InvalidOperation

from django.db import models

from .models import UsageRecord
from .pricing import COST_MAX

# PostgreSQL's ranges for the integer columns (SQLite's are wider).
_RANGES = {
    "PositiveIntegerField": (0, 2**31 - 1),
    "PositiveSmallIntegerField": (0, 2**15 - 1),
    "BigIntegerField": (-(2**63), 2**63 - 1),
}

STRINGS: dict[str, int] = {}  # name -> max_length
INTEGERS: dict[str, tuple[int, int, bool]] = {}  # name -> (low, high, nullable)
FLOATS: dict[str, bool] = {}  # name -> nullable
BOOLEANS: list[str] = []
PRICES: dict[str, Decimal] = {}  # name -> the largest value the column holds
for _f in UsageRecord._meta.concrete_fields:
    if _f.name in ("id", "cost", "created_at"):
        continue  # computed by the writer (pricing.billed_fields)
    if isinstance(_f, models.CharField):
        STRINGS[_f.name] = _f.max_length
    elif isinstance(_f, models.BooleanField):
        BOOLEANS.append(_f.name)
    elif isinstance(_f, models.FloatField):
        FLOATS[_f.name] = _f.null
    elif isinstance(_f, models.DecimalField):
        PRICES[_f.name] = Decimal(10) ** (_f.max_digits - _f.decimal_places) - Decimal(10) ** -_f.decimal_places
    elif _f.get_internal_type() in _RANGES:
        INTEGERS[_f.name] = (*_RANGES[_f.get_internal_type()], _f.null)
    else:  # a new column type: teach this module about it
        raise TypeError(f"usage field {_f.name} of type {_f.get_internal_type()} has no cleaning rule")
del _f
_cost = UsageRecord._meta.get_field("cost")
if COST_MAX != Decimal(10) ** (_cost.max_digits - _cost.decimal_places) - Decimal(10) ** -_cost.decimal_places:
    raise TypeError("pricing.COST_MAX no longer matches UsageRecord.cost")
_GOOD_PRICES: set[str] = set()  # the catalog's few price strings, once checked


def _string(value, limit: int) -> str:
    if not isinstance(value, str):
        value = "" if value is None else str(value)
    if "\x00" in value:
        value = value.replace("\x00", "")  # PostgreSQL text cannot hold NUL
    if not value.isascii():
        value = value.encode("utf-8", "replace").decode("utf-8")  # lone surrogates break JSON and COPY
    return value[:limit]


def _integer(value, low: int, high: int, nullable: bool):
    if value is None and nullable:
        return None
    if isinstance(value, bool):
        value = int(value)
    elif isinstance(value, float):
        value = int(value) if math.isfinite(value) else 0
    elif not isinstance(value, int):
        try:
            value = int(str(value).strip())
        except ValueError:
            return None if nullable else 0
    return min(max(value, low), high)


def _float(value, nullable: bool):
    if value is None and nullable:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        value = math.nan
    if not math.isfinite(value) or value < 0:
        return None if nullable else 0.0
    return min(value, 1e12)


def _price(value, high: Decimal) -> str:
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        return "0"
    if not (price.is_finite() and 0 <= price <= high):
        return "0"
    text = str(price)
    if len(_GOOD_PRICES) < 4096:
        _GOOD_PRICES.add(text)
    return text


def _compile_check():
    """`_fits(entry)`: True when every field already fits (the request path's case), as straight-line
    code generated from the column lists: about a microsecond, a third of a loop over them."""
    lines = ["def _fits(entry):", "    get = entry.get"]
    for name, limit in STRINGS.items():
        lines += [f"    v = get({name!r})",
                  f"    if v is not None and (v.__class__ is not str or len(v) > {limit} or not v.isascii() or '\\x00' in v):"
                  " return False"]
    for name, (low, high, nullable) in INTEGERS.items():
        lines += [f"    v = get({name!r}{'' if nullable else ', 0'})",
                  f"    if {'v is not None and ' if nullable else ''}(v.__class__ is not int or not {low} <= v <= {high}): return False"]
    for name, nullable in FLOATS.items():
        lines += [f"    v = get({name!r}{'' if nullable else ', 0.0'})",
                  f"    if {'v is not None and ' if nullable else ''}(v.__class__ is not float or not 0 <= v < 1e12): return False"]
    for name in BOOLEANS:
        lines += [f"    if get({name!r}, False).__class__ is not bool: return False"]
    for name in PRICES:
        lines += [f"    v = get({name!r})", "    if v is not None and (v.__class__ is not str or v not in GOOD_PRICES): return False"]
    lines += ["    v = get('ts')", "    return v.__class__ is float and 0 < v < 32503680000.0"]
    namespace = {"GOOD_PRICES": _GOOD_PRICES}
    exec("\n".join(lines), namespace)  # noqa: S102 (code built from the model's own field list)  # nosec B102 # source built from constants, no input
    return namespace["_fits"]


_fits = _compile_check()


def usage_clean(entry: dict) -> dict:
    """Bring every field of a usage record within its column (in place; returns the record).

    Strings are cut to the column width, counts clamped to the column's range, flags made
    booleans, latencies finite and non-negative, prices valid decimals (else 0), `ts` a sane
    time (else now). Fields the record lacks are left to the writer's defaults."""
    if _fits(entry):
        return entry
    get = entry.get
    for name, limit in STRINGS.items():
        value = get(name)
        if value is not None and (type(value) is not str or len(value) > limit or not value.isascii() or "\x00" in value):
            entry[name] = _string(value, limit)
    for name, (low, high, nullable) in INTEGERS.items():
        value = get(name)
        if name in entry and (type(value) is not int or not low <= value <= high) and not (value is None and nullable):
            entry[name] = _integer(value, low, high, nullable)
    for name, nullable in FLOATS.items():
        value = get(name)
        if name in entry and (type(value) is not float or not 0 <= value < 1e12) and not (value is None and nullable):
            entry[name] = _float(value, nullable)
    for name in BOOLEANS:
        value = get(name)
        if value is not None and type(value) is not bool:
            entry[name] = bool(value)
    for name, high in PRICES.items():
        value = get(name)
        if value is not None and (type(value) is not str or value not in _GOOD_PRICES):
            entry[name] = _price(value, high)
    ts = get("ts")
    if type(ts) is not float or not 0 < ts < 32503680000:  # before year 3000
        entry["ts"] = float(ts) if type(ts) is int and 0 < ts < 32503680000 else time.time()
    return entry
