"""Rates as people write them ("60/min", DRF's `SimpleRateThrottle` notation) and the limits a key,
an organisation or a model carries, parsed once when the row is loaded (apps/limits enforces them).

The floor of the import graph: the models that carry limit fields (keys, accounts, providers)
validate with this, and apps/limits reads what it parsed.
"""

import re
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal

from django.core.exceptions import ValidationError
from django.db import models

PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600, "d": 86400,
           "day": 86400}
RATE = re.compile(r"\s*(\d{1,12})\s*/\s*(\d{0,6})\s*([a-z]+)\s*")
RATE_HELP = 'A count per period, e.g. "60/min", "100000/min", "10/s", "1000/h", "5000/day" (also "100/10s").'


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: int

    def within(self, other: "Rate") -> bool:
        """Does this rate allow no more than `other` in any stretch of time? (A child key's against its parent's.)"""
        if self.seconds <= other.seconds:
            return self.count * -(-other.seconds // self.seconds) <= other.count
        return self.count <= other.count

    def __str__(self) -> str:
        if self.seconds % 86400 == 0 and self.seconds // 86400 == 1:
            return f"{self.count}/day"
        names = {1: "s", 60: "min", 3600: "h"}
        if self.seconds in names:
            return f"{self.count}/{names[self.seconds]}"
        return f"{self.count}/{self.seconds}s"


def parse_rate(text: str) -> Rate:
    """"60/min" → Rate(60, 60); ValueError naming the expected form otherwise. A count of 0 refuses everything."""
    match = RATE.fullmatch(text.lower()) if isinstance(text, str) else None
    if match is None or match.group(3) not in PERIODS:
        raise ValueError(f"{text!r} is not a rate. {RATE_HELP}")
    multiple = int(match.group(2) or 1)
    if multiple < 1:
        raise ValueError(f"{text!r}: the period must be at least 1 unit. {RATE_HELP}")
    seconds = multiple * PERIODS[match.group(3)]
    if seconds > 86400:
        raise ValueError(f"{text!r}: a rate's period is at most a day; use the daily or monthly token quota beyond.")
    return Rate(int(match.group(1)), seconds)


def validate_rate(value: str) -> None:
    if value:
        try:
            parse_rate(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None


def per_minute(count: int | None) -> str:
    """The rate string of `--rpm 50` / `--tpm 100000`."""
    return "" if count is None else f"{count}/min"


@dataclass(frozen=True, slots=True)
class Limits:
    """What one key, organisation or model may use; None/0 fields do not limit."""

    requests: Rate | None = None
    tokens: Rate | None = None
    concurrent: int = 0
    tokens_per_day: int = 0
    tokens_per_month: int = 0
    budget: int | None = None  # micro-roubles per calendar month, VAT included (0 refuses all); keys and organisations

    @property
    def limits_tokens(self) -> bool:
        return bool(self.tokens or self.tokens_per_day or self.tokens_per_month or self.budget is not None)

    @classmethod
    def of(cls, row) -> "Limits | None":
        """The limits of a row with LimitFields, or None when it has none (the common case costs nothing)."""
        limits = cls(
            requests=parse_rate(row.requests_rate) if row.requests_rate else None,
            tokens=parse_rate(row.tokens_rate) if row.tokens_rate else None,
            concurrent=row.max_concurrent or 0,
            tokens_per_day=row.tokens_per_day or 0,
            tokens_per_month=row.tokens_per_month or 0,
            budget=micro(getattr(row, "monthly_budget", None)),
        )
        return limits if limits != EMPTY else None


EMPTY = Limits()
LIMIT_FIELDS = ("requests_rate", "tokens_rate", "max_concurrent", "tokens_per_day", "tokens_per_month")
KEY_LIMIT_FIELDS = (*LIMIT_FIELDS, "monthly_budget")  # a key's and an organisation's (a model has no budget)
MICRO = Decimal(1_000_000)


MAX_MODEL_LIMITS = 50  # models a key may carry limits of its own for
INT_LIMIT_FIELDS = ("max_concurrent", "tokens_per_day", "tokens_per_month")


def parse_model_limits(value) -> dict:
    """A key's limits on given models ("per key and model"), as stored: {"<model id>": {"requests_rate":
    "10/min", "tokens_rate": ..., "max_concurrent": ..., "tokens_per_day": ..., "tokens_per_month": ...}},
    the model ids as in /v1/models. Returns {model id: Limits} (entries limiting nothing left out);
    ValueError naming the bad entry otherwise."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ValueError('Per-model limits are an object: {"<model id>": {"requests_rate": "10/min", ...}}.')
    if len(value) > MAX_MODEL_LIMITS:
        raise ValueError(f"At most {MAX_MODEL_LIMITS} models may carry limits of their own.")
    parsed = {}
    for model, spec in value.items():
        if not isinstance(model, str) or not model or len(model) > 200:
            raise ValueError(f"{model!r} is not a model id.")
        if not isinstance(spec, dict):
            raise ValueError(f"The limits of {model!r} are an object of {', '.join(LIMIT_FIELDS)}.")
        if unknown := set(spec) - set(LIMIT_FIELDS):
            raise ValueError(f"{model!r}: unknown limit {sorted(unknown)[0]!r} (known: {', '.join(LIMIT_FIELDS)}).")
        for field in ("requests_rate", "tokens_rate"):
            if spec.get(field) not in (None, "") and not isinstance(spec[field], str):
                raise ValueError(f'{model!r}: {field} is a rate such as "10/min".')
            if spec.get(field):
                try:
                    parse_rate(spec[field])
                except ValueError as exc:
                    raise ValueError(f"{model!r}: {exc}") from None
        for field in INT_LIMIT_FIELDS:
            number = spec.get(field)
            if number is not None and (isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**53):
                raise ValueError(f"{model!r}: {field} is a whole number from 0.")
        limits = Limits.of(_Row(spec))
        if limits is not None:
            parsed[model] = limits
    return parsed


class _Row:
    """A per-model limits object read as a row with LimitFields (Limits.of)."""

    def __init__(self, spec: dict):
        self.spec = spec

    def __getattr__(self, name):
        return self.spec.get(name) or (0 if name in INT_LIMIT_FIELDS else "" if name in LIMIT_FIELDS else None)


def validate_model_limits(value) -> None:
    try:
        parse_model_limits(value)
    except ValueError as exc:
        raise ValidationError(str(exc)) from None


def micro(roubles) -> int | None:
    """Roubles (Decimal; None: no budget) as whole micro-roubles, rounded up: Redis counts integers."""
    if roubles is None:
        return None
    return int((Decimal(roubles) * MICRO).to_integral_value(ROUND_CEILING))


class LimitFields(models.Model):
    """The limit fields, the same on every model they limit (ApiKey, Organisation, ProviderModel).
    Empty means unlimited; calendar days and months are those of TIME_ZONE."""

    requests_rate = models.CharField(max_length=32, blank=True, validators=[validate_rate],
                                     help_text='Requests per period (sliding window), e.g. "60/min". Empty: unlimited.')
    tokens_rate = models.CharField(max_length=32, blank=True, validators=[validate_rate],
                                   help_text='Tokens per period (sliding window), e.g. "100000/min". Empty: unlimited.')
    max_concurrent = models.PositiveIntegerField(null=True, blank=True,
                                                 help_text="Requests in flight at once. Empty: unlimited.")
    tokens_per_day = models.PositiveBigIntegerField(null=True, blank=True,
                                                    help_text="Tokens per calendar day. Empty: unlimited.")
    tokens_per_month = models.PositiveBigIntegerField(null=True, blank=True,
                                                      help_text="Tokens per calendar month. Empty: unlimited.")

    class Meta:
        abstract = True
