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


EXPORT_USAGE_ROWS = 1_000  # the most recent usage rows in an export (the portal's usage page has the rest)


def account_export(user) -> dict:
    """What XRouter holds about a portal user (152-FZ art. 14): profile, memberships, keys (never secrets)
    and their most recent usage rows."""
    from apps.keys.models import ApiKey

    keys = ApiKey.objects.filter(user=user).order_by("created_at")
    usage = UsageRecord.objects.filter(user_id=user.id).order_by("-created_at")[:EXPORT_USAGE_ROWS]
    return {
        "user": {"username": user.username, "email": user.email, "first_name": user.first_name,
                 "last_name": user.last_name, "date_joined": user.date_joined, "last_login": user.last_login},
        "memberships": [{"organisation": m.organisation.name, "role": m.role, "since": m.created_at}
                        for m in user.memberships.select_related("organisation")],
        "api_keys": [{"name": k.name, "key": f"xr-{k.prefix}-…", "organisation_id": k.organisation_id,
                      "created_at": k.created_at, "expires_at": k.expires_at, "revoked_at": k.revoked_at,
                      "last_used_at": k.last_used_at} for k in keys],
        "usage": [{"request_id": u.request_id, "created_at": u.created_at, "model": f"{u.provider}/{u.model}",
                   "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens, "cost": str(u.cost),
                   "status": u.status} for u in usage],
    }


def account_delete(user) -> None:
    """Delete a portal user at their request: refused (PermissionDenied) while they are the only owner of
    an organisation others belong to. Their keys go (and every gateway forgets them), their usage rows
    keep the bill but not who made it, and the prompt log of their keys goes."""
    from django.core.exceptions import PermissionDenied
    from django.db import transaction
    from django.utils.translation import gettext as _

    from apps.accounts.models import Membership
    from apps.accounts.services import user_delete
    from apps.keys.models import ApiKey

    with transaction.atomic():
        for membership in Membership.objects.filter(user=user, role=Membership.Role.OWNER).select_related("organisation"):
            others = Membership.objects.filter(organisation_id=membership.organisation_id).exclude(user=user)
            if others.exists() and not others.filter(role=Membership.Role.OWNER).exists():
                raise PermissionDenied(_("You are the only owner of %(name)s: make someone else owner first.")
                                       % {"name": membership.organisation.name})
        key_ids = list(ApiKey.objects.filter(user=user).values_list("id", flat=True))
        PromptLog.objects.filter(api_key_id__in=key_ids).delete()
        usage_forget_users(0, user_id=user.id)
        user_delete(user)
