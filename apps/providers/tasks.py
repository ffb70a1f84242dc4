"""Celery entry points; found by the project's app (xrouter_project/celery.py, autodiscover_tasks)."""

from celery import shared_task

from .models import Provider
from .services import provider_check_health


@shared_task
def check_provider_health_task(provider_id: int) -> bool:
    provider = Provider.objects.filter(id=provider_id, enabled=True).first()
    return bool(provider and provider_check_health(provider).ok)


@shared_task
def check_all_providers_task() -> int:
    ids = list(Provider.objects.filter(enabled=True).values_list("id", flat=True))
    for provider_id in ids:
        check_provider_health_task.delay(provider_id)
    return len(ids)
