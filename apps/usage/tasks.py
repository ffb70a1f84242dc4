"""Celery entry points of the usage table's upkeep (partitions.py holds the work)."""

from celery import shared_task
from django.conf import settings

from .partitions import partitions_ensure, usage_retention_apply


@shared_task
def usage_partitions_task() -> list[str]:
    """Create this month's partition and XROUTER_USAGE_PARTITIONS_AHEAD more (PostgreSQL)."""
    return partitions_ensure(settings.XROUTER["USAGE_PARTITIONS_AHEAD"])


@shared_task
def usage_retention_task() -> list[str]:
    """Drop the months older than XROUTER_USAGE_RETENTION_MONTHS (0: keep everything)."""
    return usage_retention_apply(settings.XROUTER["USAGE_RETENTION_MONTHS"])
