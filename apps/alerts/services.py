"""Alertmanager's webhook (payload version 4, https://prometheus.io/docs/alerting/latest/configuration/
#webhook_config): each alert is upserted by its fingerprint, and a new firing or a resolution is
forwarded once, after the transaction commits."""

import datetime
import hashlib
import json

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils.dateparse import parse_datetime

from .models import Alert

MAX_ALERTS = 1000  # per notification (Alertmanager's max_alerts; 0 there means all, but groups are small)
ZERO_TIME = "0001-01-01T00:00:00Z"  # Alertmanager's "no end yet"


def _text(value, limit: int) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _strings(value, limit: int = 100) -> dict:
    if not isinstance(value, dict):
        return {}
    return {str(k)[:200]: str(v)[:2000] for k, v in list(value.items())[:limit]}


def _time(value) -> datetime.datetime | None:
    if not isinstance(value, str) or value.startswith("0001-"):
        return None
    try:
        return parse_datetime(value)
    except ValueError:
        return None


def alertmanager_receive(payload) -> list[tuple[int, str]]:
    """Store the notification's alerts; returns (alert id, "firing"|"resolved") for each transition."""
    if not isinstance(payload, dict) or payload.get("version") != "4" or not isinstance(payload.get("alerts"), list):
        raise ValidationError('An Alertmanager webhook notification (version "4") with a list of alerts is expected.')
    alerts = payload["alerts"]
    if len(alerts) > MAX_ALERTS:
        raise ValidationError(f"At most {MAX_ALERTS} alerts per notification.")
    transitions = []
    with transaction.atomic():
        for item in alerts:
            if not isinstance(item, dict) or item.get("status") not in (Alert.FIRING, Alert.RESOLVED):
                raise ValidationError('Each alert needs a status "firing" or "resolved".')
            labels, annotations = _strings(item.get("labels")), _strings(item.get("annotations"))
            fingerprint = _text(item.get("fingerprint"), 64) or hashlib.sha256(
                json.dumps(labels, sort_keys=True).encode()).hexdigest()[:64]
            current = Alert.objects.select_for_update().filter(fingerprint=fingerprint).first()
            fields = {
                "name": labels.get("alertname", "")[:200], "status": item["status"],
                "severity": labels.get("severity", "")[:32], "summary": annotations.get("summary", "")[:500],
                "labels": labels, "annotations": annotations,
                "starts_at": _time(item.get("startsAt")), "ends_at": _time(item.get("endsAt")),
            }
            if current is None:
                current = Alert.objects.create(fingerprint=fingerprint, **fields)
                changed = True
            else:
                changed = current.status != item["status"] or (
                    item["status"] == Alert.FIRING and current.starts_at != fields["starts_at"])
                for name, value in fields.items():
                    setattr(current, name, value)
                current.save()
            if changed:
                transitions.append((current.pk, item["status"]))
        if transitions:
            from .tasks import forward_alert

            for alert_id, status in transitions:
                transaction.on_commit(lambda a=alert_id, s=status: forward_alert.delay(a, s))
    return transitions
