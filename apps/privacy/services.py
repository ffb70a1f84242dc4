"""Personal-data upkeep: the prompt log's retention, usage rows' user fields, a portal user's data."""

import datetime

from django.utils import timezone

from apps.usage.models import UsageRecord

from .models import PromptLog


def prompt_log_expire(days: int) -> int:
    """Delete prompt-log rows older than `days` days; returns how many."""
    cutoff = timezone.now() - datetime.timedelta(days=days)
    deleted, _ = PromptLog.objects.filter(created_at__lt=cutoff).delete()
    return deleted


def usage_forget_users(days: int, user_id: int | None = None) -> int:
    """Clear the user fields of usage rows older than `days` days (0 with a `user_id`: all of that user's
    rows). A row keeps its key, organisation, tokens and cost (billing needs them), not who made it:
    user_id, and principal_id when the principal was a user's own JWT. Returns the rows changed."""
    rows = UsageRecord.objects.all()
    if days:
        # Daily, so each run touches about one day of rows (the first run on an old table touches more, once).
        rows = rows.filter(created_at__lt=timezone.now() - datetime.timedelta(days=days))
    if user_id is not None:
        rows = rows.filter(user_id=user_id)
    changed = rows.filter(principal="jwt", user_id__isnull=False).update(user_id=None, principal_id=None)
    return changed + rows.filter(user_id__isnull=False).update(user_id=None)
