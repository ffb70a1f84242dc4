"""Forwarding alerts to people: e-mail, a generic webhook, Telegram (a bot's sendMessage; the base URL is
configurable for a proxy or a self-hosted Bot API server). One task per channel, retried with exponential
backoff, so a channel that is down neither blocks nor repeats the others."""

import logging
from urllib.parse import urlsplit

import httpx
from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from .models import Alert

log = logging.getLogger(__name__)
TIMEOUT = 5.0


class ForwardFailed(Exception):
    """A forward that may succeed if tried again. Its text names what failed, never the URL: Celery logs it
    on each retry, and the URL may be a secret (a Telegram bot token, a Slack-style hook's path)."""


RETRY = {"autoretry_for": (ForwardFailed, OSError), "retry_backoff": 2, "retry_backoff_max": 300, "max_retries": 6,
         "retry_jitter": True}


def channels() -> list[str]:
    xr = settings.XROUTER
    return [name for name, on in (("email", xr["ALERT_EMAILS"]), ("webhook", xr["ALERT_WEBHOOK_URL"]),
                                  ("telegram", xr["ALERT_TELEGRAM_TOKEN"] and xr["ALERT_TELEGRAM_CHAT_ID"])) if on]


@shared_task(ignore_result=True)
def forward_alert(alert_id: int, status: str) -> None:
    for channel in channels():
        forward_alert_to.delay(alert_id, status, channel)


def _text(alert: Alert, status: str) -> str:
    head = "RESOLVED" if status == Alert.RESOLVED else f"FIRING [{alert.severity or 'alert'}]"
    lines = [f"{head}: {alert.name}", alert.summary]
    if alert.annotations.get("description"):
        lines.append(alert.annotations["description"])
    lines.append(", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")))
    return "\n".join(line for line in lines if line)[:3500]  # Telegram's limit is 4096


@shared_task(ignore_result=True, **RETRY)
def forward_alert_to(alert_id: int, status: str, channel: str) -> None:
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return
    xr = settings.XROUTER
    text = _text(alert, status)
    if channel == "email":
        send_mail(f"[XRouter] {text.splitlines()[0]}", text, None, xr["ALERT_EMAILS"])
    elif channel == "webhook":
        body = {"status": status, "name": alert.name, "severity": alert.severity, "summary": alert.summary,
                "labels": alert.labels, "annotations": alert.annotations,
                "starts_at": alert.starts_at.isoformat() if alert.starts_at else None,
                "ends_at": alert.ends_at.isoformat() if alert.ends_at else None}
        _post(xr["ALERT_WEBHOOK_URL"], body)
    elif channel == "telegram":
        url = f"{xr['ALERT_TELEGRAM_BASE_URL'].rstrip('/')}/bot{xr['ALERT_TELEGRAM_TOKEN']}/sendMessage"
        _post(url, {"chat_id": xr["ALERT_TELEGRAM_CHAT_ID"], "text": text, "disable_web_page_preview": True})


def _post(url: str, body: dict) -> None:
    """POST without following redirects; a network error, 5xx or 429 is retried (ForwardFailed), another
    non-2xx is logged (naming the host only) and dropped."""
    try:
        with httpx.Client(timeout=TIMEOUT, follow_redirects=False) as client:
            response = client.post(url, json=body)
    except httpx.HTTPError as exc:
        raise ForwardFailed(f"{type(exc).__name__} from {urlsplit(url).hostname}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise ForwardFailed(f"HTTP {response.status_code} from {urlsplit(url).hostname}")
    if not response.is_success:
        log.error("alert forwarding refused: HTTP %s from %s", response.status_code, urlsplit(url).hostname)
