"""Statements, roll-ups and spend: against a hand-computed fixture and against SQL over the raw rows
(PostgreSQL), to the kopeck."""

import datetime
import random
from decimal import Decimal as D

import pytest
from django.db import connection
from django.utils import timezone

from apps.billing import selectors, services
from apps.billing.documents import statement_csv
from apps.billing.models import DailyRollup, RollupDay
from apps.keys.services import key_create

from .conftest import at, member, usage

OCTOBER = datetime.date(2026, 10, 1)

# 20 lines, one model each: (exact cost of the line's rows, amount without VAT, VAT at 22%, total).
# Worked by hand: total = cost rounded half up; VAT = total × 22/122 rounded; amount = total − VAT.
FIXTURE = [
    (["0.004999"], "0.00", "0.00", "0.00"),
    (["0.002500", "0.002500"], "0.01", "0.00", "0.01"),  # rows summed first: each alone would round to 0.00
    (["0.014999"], "0.01", "0.00", "0.01"),
    (["1.234500"], "1.01", "0.22", "1.23"),  # 0.0045 rounds down
    (["1.235000"], "1.02", "0.22", "1.24"),
    (["0.333333"], "0.27", "0.06", "0.33"),
    (["0.666667"], "0.55", "0.12", "0.67"),
    (["12.345678"], "10.12", "2.23", "12.35"),
    (["99.994999"], "81.96", "18.03", "99.99"),
    (["49.997500", "49.997500"], "81.97", "18.03", "100.00"),  # 100 × 22/122 = 18.0328
    (["0.000001"], "0.00", "0.00", "0.00"),
    (["7.777777"], "6.38", "1.40", "7.78"),
    (["3.141592"], "2.57", "0.57", "3.14"),
    (["2.718281"], "2.23", "0.49", "2.72"),
    (["25.062500", "25.062500"], "41.09", "9.04", "50.13"),
    (["0.010000"], "0.01", "0.00", "0.01"),
    (["1000.004999"], "819.67", "180.33", "1000.00"),
    (["0.999999"], "0.82", "0.18", "1.00"),
    (["45.675000"], "37.44", "8.24", "45.68"),
    (["0.004500"], "0.00", "0.00", "0.00"),
]
FIXTURE_TOTALS = (D("1087.13"), D("239.16"), D("1326.29"))


def _fixture(org):
    for i, (costs, *_expected) in enumerate(FIXTURE, 1):
        for j, cost in enumerate(costs):
            usage(org, cost, at(OCTOBER + datetime.timedelta(days=(i + j) % 31), hour=(i * 7) % 24), model=f"m{i:02}")


@pytest.mark.django_db
@pytest.mark.parametrize("rolled_up", [False, True])
def test_twenty_line_fixture_to_the_kopeck(org, rolled_up):
    _fixture(org)
    usage(org, "5", at(datetime.date(2026, 9, 30), 23, 59), model="m01")  # September, and November (MSK):
    usage(org, "5", at(datetime.date(2026, 11, 1), 0, 0), model="m01")  # neither belongs to October
    if rolled_up:
        for offset in range(-1, 33):
            services.rollup_day(OCTOBER + datetime.timedelta(days=offset))
        assert DailyRollup.objects.filter(organisation_id=org.id, day__month=10).exists()
    statement = selectors.statement(org, OCTOBER)
    got = {line.label["model"]: (line.amount, line.vat, line.total, line.vat_rate) for line in statement.by_model}
    expected = {f"m{i:02}": (D(a), D(v), D(t), D("22")) for i, (_c, a, v, t) in enumerate(FIXTURE, 1)}
    assert got == expected
    assert (statement.totals.amount, statement.totals.vat, statement.totals.total) == FIXTURE_TOTALS
    assert statement.complete
    assert [line.total for line in statement.by_cost_centre] == [D("1326.29")]  # one line: no cost centre


def _sql_lines(organisation_id, month, next_month, cost_centre=False):
    """Independently of the app: per-line rounding in SQL over the raw rows, days in Europe/Moscow."""
    group = "coalesce(k.cost_centre, '')" if cost_centre else "u.provider || '/' || u.model"
    with connection.cursor() as cursor:
        cursor.execute(f"""
            SELECT {group} AS line, round(sum(u.cost), 2) AS total,
                   round(round(sum(u.cost), 2) * 22 / 122, 2) AS vat, sum(u.prompt_tokens), count(*)
            FROM usage_usagerecord u LEFT JOIN keys_apikey k ON k.id = u.api_key_id
            WHERE u.organisation_id = %s
              AND (u.created_at AT TIME ZONE 'Europe/Moscow') >= %s
              AND (u.created_at AT TIME ZONE 'Europe/Moscow') < %s
            GROUP BY 1""", [organisation_id, month, next_month])
        return {line: (total, vat, prompt, count) for line, total, vat, prompt, count in cursor.fetchall()}


@pytest.mark.django_db
def test_statement_matches_sql_over_raw_rows(org):
    assert connection.vendor == "postgresql"
    alice = member(org, "owner")
    research, _ = key_create(user=alice, name="research", organisation=org)
    research.cost_centre = "research"
    research.save(update_fields=["cost_centre"])
    sales, _ = key_create(user=alice, name="sales", organisation=org)
    sales.cost_centre = "sales"
    sales.save(update_fields=["cost_centre"])
    rng = random.Random(10)
    models = [("yandexgpt", "yandexgpt"), ("yandexgpt", "yandexgpt-lite"), ("gigachat", "GigaChat-2"), ("mts", "gpt-4o")]
    start = datetime.datetime(2026, 9, 30, 20, 0, tzinfo=datetime.UTC)  # 23:00 MSK on 30 September
    for _ in range(600):
        provider, model = rng.choice(models)
        usage(org, D(rng.randrange(0, 5_000_000)) / 1_000_000, start + datetime.timedelta(minutes=rng.randrange(0, 45_000)),
              key=rng.choice([research, sales, None]), provider=provider, model=model, prompt=rng.randrange(1, 4000))
    for day in (OCTOBER + datetime.timedelta(days=i) for i in range(0, 31, 2)):  # half the days rolled up
        services.rollup_day(day)
    statement = selectors.statement(org, OCTOBER)
    sql = _sql_lines(org.id, OCTOBER, datetime.date(2026, 11, 1))
    got = {f"{x.label['provider']}/{x.label['model']}": (x.total, x.vat, x.prompt_tokens, x.requests)
           for x in statement.by_model}
    assert got == sql
    assert statement.totals.total == sum(total for total, *_ in sql.values())
    by_centre = _sql_lines(org.id, OCTOBER, datetime.date(2026, 11, 1), cost_centre=True)
    assert {x.label["cost_centre"]: (x.total, x.vat, x.prompt_tokens, x.requests)
            for x in statement.by_cost_centre} == by_centre
    assert set(by_centre) == {"", "research", "sales"}


@pytest.mark.django_db
def test_vat_rate_of_the_statement_month(org):
    usage(org, "120", at(datetime.date(2025, 12, 31), 23, 30))
    usage(org, "122", at(datetime.date(2026, 1, 1), 0, 30))
    december = selectors.statement(org, datetime.date(2025, 12, 1))
    assert [(x.vat_rate, x.amount, x.vat, x.total) for x in december.by_model] == [(D("20"), D("100.00"), D("20.00"), D("120.00"))]
    january = selectors.statement(org, datetime.date(2026, 1, 1))
    assert [(x.vat_rate, x.amount, x.vat, x.total) for x in january.by_model] == [(D("22"), D("100.00"), D("22.00"), D("122.00"))]


@pytest.mark.django_db
def test_rollup_is_idempotent_and_replaces_the_day(org):
    alice = member(org, "owner")
    key, _ = key_create(user=alice, name="k", organisation=org)
    key.cost_centre = "ops"
    key.save(update_fields=["cost_centre"])
    day = datetime.date(2026, 10, 5)
    usage(org, "1.000001", at(day, 1), key=key, prompt=10, completion=5, cached=2, reasoning=3)
    usage(org, "2.000002", at(day, 23, 59), key=key, prompt=20, completion=6)
    usage(org, "9", at(day + datetime.timedelta(days=1), 0, 0), key=key)  # the next day (MSK)
    services.rollup_day(day)
    services.rollup_day(day)
    rows = list(DailyRollup.objects.filter(organisation_id=org.id, day=day).values(
        "api_key_id", "cost_centre", "provider", "model", "requests", "prompt_tokens", "completion_tokens",
        "cached_tokens", "reasoning_tokens", "cost"))
    assert rows == [{"api_key_id": key.id, "cost_centre": "ops", "provider": "yandexgpt", "model": "yandexgpt",
                     "requests": 2, "prompt_tokens": 30, "completion_tokens": 11, "cached_tokens": 2,
                     "reasoning_tokens": 3, "cost": D("3.000003")}]
    usage(org, "0.5", at(day, 12))  # a late row, no key
    services.rollup_day(day)
    assert DailyRollup.objects.filter(organisation_id=org.id, day=day).count() == 2
    assert sum(r.cost for r in DailyRollup.objects.filter(organisation_id=org.id, day=day)) == D("3.500003")
    assert RollupDay.objects.get(day=day).computed_at > selectors.day_bounds(day)[1]
    # Usage retention drops the raw rows: recomputing the day keeps its roll-ups, and reports still see it.
    from apps.usage.models import UsageRecord

    UsageRecord.objects.filter(created_at__gte=selectors.day_bounds(day)[0],
                               created_at__lt=selectors.day_bounds(day)[1]).delete()
    assert services.rollup_day(day) == 2
    assert selectors.month_to_date("organisation_id", [org.id], today=day) == {org.id: D("3.500003")}


@pytest.mark.django_db
def test_today_is_read_from_raw_rows_even_after_a_rollup(org):
    today = timezone.localdate()
    usage(org, "1", timezone.now() - datetime.timedelta(seconds=5))
    services.rollup_day(today)  # not final: today has not ended
    usage(org, "2", timezone.now())
    series = selectors.spend_series([org.id], 3)
    assert [row["day"] for row in series] == [today - datetime.timedelta(days=n) for n in (2, 1, 0)]
    assert series[-1]["cost"] == D("3") and series[-1]["requests"] == 2
    assert selectors.month_to_date("organisation_id", [org.id]) == {org.id: D("3")}


@pytest.mark.django_db
def test_top_spenders_and_csv(org, db):
    from apps.accounts.models import Organisation

    other = Organisation.objects.create(name=f"{org.name}-other")
    usage(org, "10.005", at(datetime.date(2026, 10, 3)))
    usage(other, "20", at(datetime.date(2026, 10, 4)))
    top = [row for row in selectors.top_spenders(OCTOBER) if row["organisation_id"] in (org.id, other.id)]
    assert [(r["name"], r["total"]) for r in top] == [(other.name, D("20.00")), (org.name, D("10.01"))]
    text = statement_csv(selectors.statement(org, OCTOBER))
    assert "model,yandexgpt,yandexgpt,,22.00,1,100,50,0,0,8.20,1.81,10.01" in text.replace("\r", "")
    assert text.strip().splitlines()[-1] == "total,,,,,,,,,,8.20,1.81,10.01"



@pytest.mark.django_db
def test_rollup_command_and_beat_tasks(org):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    from apps.billing import tasks

    usage(org, "1", at(datetime.date(2026, 10, 7)))
    call_command("billing_rollup", "--from", "2026-10-06", "--to", "2026-10-08")
    assert DailyRollup.objects.filter(organisation_id=org.id, day=datetime.date(2026, 10, 7)).count() == 1
    with pytest.raises(CommandError):
        call_command("billing_rollup", "--from", "2026-10-08", "--to", "2026-10-06")
    today = timezone.localdate()
    yesterday = today - datetime.timedelta(days=1)
    usage(org, "2", at(yesterday, 23, 59))
    usage(org, "3", timezone.now())
    RollupDay.objects.filter(day__gte=today - datetime.timedelta(days=7)).delete()
    assert len(tasks.rollup_recent_task.apply().get()) == 7  # the last 7 days, none settled yet
    assert DailyRollup.objects.filter(organisation_id=org.id, day=yesterday).get().cost == D("2")
    assert not DailyRollup.objects.filter(day=today).exists()  # today is read from the raw rows
    # Settled: rolled up over an hour after they ended (yesterday not yet, in the first hour of today).
    unsettled = timezone.now() < selectors.day_bounds(yesterday)[1] + services.ROLLUP_SETTLE
    assert tasks.rollup_recent_task.apply().get() == ([yesterday.isoformat()] if unsettled else [])
    assert tasks.current_prices_task.apply().get() >= 0
    assert tasks.budget_notices_task.apply().get() == 0
