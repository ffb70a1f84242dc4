"""Reads of usage: the sums the portal charts, and the lookup of one request by its id (a request
has a row per upstream attempt: `request_id` is not unique, `(request_id, attempt)` is).

Every function takes the organisations the reader may see (`organisation_ids`); None means every
organisation, for operators, whose views decide that themselves. Usage rows hold no content
(prompts and answers are never stored), so nothing here can return any.
"""

import datetime
from dataclasses import dataclass

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from .models import UsageRecord

# "requests" counts rows, i.e. upstream attempts (a fallback is two), and what each one cost.
SUMS = {"requests": Count("id"), "tokens": Sum(F("prompt_tokens") + F("completion_tokens")), "spend": Sum("cost")}
MAX_REQUEST_ID = 64  # UsageRecord.request_id's length: a longer id cannot exist


def usage_of(organisation_ids) -> QuerySet:
    qs = UsageRecord.objects.all()
    return qs if organisation_ids is None else qs.filter(organisation_id__in=list(organisation_ids))


def usage_since(organisation_ids, days: int):
    return usage_of(organisation_ids).filter(created_at__gte=timezone.now() - datetime.timedelta(days=days))


def usage_totals(qs) -> dict:
    totals = qs.aggregate(**SUMS)
    return {name: totals[name] or 0 for name in SUMS}


def usage_by_day(qs, days: int) -> list[dict]:
    """One row per day of the last `days` (days without requests too, with zeros), oldest first."""
    rows = {row["day"]: row for row in qs.annotate(day=TruncDate("created_at")).values("day").annotate(**SUMS)}
    today = timezone.localdate()
    series = []
    for offset in range(days - 1, -1, -1):
        day = today - datetime.timedelta(days=offset)
        row = rows.get(day) or {}
        series.append({"day": day, **{name: row.get(name) or 0 for name in SUMS}})
    return series


def usage_by(qs, field: str, limit: int = 20) -> list[dict]:
    """Sums by `field` (model, key_prefix, provider…), the biggest spenders first."""
    return list(qs.values(field).annotate(**SUMS).order_by("-spend", "-requests", field)[:limit])


@dataclass(frozen=True)
class RequestSummary:
    """What may be shown of one request: how it went (its last attempt: the answer the client got,
    or the last failure), what all its attempts cost together, never what it said."""

    request_id: str
    attempts: int
    fallback_chain: str  # the targets tried before the last attempt
    created_at: datetime.datetime
    organisation_id: int | None
    key_prefix: str
    endpoint: str
    requested_model: str
    route: str
    provider: str
    model: str
    stream: bool
    status: str
    http_status: int
    error_type: str
    latency_ms: float
    ttft_ms: float | None
    prompt_tokens: int
    completion_tokens: int
    cost: object
    cache_hit: bool


def request_attempts(request_id: str, organisation_ids=None) -> list[dict]:
    """Every attempt of one request, in order (RequestSummary's fields and `attempt`): empty when there is
    no such request or the reader may not see it. Never content."""
    request_id = request_id.strip().removeprefix("chatcmpl-")
    if not request_id or len(request_id) > MAX_REQUEST_ID:
        return []
    fields = [name for name in RequestSummary.__dataclass_fields__ if name != "attempts"]
    # A request's attempts are bounded by its route's targets and retries; 100 is far above any route.
    return list(usage_of(organisation_ids).filter(request_id=request_id).order_by("attempt", "created_at")
                .values(*fields, "attempt")[:100])


def request_lookup(request_id: str, organisation_ids=None, rows: list[dict] | None = None) -> RequestSummary | None:
    """One request by its `x-request-id` (a chat's `chatcmpl-` id too), if the reader may see it.

    The one lookup of the portal's usage page and the operators' admin: status, latency, route
    and error, never content. None when there is no such request or it is another organisation's
    (the two look the same, so an id's existence does not leak). `rows`: its attempts, if already read."""
    rows = request_attempts(request_id, organisation_ids) if rows is None else rows
    if not rows:
        return None
    last = {k: v for k, v in rows[-1].items() if k != "attempt"}
    totals = {name: sum(row[name] for row in rows) for name in ("prompt_tokens", "completion_tokens", "cost")}
    return RequestSummary(**{**last, **totals, "attempts": len(rows)})
