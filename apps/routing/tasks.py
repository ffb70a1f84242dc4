"""Celery entry points; found by the project's app (xrouter_project/celery.py, autodiscover_tasks)."""

from celery import shared_task

from .token_ratio import token_ratios_update


@shared_task
def token_ratios_task() -> int:
    return token_ratios_update()
