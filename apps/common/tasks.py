"""Celery beat's heartbeat: /readyz reports how long ago beat last scheduled anything (a stopped beat
silently stops health checks, roll-ups and budget alerts)."""

import time

from celery import shared_task
from django.conf import settings

from . import beat


@shared_task(ignore_result=True)
def beat_heartbeat() -> None:
    if not settings.REDIS_URL:
        return
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.set(beat.key(), repr(time.time()), ex=int(beat.INTERVAL * 20))
    finally:
        client.close()
