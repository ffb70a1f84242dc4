"""`bench/run.py --reports`: billing reports over many usage rows (apps/billing).

In a database of its own (default xrouter_bench_reports, kept between runs: generating 10 million rows
takes minutes), it
  1. migrates, and makes the organisation under test with 20 keys in 5 cost centres;
  2. generates the usage rows missing up to `--rows` inside PostgreSQL (INSERT … SELECT generate_series,
     in chunks of 1 million; refused below 10 GB of free disk): 20 % of them the organisation under
     test's, the rest spread over 199 others, over the 90 days before the first generation;
  3. rolls up every day with the real Celery task (apps.billing.tasks.rollup_day_task, run in process);
  4. times, for the organisation under test, a monthly statement (its busiest month) and the 30-day
     dashboard (the portal's sums: by day, model, key and provider), and the admin index's overview
     (apps/routing/console.py, as of the newest row): 5 runs each, each on a new database
     connection with Django's caches empty ("cold": PostgreSQL's own buffers stay as they are), p95 and max.

Prints one JSON object on its last line (run.py reads it). Standalone: `python bench/reports.py --rows 100000`.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MIN_FREE_BYTES = 10 * 1024**3
CHUNK = 1_000_000
DAYS = 90
BIG_SHARE = 5  # every 5th row is the organisation under test's: 20 %
OTHER_ORGS = 199
MODELS = [("yandexgpt", "yandexgpt", "1.2"), ("yandexgpt", "yandexgpt-lite", "0.2"), ("gigachat", "GigaChat-2", "0.2"),
          ("gigachat", "GigaChat-2-Max", "1.95"), ("mts", "mws-gpt-alpha", "0.5"), ("mts", "QwQ-32B", "0.6"),
          ("tbank", "t-tech/T-pro-it-2.0", "0.4"), ("tbank", "t-tech/T-lite-it-2.1", "0.1")]
RUNS = 5
TARGET_SECONDS = 1.0


def log(msg: str) -> None:
    print(f"[bench reports {time.strftime('%H:%M:%S', time.gmtime())}] {msg}", file=sys.stderr, flush=True)


class ReportsError(Exception):
    pass


def ensure_database(pg_url: str, name: str) -> None:
    import psycopg

    if not name.replace("_", "").isalnum():
        raise ReportsError(f"database name {name!r} must be alphanumeric with underscores")
    with psycopg.connect(f"{pg_url}/postgres", autocommit=True, connect_timeout=3) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
            log(f"created database {name}")


def free_bytes(cursor) -> tuple[int, str]:
    """Free space where PostgreSQL keeps its data (its data directory if this process can see it)."""
    try:
        cursor.execute("SHOW data_directory")
        where = cursor.fetchone()[0]
    except Exception:
        where = ""
    if not where or not os.path.isdir(where):
        where = str(ROOT)
    return shutil.disk_usage(where).free, where


def setup_tenant():
    """The organisation under test, its owner and 20 keys in 5 cost centres (idempotent)."""
    from apps.accounts.models import Membership, Organisation, User
    from apps.keys.models import ApiKey
    from apps.keys.services import key_create

    org, _ = Organisation.objects.get_or_create(name="bench-reports-big")
    user, _ = User.objects.get_or_create(username="bench-reports", defaults={"organisation": org})
    Membership.objects.get_or_create(user=user, organisation=org, defaults={"role": "owner"})
    keys = list(ApiKey.objects.filter(organisation=org).order_by("id").values_list("id", flat=True))
    for i in range(len(keys), 20):
        key, _ = key_create(user=user, name=f"bench-{i}", organisation=org)
        ApiKey.objects.filter(id=key.id).update(cost_centre=f"centre-{i % 5}")
        keys.append(key.id)
    return org, keys


def _columns(expressions: dict) -> tuple[list[str], list[str], list]:
    """Every column of the usage table: ours as SQL expressions, the rest as the model's defaults (the table
    may have gained columns since this was written)."""
    from apps.usage.models import UsageRecord

    names, values, params = [], [], []
    for field in UsageRecord._meta.concrete_fields:
        if field.primary_key:
            continue
        names.append(field.column)
        if field.column in expressions:
            values.append(expressions[field.column])
        else:
            values.append("%s")
            params.append(field.get_default())
    return names, values, params


def generate(target: int, org_id: int, keys: list[int]) -> dict:
    from django.db import connection

    from apps.usage.models import UsageRecord

    table = UsageRecord._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*), min(created_at) FROM {table} WHERE request_id LIKE 'bench-%%'")
        have, first = cursor.fetchone()
        if have >= target:
            return {"rows": have, "generated": 0, "seconds": 0.0}
        free, where = free_bytes(cursor)
        if free < MIN_FREE_BYTES:
            raise ReportsError(f"only {free / 1024**3:.1f} GB free at {where}: generating {target:,} usage rows "
                               f"needs at least {MIN_FREE_BYTES / 1024**3:.0f} GB. Free some space, or pass "
                               "--reports-rows with a smaller number.")
        anchor = first or (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=DAYS))
        span = DAYS * 86400
        models = "ARRAY[" + ",".join(f"'{p}'" for p, _m, _c in MODELS) + "]"
        names = "ARRAY[" + ",".join(f"'{m}'" for _p, m, _c in MODELS) + "]"
        prices = "ARRAY[" + ",".join(c for _p, _m, c in MODELS) + "]::numeric[]"
        key_array = "ARRAY[" + ",".join(str(k) for k in keys) + "]::bigint[]"
        big = f"(i % {BIG_SHARE} = 0)"
        expressions = {
            "request_id": "'bench-' || i",
            "organisation_id": f"CASE WHEN {big} THEN {org_id} ELSE 1000000 + (i % {OTHER_ORGS}) END",
            "api_key_id": f"CASE WHEN {big} THEN ({key_array})[1 + (i / {BIG_SHARE}) % 20] "
                          f"ELSE 10000000 + (i % {OTHER_ORGS}) * 3 + (i / 7) % 3 END",
            "provider": f"({models})[1 + (i / 3) % 8]",
            "model": f"({names})[1 + (i / 3) % 8]",
            "prompt_tokens": "50 + (i * 7919) % 3000",
            "completion_tokens": "10 + (i * 104729) % 800",
            "cached_tokens": "CASE WHEN i % 10 = 0 THEN 40 ELSE 0 END",
            "reasoning_tokens": "0",
            "input_price": f"({prices})[1 + (i / 3) % 8]",
            "output_price": f"({prices})[1 + (i / 3) % 8]",
            "cost": f"round((50 + (i * 7919) % 3000 + 10 + (i * 104729) % 800) * ({prices})[1 + (i / 3) % 8] / 1000, 6)",
            # Spread over the span, newest rows last; the same i always lands on the same instant.
            "created_at": f"%s::timestamptz + make_interval(secs => (i::bigint * 7777) % {span})",
        }
        expressions = {k: v.replace(" % ", " %% ") for k, v in expressions.items()}  # psycopg's placeholders
        columns, values, params = _columns(expressions)
        started = time.monotonic()
        done = have
        while done < target:
            upto = min(done + CHUNK, target)
            sql = (f"INSERT INTO {table} ({', '.join(columns)}) SELECT {', '.join(values)} "
                   f"FROM generate_series(%s::bigint, %s::bigint) AS i")
            # created_at's anchor comes first among the parameters (its place in the SELECT list)
            ordered = []
            defaults = iter(params)
            for column, value in zip(columns, values, strict=True):
                if value == "%s":
                    ordered.append(next(defaults))
                elif column == "created_at":
                    ordered.append(anchor)
            cursor.execute(sql, [*ordered, done + 1, upto])
            done = upto
            log(f"usage rows: {done:,} of {target:,}")
        cursor.execute(f"ANALYZE {table}")
        return {"rows": done, "generated": done - have, "seconds": time.monotonic() - started}


def rollup_all() -> dict:
    from django.db import connection

    from apps.billing.models import RollupDay
    from apps.billing.selectors import day_bounds
    from apps.billing.tasks import rollup_day_task
    from apps.usage.models import UsageRecord

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT min(created_at), max(created_at) FROM {UsageRecord._meta.db_table} "
                       "WHERE request_id LIKE 'bench-%%'")
        low, high = cursor.fetchone()
    from django.utils import timezone

    first, last = timezone.localtime(low).date(), timezone.localtime(high).date()
    final = {r.day for r in RollupDay.objects.filter(day__gte=first, day__lte=last) if r.computed_at >= day_bounds(r.day)[1]}
    started, days = time.monotonic(), 0
    day = first
    while day <= last:
        if day not in final:
            rollup_day_task.apply(args=(day.isoformat(),)).get()
            days += 1
        day += datetime.timedelta(days=1)
    return {"days": days, "seconds": time.monotonic() - started, "first": first.isoformat(), "last": last.isoformat()}


def timed(fn) -> dict:
    from django.db import connection

    times = []
    for _ in range(RUNS):
        connection.close()  # a new connection each run: no prepared plans, no session state
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"runs": [round(t, 4) for t in times], "p95_s": round(p95, 4), "ok": p95 < TARGET_SECONDS}


def measure(org, rollup: dict) -> dict:
    from apps.billing import selectors
    from apps.usage.models import UsageRecord

    org_rows = UsageRecord.objects.filter(organisation_id=org.id, request_id__startswith="bench-").count()
    last = datetime.date.fromisoformat(rollup["last"])
    first = datetime.date.fromisoformat(rollup["first"])
    # the busiest whole month of the data
    month = selectors.month_start(last)
    if selectors.next_month(month) > last and selectors.month_start(first) < month:
        month = selectors.month_start(month - datetime.timedelta(days=1))
    month_rows = UsageRecord.objects.filter(
        organisation_id=org.id, created_at__gte=selectors.day_bounds(month)[0],
        created_at__lt=selectors.day_bounds(selectors.next_month(month))[0]).count()
    start, end = last - datetime.timedelta(days=29), last + datetime.timedelta(days=1)

    def statement():
        s = selectors.statement(org, month)
        assert s.by_model and s.totals.total > 0

    def dashboard():
        # What the portal's usage page sums for 30 days (apps/portal/views.py `_spend`), ending on the
        # data's last day.
        series = selectors.sums(start, end, organisation_ids=[org.id])
        grouped = selectors.sums(start, end, by=("model", "api_key_id", "provider"), organisation_ids=[org.id])
        assert series and grouped

    # The admin index's overview as of the data's newest row (so its last hour and day hold usage): a
    # week of roll-ups by organisation and key, the last hour's raw rows with latency percentiles.
    newest = UsageRecord.objects.filter(request_id__startswith="bench-").order_by("-created_at").values_list(
        "created_at", flat=True).first()

    def console():
        from django.template.loader import render_to_string

        from apps.routing.console import overview

        view = overview(now=newest)
        assert view["week"]["requests"] > 0
        render_to_string("admin/xrouter_overview.html", {"overview": view})

    return {"org_rows": org_rows, "month": f"{month:%Y-%m}", "month_rows": month_rows,
            "statement": timed(statement), "dashboard": timed(dashboard), "console": timed(console)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument("--pg-url", default=os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432"))
    p.add_argument("--db-name", default="xrouter_bench_reports")
    a = p.parse_args(argv)
    if "127.0.0.1" not in a.pg_url and "localhost" not in a.pg_url:
        p.error("the benchmark talks to 127.0.0.1 only")
    try:
        ensure_database(a.pg_url, a.db_name)
        os.environ.update({"DATABASE_URL": f"{a.pg_url}/{a.db_name}", "DJANGO_SETTINGS_MODULE": "xrouter_project.settings",
                           "LOG_LEVEL": "warning", "XROUTER_LOG_JSON": "false"})
        os.environ.pop("REDIS_URL", None)
        os.environ.pop("CELERY_BROKER_URL", None)  # the tasks run in this process (Celery's eager mode)
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", "--noinput", verbosity=0)
        org, keys = setup_tenant()
        generated = generate(a.rows, org.id, keys)
        rollup = rollup_all()
        result = {"rows": generated, "rollup": rollup, **measure(org, rollup)}
    except ReportsError as exc:
        log(f"error: {exc}")
        print(json.dumps({"error": str(exc)}))
        return 2
    result["ok"] = result["statement"]["ok"] and result["dashboard"]["ok"] and result["console"]["ok"] and result["org_rows"] >= min(a.rows // 10, 1_000_000)
    print(json.dumps(result, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
