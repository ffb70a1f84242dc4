"""Where Celery beat's heartbeat lives (apps/common/tasks.py writes it, /readyz reads it): no Celery
import here, so the gateway's workers never load it."""

from django.conf import settings

INTERVAL = 30.0  # seconds between heartbeats; /readyz calls beat stale after four of them


def key() -> str:
    return settings.XROUTER["REDIS_NAMESPACE"] + ":beat:last"
