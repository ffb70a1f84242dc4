"""Writes of billing: the price in effect, daily roll-ups, budget notices."""

import datetime
import logging
from decimal import Decimal

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from apps.accounts.models import Membership, Organisation
from apps.keys.models import ApiKey
from apps.providers.models import ProviderModel
from apps.providers.services import config_announce
from apps.usage.models import UsageRecord

from . import money, selectors
from .models import BillingSettings, BudgetNotice, DailyRollup, ModelPrice, RollupDay

log = logging.getLogger(__name__)
PRICE_FIELDS = ("input_price", "output_price", "cached_input_price")


# --- prices ---

def price_in_effect(model_id: int, day: datetime.date) -> ModelPrice | None:
    return ModelPrice.objects.filter(model_id=model_id, effective_from__lte=day).order_by("-effective_from").first()


def _gross(price: ModelPrice, rate) -> tuple:
    """(input, output, cached input) per 1,000 tokens, VAT included at `rate`."""
    values = tuple(getattr(price, name) for name in PRICE_FIELDS)
    if price.includes_vat:
        return values
    return tuple(None if value is None else money.with_vat(value, rate) for value in values)


def current_prices_apply(today: datetime.date | None = None) -> int:
    """Make each ProviderModel's price fields the price in effect today, VAT included (the gateway and the
    limiter read those, from the catalog they load). A price without VAT gets today's rate added. Models
    without price rows keep their fields as entered. Returns how many models changed; if any did, every
    gateway reloads its catalog once this commits."""
    today = today or timezone.localdate()
    rate = money.rate_on(selectors.vat_rates(), today)
    in_effect = {}
    for price in ModelPrice.objects.filter(effective_from__lte=today).order_by("model_id", "effective_from"):
        in_effect[price.model_id] = price  # the last one by date wins
    changed = 0
    with transaction.atomic():
        for model in ProviderModel.objects.select_for_update().filter(id__in=in_effect):
            price = in_effect[model.id]
            wanted = dict(zip(PRICE_FIELDS, _gross(price, rate), strict=True))
            if any(getattr(model, name) != value for name, value in wanted.items()):
                for name, value in wanted.items():
                    setattr(model, name, value)
                model.save(update_fields=list(PRICE_FIELDS))
                changed += 1
        if changed:
            config_announce()
    return changed


def price_save(price: ModelPrice) -> ModelPrice:
    """Save a price row and apply it at once if it is already in effect."""
    with transaction.atomic():
        price.save()
        current_prices_apply()
    return price


def prices_import(models: dict) -> int:
    """import_config's prices: {(provider, model name): ModelSpec}. A model's `prices:` rows are written by
    date (a row of the same date is replaced; rows of other dates stay); a model with only the plain price
    fields gets them as a price with VAT from today, unless that is the price in effect already. Runs
    inside import_config's transaction. Returns the rows written."""
    today = timezone.localdate()
    rate = money.rate_on(selectors.vat_rates(), today)
    written = 0
    for (provider, name), spec in models.items():
        model = ProviderModel.objects.get(provider__name=provider, name=name)
        rows = [(p.effective_from, p.input_price, p.output_price, p.cached_input_price, p.includes_vat, p.note)
                for p in spec.prices]
        if not rows:
            plain = (spec.input_price, spec.output_price, spec.cached_input_price)
            current = price_in_effect(model.id, today)
            if current is None and not any(plain):
                continue  # no price at all: nothing to record
            if current is not None and _gross(current, rate) == plain:
                continue  # the price in effect already (an export_config file imported back)
            rows = [(today, *plain, True, spec.price_note)]
        for effective_from, input_price, output_price, cached, includes_vat, note in rows:
            ModelPrice.objects.update_or_create(model=model, effective_from=effective_from, defaults={
                "input_price": input_price, "output_price": output_price, "cached_input_price": cached,
                "includes_vat": includes_vat, "note": note})
            written += 1
    current_prices_apply(today)
    return written


# --- roll-ups ---



def rollup_day(day: datetime.date) -> int:
    """Replace `day`'s roll-ups with sums of its usage rows (idempotent: recomputing a day replaces it).

    The cost centre is the key's at the time of the roll-up. A day whose usage rows are all gone (usage
    retention dropped them) keeps the roll-ups it has: they are then the only record. Returns the number
    of roll-up rows."""
    start, end = selectors.day_bounds(day)
    with transaction.atomic():
        # The day's row first: it serialises two roll-ups of the same day, and each sums the rows only once
        # it holds it (one that summed before waiting would replace the other's roll-up with an older sum).
        RollupDay.objects.select_for_update().get_or_create(day=day, defaults={"computed_at": timezone.now()})
        computed_at = timezone.now()
        rows = list(UsageRecord.objects.filter(created_at__gte=start, created_at__lt=end)
                    .values("organisation_id", "api_key_id", "provider", "model")
                    .annotate(requests=selectors.requests_count(), **{name: Sum(name) for name in (*selectors.TOKENS, "cost")})
                    .order_by())
        if not rows and DailyRollup.objects.filter(day=day).exists():
            log.info("roll-up of %s kept: its usage rows are gone", day)
            return DailyRollup.objects.filter(day=day).count()
        key_ids = {row["api_key_id"] for row in rows if row["api_key_id"] is not None}
        centres = dict(ApiKey.objects.filter(id__in=key_ids).values_list("id", "cost_centre"))
        merged: dict[tuple, dict] = {}
        for row in rows:
            key = (row["organisation_id"], row["api_key_id"], centres.get(row["api_key_id"], ""), row["provider"],
                   row["model"])
            into = merged.setdefault(key, dict.fromkeys(selectors.MEASURES, 0))
            for name in selectors.MEASURES:
                into[name] += row[name] or 0
        DailyRollup.objects.filter(day=day).delete()
        DailyRollup.objects.bulk_create([
            DailyRollup(day=day, organisation_id=org, api_key_id=key_id, cost_centre=centre, provider=provider,
                        model=model, **values)
            for (org, key_id, centre, provider, model), values in merged.items()], batch_size=2000)
        RollupDay.objects.filter(day=day).update(computed_at=computed_at, rows=len(merged))
    return len(merged)


ROLLUP_RECENT_DAYS = 7
ROLLUP_SETTLE = datetime.timedelta(hours=1)


def rollup_pending(today: datetime.date) -> list[datetime.date]:
    """Roll up each of the ROLLUP_RECENT_DAYS days before `today` whose last roll-up ran less than
    ROLLUP_SETTLE after the day ended (or never ran)."""
    start = today - datetime.timedelta(days=ROLLUP_RECENT_DAYS)
    done = dict(RollupDay.objects.filter(day__gte=start, day__lt=today).values_list("day", "computed_at"))
    pending = [start + datetime.timedelta(days=i) for i in range(ROLLUP_RECENT_DAYS)]
    pending = [day for day in pending if day not in done or done[day] < selectors.day_bounds(day)[1] + ROLLUP_SETTLE]
    for day in pending:
        rollup_day(day)
    return pending


# --- budget notices ---

def _thresholds(organisation_ids) -> dict:
    found = {s.organisation_id: s.threshold_list()
             for s in BillingSettings.objects.filter(organisation_id__in=organisation_ids)}
    return {org_id: found.get(org_id, list(BillingSettings().threshold_list())) for org_id in organisation_ids}


def _crossed(spend: Decimal, budget: Decimal, thresholds: list[int]) -> list[int]:
    if budget is None:
        return []
    if budget <= 0:
        return list(thresholds) if spend > 0 else []
    return [t for t in thresholds if spend * 100 >= budget * t]


def budget_notices_check(today: datetime.date | None = None) -> list[BudgetNotice]:
    """Month-to-date spend against each organisation's and key's monthly budget: each threshold crossed is
    noticed once per month (BudgetNotice's unique row, made before sending), by e-mail to the
    organisation's owners and billing viewers and by its webhook. Returns the notices made now."""
    today = today or timezone.localdate()
    month = selectors.month_start(today)
    organisations = dict(Organisation.objects.filter(monthly_budget__isnull=False, is_active=True)
                         .values_list("id", "monthly_budget"))
    keys = {k["id"]: k for k in ApiKey.objects.filter(monthly_budget__isnull=False, revoked_at__isnull=True)
            .values("id", "monthly_budget", "organisation_id", "prefix", "name")}
    thresholds = _thresholds({*organisations, *(k["organisation_id"] for k in keys.values())} - {None})
    candidates = []
    if organisations:
        spend = selectors.month_to_date("organisation_id", list(organisations), today)
        for org_id, budget in organisations.items():
            for t in _crossed(spend.get(org_id, money.ZERO), budget, thresholds[org_id]):
                candidates.append((BudgetNotice.ORGANISATION, org_id, org_id, t, spend.get(org_id, money.ZERO), budget))
    if keys:
        spend = selectors.month_to_date("api_key_id", list(keys), today)
        for key_id, key in keys.items():
            levels = thresholds.get(key["organisation_id"]) or BillingSettings().threshold_list()
            for t in _crossed(spend.get(key_id, money.ZERO), key["monthly_budget"], levels):
                candidates.append((BudgetNotice.KEY, key_id, key["organisation_id"], t, spend.get(key_id, money.ZERO),
                                   key["monthly_budget"]))
    made: dict[tuple, list[BudgetNotice]] = {}
    for scope, scope_id, org_id, threshold, spend_now, budget in candidates:
        try:
            with transaction.atomic():
                notice = BudgetNotice.objects.create(scope=scope, scope_id=scope_id, organisation_id=org_id, month=month,
                                                     threshold=threshold, spend=spend_now, budget=budget)
        except IntegrityError:
            continue  # noticed already (by an earlier run, or a concurrent one)
        made.setdefault((scope, scope_id), []).append(notice)
    sent = []
    for (scope, scope_id), notices in made.items():
        # Several thresholds crossed at once: one message, for the highest; all are recorded as noticed.
        notice = max(notices, key=lambda n: n.threshold)
        key = keys.get(scope_id) if scope == BudgetNotice.KEY else None
        notice_send(notice, key)
        sent.append(notice)
    return sent


def notice_payload(notice: BudgetNotice, key: dict | None) -> dict:
    payload = {"type": "budget.threshold_crossed", "id": f"bn_{notice.id}", "scope": notice.scope,
               "organisation_id": notice.organisation_id, "month": f"{notice.month:%Y-%m}",
               "threshold_percent": notice.threshold, "budget": str(notice.budget), "currency": "RUB",
               "spend": str(money.kopecks(notice.spend)), "created": int(notice.created_at.timestamp())}
    if key is not None:
        payload.update(api_key_id=notice.scope_id, key_prefix=key["prefix"], key_name=key["name"])
    return payload


def notice_send(notice: BudgetNotice, key: dict | None = None) -> None:
    """E-mail the organisation's owners and billing viewers, and queue the webhook."""
    from . import tasks

    payload = notice_payload(notice, key)
    name = " ".join(key["name"].split()) if key else ""  # a tenant's text: no line break in a mail header
    subject_scope = f"key {name} (xr-{key['prefix']}-…)" if key else "your organisation"
    subject = f"XRouter: {subject_scope} has spent {notice.threshold}% of its monthly budget"
    body = (f"Spend this month ({payload['month']}): {payload['spend']} ₽ of a budget of {payload['budget']} ₽ "
            f"({notice.threshold}% threshold).\n")
    recipients = sorted(set(Membership.objects.filter(
        organisation_id=notice.organisation_id, user__is_active=True,
        role__in=[Membership.Role.OWNER, Membership.Role.BILLING_VIEWER]).exclude(user__email="")
        .values_list("user__email", flat=True)))
    if recipients:
        try:
            send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)
            BudgetNotice.objects.filter(id=notice.id).update(emailed=len(recipients))
        except OSError as exc:  # the mail server: the webhook still goes, the notice stays recorded
            log.warning("budget notice %s: e-mail failed (%s)", notice.id, exc)
    if BillingSettings.objects.filter(organisation_id=notice.organisation_id).exclude(webhook_url="").exists():
        transaction.on_commit(lambda: tasks.deliver_webhook_task.delay(notice.id, payload))
