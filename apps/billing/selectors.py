"""Reads of spend: statements, spend series, top spenders, month-to-date spend for budgets.

Every sum reads the daily roll-ups for the days that are final (rolled up after they ended) and the raw
usage rows for the others (today, and any day the roll-up task has not finished yet), so a figure is the
same whether or not the roll-up ran, and a month's statement reads about thirty rows per model and key
instead of a million usage rows. Days are calendar days in TIME_ZONE.
"""

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Q, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from apps.accounts.models import Organisation
from apps.keys.models import ApiKey
from apps.usage.models import UsageRecord

from . import money
from .models import DailyRollup, RollupDay, VatRate

TOKENS = ("prompt_tokens", "completion_tokens", "cached_tokens", "reasoning_tokens")
MEASURES = ("requests", *TOKENS, "cost")
GROUPABLE = frozenset({"organisation_id", "api_key_id", "cost_centre", "provider", "model"})
MAX_SERIES_DAYS = 366


def requests_count() -> Count:
    """Requests, not attempts: with one usage row per upstream attempt (a fallback adds rows), a request is
    counted by its first attempt (attempt 0, which a cache hit or a refusal also has)."""
    if any(f.name == "attempt" for f in UsageRecord._meta.concrete_fields):
        return Count("id", filter=Q(attempt=0))
    return Count("id")  # one row per request


def day_bounds(day: datetime.date) -> tuple[datetime.datetime, datetime.datetime]:
    """The instants a calendar day of TIME_ZONE starts and ends (23 or 25 hours long where clocks change)."""
    tz = timezone.get_default_timezone()
    start = datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)
    end = datetime.datetime.combine(day + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz)
    return start, end


def month_start(day: datetime.date) -> datetime.date:
    return day.replace(day=1)


def next_month(month: datetime.date) -> datetime.date:
    return (month.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)


def final_days(start: datetime.date, end: datetime.date) -> set[datetime.date]:
    """Days in [start, end) whose roll-ups are complete: computed after the day ended."""
    return {row.day for row in RollupDay.objects.filter(day__gte=start, day__lt=end)
            if row.computed_at >= day_bounds(row.day)[1]}


def _ranges(days: list[datetime.date]):
    """Consecutive days as [first, last] runs."""
    run = []
    for day in sorted(days):
        if run and day == run[-1] + datetime.timedelta(days=1):
            run.append(day)
            continue
        if run:
            yield run[0], run[-1]
        run = [day]
    if run:
        yield run[0], run[-1]


def sums(start: datetime.date, end: datetime.date, by=(), organisation_ids=None, api_key_ids=None) -> list[dict]:
    """Usage summed per day in [start, end) and per the `by` fields (GROUPABLE): requests, tokens, cost.

    organisation_ids / api_key_ids narrow to those (None: all)."""
    by = tuple(by)
    if not set(by) <= GROUPABLE:
        raise ValueError(f"cannot group by {set(by) - GROUPABLE}")
    final = final_days(start, end)
    totals: dict[tuple, dict] = {}

    def add(key, row):
        into = totals.setdefault(key, dict.fromkeys(MEASURES, 0))
        for name in MEASURES:
            into[name] += row[name] or 0

    rollups = DailyRollup.objects.filter(day__in=final)
    if organisation_ids is not None:
        rollups = rollups.filter(organisation_id__in=list(organisation_ids))
    if api_key_ids is not None:
        rollups = rollups.filter(api_key_id__in=list(api_key_ids))
    for row in rollups.values("day", *by).annotate(**{name: Sum(name) for name in MEASURES}).order_by():
        add((row["day"], *(row[f] for f in by)), row)

    open_days = [start + datetime.timedelta(days=i) for i in range((end - start).days)]
    open_days = [day for day in open_days if day not in final]
    if open_days:
        when = Q()
        for first, last in _ranges(open_days):
            when |= Q(created_at__gte=day_bounds(first)[0], created_at__lt=day_bounds(last)[1])
        raw = UsageRecord.objects.filter(when)
        if organisation_ids is not None:
            raw = raw.filter(organisation_id__in=list(organisation_ids))
        if api_key_ids is not None:
            raw = raw.filter(api_key_id__in=list(api_key_ids))
        raw_by = tuple(dict.fromkeys("api_key_id" if f == "cost_centre" else f for f in by))
        rows = list(raw.annotate(day=TruncDate("created_at")).values("day", *raw_by).annotate(
            requests=requests_count(), **{name: Sum(name) for name in (*TOKENS, "cost")}).order_by())
        centres = {}
        if "cost_centre" in by:
            ids = {row["api_key_id"] for row in rows if row["api_key_id"] is not None}
            centres = dict(ApiKey.objects.filter(id__in=ids).values_list("id", "cost_centre"))
        for row in rows:
            row["cost_centre"] = centres.get(row.get("api_key_id"), "")
            add((row["day"], *(row[f] for f in by)), row)
    return [{"day": key[0], **dict(zip(by, key[1:], strict=True)), **values} for key, values in sorted(
        totals.items(), key=lambda item: tuple("" if v is None else str(v) for v in item[0]))]


def vat_rates() -> list[tuple]:
    """(effective_from, rate) pairs, newest first."""
    return list(VatRate.objects.order_by("-effective_from").values_list("effective_from", "rate"))


@dataclass
class StatementLine:
    label: dict  # e.g. {"provider": …, "model": …} or {"cost_centre": …}
    vat_rate: Decimal
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    cost: Decimal = money.ZERO  # exact, 6 decimals
    amount: Decimal = money.ZERO  # without VAT, to the kopeck
    vat: Decimal = money.ZERO
    total: Decimal = money.ZERO  # with VAT


@dataclass
class Statement:
    organisation_id: int
    organisation_name: str
    month: datetime.date
    by_model: list[StatementLine] = field(default_factory=list)
    by_cost_centre: list[StatementLine] = field(default_factory=list)
    totals: money.Line = money.Line(money.ZERO, money.ZERO, money.ZERO)

    @property
    def complete(self) -> bool:
        """Whether the month is over (a statement of the current month is month-to-date)."""
        return timezone.localdate() >= next_month(self.month)


def _lines(rows, by, rates) -> list[StatementLine]:
    """Day rows folded into one line per `by` value and VAT rate (usage costs include VAT), each rounded."""
    lines: dict[tuple, StatementLine] = {}
    for row in rows:
        rate = money.rate_on(rates, row["day"])
        key = (*(row[f] for f in by), rate)
        line = lines.get(key)
        if line is None:
            line = lines[key] = StatementLine(label={f: row[f] for f in by}, vat_rate=rate)
        for name in MEASURES:
            setattr(line, name, getattr(line, name) + row[name])
    ordered = sorted(lines.values(), key=lambda x: (-x.cost, *(str(v) for v in x.label.values()), x.vat_rate))
    for line in ordered:
        rounded = money.line(line.cost, line.vat_rate, includes_vat=True)
        line.amount, line.vat, line.total = rounded.amount, rounded.vat, rounded.total
    return ordered


def statement(organisation: Organisation, month: datetime.date) -> Statement:
    """An organisation's monthly statement: a line per model (and VAT rate) and a line per cost centre,
    each rounded to the kopeck; the totals are the sums of the model lines."""
    month = month_start(month)
    end = next_month(month)
    rows = sums(month, end, by=("provider", "model", "cost_centre"), organisation_ids=[organisation.id])
    rates = vat_rates()
    by_model = _lines(rows, ("provider", "model"), rates)
    return Statement(organisation_id=organisation.id, organisation_name=organisation.name, month=month,
                     by_model=by_model, by_cost_centre=_lines(rows, ("cost_centre",), rates),
                     totals=money.sum_lines(money.Line(x.amount, x.vat, x.total) for x in by_model))


def top_spenders(month: datetime.date, limit: int = 20) -> list[dict]:
    """Organisations by spend in a month, the biggest first: requests, tokens, cost and total (kopecks)."""
    month = month_start(month)
    per_org: dict = {}
    for row in sums(month, next_month(month), by=("organisation_id",)):
        into = per_org.setdefault(row["organisation_id"], dict.fromkeys(MEASURES, 0))
        for name in MEASURES:
            into[name] += row[name]
    ranked = sorted(per_org.items(), key=lambda item: (-item[1]["cost"], str(item[0])))[:limit]
    names = dict(Organisation.objects.filter(id__in=[i for i, _ in ranked if i is not None]).values_list("id", "name"))
    return [{"organisation_id": org_id, "name": names.get(org_id, ""), **values,
             "total": money.kopecks(values["cost"])} for org_id, values in ranked]


def spend_series(organisation_ids, days: int, by: str | None = None) -> list[dict]:
    """Spend per day over the last `days` days (today included, days without usage as zeros), oldest
    first; with `by` ("provider", "model"…) a row per day and value."""
    days = max(1, min(days, MAX_SERIES_DAYS))
    today = timezone.localdate()
    start = today - datetime.timedelta(days=days - 1)
    rows = sums(start, today + datetime.timedelta(days=1), by=(by,) if by else (), organisation_ids=organisation_ids)
    if by:
        return rows
    found = {row["day"]: row for row in rows}
    return [found.get(start + datetime.timedelta(days=i)) or {"day": start + datetime.timedelta(days=i),
                                                               **dict.fromkeys(MEASURES, 0)}
            for i in range(days)]


def month_to_date(field_name: str, ids, today: datetime.date | None = None) -> dict:
    """This month's spend (roubles, exact) per organisation_id or api_key_id in `ids`."""
    today = today or timezone.localdate()
    narrow = {"organisation_ids" if field_name == "organisation_id" else "api_key_ids": ids}
    spend: dict = {}
    for row in sums(month_start(today), today + datetime.timedelta(days=1), by=(field_name,), **narrow):
        spend[row[field_name]] = spend.get(row[field_name], money.ZERO) + row["cost"]
    return spend
