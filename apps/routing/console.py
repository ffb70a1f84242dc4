"""The admin index's overview (the operator console): each provider's status, traffic and spend over the
last hour and day, top keys and organisations, open alerts, prepaid balances.

Cheap over any amount of usage: the last hour is an index range of raw usage rows (created_at), the days
come from billing's sums (the daily roll-ups for finished days, raw rows for today only). Breakers are
this process's view, which the bus keeps equal to every other's; breakers set by hand come from the
database."""

import datetime

from django.db import connection
from django.db.models import Avg, Count, Min, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from apps.accounts.models import Organisation
from apps.alerts.models import Alert
from apps.billing.selectors import requests_count, sums
from apps.keys.models import ApiKey
from apps.providers.models import HealthCheck, Provider
from apps.usage.models import UsageRecord

from . import state
from .models import ManualBreaker

HOUR = datetime.timedelta(hours=1)
DAYS = 7  # the window of the top keys and organisations
TOP = 5
ALERTS = 10
PERCENTILES = (0.5, 0.95)
SQLITE_LATENCY_SAMPLE = 5000  # without PostgreSQL's percentile_cont, at most this many latencies a provider


def overview(now: datetime.datetime | None = None) -> dict:
    """Everything the admin index shows, in a handful of queries."""
    now = now or timezone.now()
    hour = _last_hour(now - HOUR)
    today = timezone.localdate(now)
    days = sums(today - datetime.timedelta(days=DAYS - 1), today + datetime.timedelta(days=1),
                by=("organisation_id", "api_key_id"))
    day_rows = [row for row in days if row["day"] == today]
    return {
        "providers": _providers(hour["by_provider"], now),
        "hour": hour["total"],
        "today": {"requests": sum(r["requests"] for r in day_rows), "cost": sum(r["cost"] for r in day_rows)},
        "week": {"requests": sum(r["requests"] for r in days), "cost": sum(r["cost"] for r in days), "days": DAYS},
        "top_keys": _top(days, "api_key_id", _key_names),
        "top_organisations": _top(days, "organisation_id", _organisation_names),
        "alerts": list(Alert.objects.filter(status=Alert.FIRING).order_by("-starts_at")[:ALERTS]),
        "alerts_open": Alert.objects.filter(status=Alert.FIRING).count(),
        "generated_at": now,
    }


def _last_hour(since: datetime.datetime) -> dict:
    rows = UsageRecord.objects.filter(created_at__gte=since)
    by_provider = {r["provider"]: r for r in rows.values("provider").annotate(
        attempts=Count("id"), errors=Count("id", filter=Q(status="error")), requests=requests_count(),
        cost=Sum("cost")).order_by()}
    for provider, (p50, p95) in _latency_percentiles(since).items():
        if provider in by_provider:
            by_provider[provider].update(p50=p50, p95=p95)
    total = {"requests": sum(r["requests"] for r in by_provider.values()),
             "cost": sum((r["cost"] or 0) for r in by_provider.values()),
             "errors": sum(r["errors"] for r in by_provider.values()),
             "attempts": sum(r["attempts"] for r in by_provider.values())}
    return {"by_provider": by_provider, "total": total}


def _latency_percentiles(since: datetime.datetime) -> dict[str, tuple]:
    """provider → (p50, p95) of its successful attempts' latency (ms) since `since`."""
    if connection.vendor == "postgresql":
        table = UsageRecord._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT provider, percentile_cont(%s::float8[]) WITHIN GROUP (ORDER BY latency_ms) FROM {table} "  # nosec B608 # the model's own table name; values are bound
                "WHERE created_at >= %s AND status = 'ok' GROUP BY provider", [list(PERCENTILES), since])
            return {provider: tuple(values) for provider, values in cursor.fetchall()}
    found = {}
    for provider in UsageRecord.objects.filter(created_at__gte=since).values_list("provider", flat=True).distinct():
        values = sorted(UsageRecord.objects.filter(created_at__gte=since, status="ok", provider=provider)
                        .order_by("-created_at").values_list("latency_ms", flat=True)[:SQLITE_LATENCY_SAMPLE])
        if values:
            found[provider] = tuple(values[min(len(values) - 1, int(p * len(values)))] for p in PERCENTILES)
    return found


def _providers(hour: dict, now: datetime.datetime) -> list[dict]:
    latest = HealthCheck.objects.filter(provider=OuterRef("pk")).order_by("-checked_at").values("id")[:1]
    providers = list(Provider.objects.annotate(last_check=Subquery(latest)).order_by("name"))
    checks = HealthCheck.objects.in_bulk([p.last_check for p in providers if p.last_check])
    breakers = state.breaker_view()
    unhealthy = state.unhealthy_providers()
    manual = [b for b in ManualBreaker.objects.all() if b.in_force(now)]
    out = []
    for p in providers:
        stats = hour.get(p.name, {})
        attempts = stats.get("attempts", 0)
        prefix = f"{p.name}/"
        out.append({
            "provider": p,
            "check": checks.get(p.last_check),
            "open_breakers": sorted(t for t, b in breakers.items() if b["open"] and t.startswith(prefix)),
            "unhealthy": p.name in unhealthy,
            "manual": [b for b in manual if b.target == p.name or b.target.startswith(prefix)],
            "attempts": attempts,
            "requests": stats.get("requests", 0),
            "error_rate": stats.get("errors", 0) / attempts if attempts else None,
            "p50": stats.get("p50"),
            "p95": stats.get("p95"),
            "cost": stats.get("cost") or 0,
            "balance": (checks.get(p.last_check).balance if checks.get(p.last_check) else None) or None,
        })
    return out


def _top(rows: list[dict], field: str, names) -> list[dict]:
    totals: dict = {}
    for row in rows:
        into = totals.setdefault(row[field], {"requests": 0, "cost": 0})
        into["requests"] += row["requests"]
        into["cost"] += row["cost"]
    ranked = sorted(((i, t) for i, t in totals.items() if i is not None), key=lambda it: (-it[1]["cost"], -it[1]["requests"]))[:TOP]
    labels = names([i for i, _ in ranked])
    return [{"id": i, "label": labels.get(i, f"#{i} (deleted)"), **t} for i, t in ranked]


def _key_names(ids) -> dict:
    return {i: f"xr-{prefix}… {name}" for i, prefix, name in ApiKey.objects.filter(id__in=ids).values_list("id", "prefix", "name")}


def _organisation_names(ids) -> dict:
    return dict(Organisation.objects.filter(id__in=ids).values_list("id", "name"))


HEALTH_ROWS = 200  # the newest checks listed on a provider's health page (a week holds ~10,000 at one a minute)


def provider_health(provider: Provider, now: datetime.datetime | None = None) -> dict:
    """A provider's health page: its checks over the kept history (uptime, mean latency), the newest ones
    listed, and each of its models' breakers — this process's automatic one and any set by hand."""
    now = now or timezone.now()
    summary = provider.health_checks.aggregate(checks=Count("id"), passed=Count("id", filter=Q(ok=True)),
                                               latency=Avg("latency_ms", filter=Q(ok=True)), since=Min("checked_at"))
    breakers = state.breaker_view()
    prefix = f"{provider.name}/"
    manual = list(ManualBreaker.objects.filter(Q(target=provider.name) | Q(target__startswith=prefix)))
    by_target = {b.target: b for b in manual}
    targets = [{"target": prefix + m.name, "enabled": m.enabled, "automatic": breakers.get(prefix + m.name),
                "manual": by_target.get(prefix + m.name)} for m in provider.models.order_by("name")]
    return {
        "summary": {**summary, "uptime": summary["passed"] / summary["checks"] if summary["checks"] else None},
        "history": list(provider.health_checks.order_by("-checked_at")[:HEALTH_ROWS]),
        "targets": targets,
        "manual": [{"breaker": b, "in_force": b.in_force(now)} for b in manual],
        "unhealthy": provider.name in state.unhealthy_providers(),
    }
