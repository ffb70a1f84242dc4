"""Celery entry points of billing (beat schedule in settings: CELERY_BEAT_SCHEDULE)."""

import datetime
import logging

from celery import shared_task
from django.utils import timezone

from apps.common.fetch import UnsafeURL

from . import services, webhooks
from .models import BillingSettings, BudgetNotice

log = logging.getLogger(__name__)
WEBHOOK_RETRIES = 8  # 30 s, 1, 2, 4 … 64 minutes: about two hours in all
WEBHOOK_BACKOFF = 30


@shared_task
def rollup_day_task(day: str) -> int:
    return services.rollup_day(datetime.date.fromisoformat(day))


@shared_task
def rollup_recent_task() -> list[str]:
    """The last RECENT_DAYS days before today not yet rolled up at least SETTLE after they ended (usage
    arriving late, e.g. replayed from a spool, is then included). Today is never rolled up here: readers
    take today from the raw rows. Returns the days rolled up."""
    return [day.isoformat() for day in services.rollup_pending(timezone.localdate())]


@shared_task
def current_prices_task() -> int:
    return services.current_prices_apply()


@shared_task
def budget_notices_task() -> int:
    return len(services.budget_notices_check())


def webhook_backoff(retries: int) -> int:
    """Seconds before attempt `retries + 2`: 30 s, 1 min, 2 min … doubling."""
    return WEBHOOK_BACKOFF * 2 ** retries


@shared_task(bind=True, max_retries=WEBHOOK_RETRIES)
def deliver_webhook_task(self, notice_id: int, payload: dict) -> str:
    """POST a budget notice to its organisation's webhook, retried with exponential backoff."""
    notice = BudgetNotice.objects.filter(id=notice_id).first()
    config = BillingSettings.objects.filter(organisation_id=notice.organisation_id).first() if notice else None
    if config is None or not config.webhook_url:
        return "no webhook"
    secret = config.webhook_secret.get("secret", "")
    try:
        status = webhooks.deliver(config.webhook_url, secret, payload)
    except UnsafeURL as exc:
        BudgetNotice.objects.filter(id=notice_id).update(webhook_status=f"refused: {exc}"[:200])
        return "refused"
    except webhooks.DeliveryFailed as exc:
        BudgetNotice.objects.filter(id=notice_id).update(
            webhook_status=f"attempt {self.request.retries + 1} failed: {exc}"[:200])
        if self.request.retries >= WEBHOOK_RETRIES:
            log.warning("budget notice %s: webhook gave up after %s attempts", notice_id, WEBHOOK_RETRIES + 1)
            return "failed"
        raise self.retry(countdown=webhook_backoff(self.request.retries)) from None
    BudgetNotice.objects.filter(id=notice_id).update(
        webhook_status=f"HTTP {status}", webhook_delivered_at=timezone.now() if status < 300 else None)
    return f"HTTP {status}"
