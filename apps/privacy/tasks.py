"""Celery entry points of personal-data upkeep (services.py holds the work)."""

from celery import shared_task
from django.conf import settings

from .services import prompt_log_expire, usage_forget_users


@shared_task
def prompt_log_retention_task() -> int:
    """Delete prompt-log rows past XROUTER_PROMPT_LOG_DAYS."""
    return prompt_log_expire(settings.XROUTER["PROMPT_LOG_DAYS"])


@shared_task
def usage_forget_users_task() -> int:
    """Clear user fields on usage rows past XROUTER_USAGE_USER_RETENTION_DAYS (0: keep them)."""
    days = settings.XROUTER["USAGE_USER_RETENTION_DAYS"]
    return usage_forget_users(days) if days else 0
