"""Alertmanager's webhook: authenticated as its http_config allows, alerts stored (open ones shown in the
admin), and each start and resolution forwarded once — by e-mail, to a generic webhook and to Telegram —
against local stand-ins over real HTTP."""

import base64
import json

import pytest
from django.core import mail

from apps.alerts.models import Alert
from tests.receiver import Receiver
from xrouter_project.celery import app as celery_app

TOKEN = "am-token-0123456789abcdef"
BOT = "123456:ABC-telegram-bot-token"


def notification(status="firing", fingerprint="f00d", starts="2026-11-29T10:00:00Z", count=1) -> dict:
    return {"version": "4", "status": status, "receiver": "xrouter", "groupKey": "{}:{alertname=\"X\"}",
            "alerts": [{"status": status, "fingerprint": f"{fingerprint}{i or ''}",
                        "labels": {"alertname": "XRouterProviderDown", "severity": "critical", "provider": "gigachat"},
                        "annotations": {"summary": "Provider gigachat fails its active health checks"},
                        "startsAt": starts, "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-29T11:00:00Z"}
                       for i in range(count)]}


class _Posted:
    """What the stand-in received, as (path, JSON body) pairs, read live."""

    def __init__(self, receiver: Receiver):
        self.receiver = receiver

    def _pairs(self) -> list:
        return [(path, json.loads(body)) for path, (_headers, body) in zip(self.receiver.paths, self.receiver.requests, strict=True)]

    def __iter__(self):
        return iter(self._pairs())

    def __len__(self) -> int:
        return len(self.receiver.requests)


@pytest.fixture
def stand_in():
    receiver = Receiver(reply=b'{"ok": true}', content_type="application/json")
    yield receiver.base, _Posted(receiver)
    receiver.close()


@pytest.fixture
def configured(settings, monkeypatch, stand_in):
    base, received = stand_in
    for name, value in {"ALERTMANAGER_TOKEN": TOKEN, "ALERTMANAGER_BASIC_AUTH": "alertmanager:pw-basic-123",
                        "ALERT_EMAILS": ["oncall@example.com"], "ALERT_WEBHOOK_URL": base + "/hook",
                        "ALERT_TELEGRAM_TOKEN": BOT, "ALERT_TELEGRAM_CHAT_ID": "-100777",
                        "ALERT_TELEGRAM_BASE_URL": base + "/tg"}.items():
        monkeypatch.setitem(settings.XROUTER, name, value)
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the tasks run here, for real
    return received


def post(client, body, auth=f"Bearer {TOKEN}"):
    return client.post("/api/v1/alerts/alertmanager", json.dumps(body), content_type="application/json",
                       HTTP_AUTHORIZATION=auth)


@pytest.mark.django_db
def test_notifications_without_the_token_are_refused(client, configured):
    assert post(client, notification(), auth="").status_code == 401
    assert post(client, notification(), auth="Bearer wrong-token").status_code == 401
    assert post(client, notification(), auth="Basic " + base64.b64encode(b"alertmanager:wrong").decode()).status_code == 401
    assert not Alert.objects.exists() and not configured


@pytest.mark.django_db
def test_nothing_configured_refuses_everyone(client):
    assert post(client, notification(), auth="Bearer ").status_code == 401


@pytest.mark.django_db
def test_a_firing_alert_is_stored_and_forwarded_once_then_its_resolution(client, configured,
                                                                         django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, notification()).json() == {"received": True, "transitions": 1}
    alert = Alert.objects.get()
    assert (alert.name, alert.status, alert.severity) == ("XRouterProviderDown", "firing", "critical")
    assert alert.ends_at is None
    paths = sorted(path for path, _ in configured)
    assert paths == ["/hook", f"/tg/bot{BOT}/sendMessage"]
    telegram = next(body for path, body in configured if path.startswith("/tg"))
    assert telegram["chat_id"] == "-100777" and "FIRING [critical]: XRouterProviderDown" in telegram["text"]
    hook = next(body for path, body in configured if path == "/hook")
    assert hook["status"] == "firing" and hook["labels"]["provider"] == "gigachat"
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["oncall@example.com"]
    # Alertmanager repeats a firing alert (repeat_interval): nothing is forwarded again.
    with django_capture_on_commit_callbacks(execute=True):
        assert post(client, notification()).json()["transitions"] == 0
    assert len(configured) == 2 and len(mail.outbox) == 1
    with django_capture_on_commit_callbacks(execute=True):
        basic = "Basic " + base64.b64encode(b"alertmanager:pw-basic-123").decode()
        assert post(client, notification("resolved"), auth=basic).json()["transitions"] == 1
    alert.refresh_from_db()
    assert alert.status == "resolved" and alert.ends_at is not None
    assert len(configured) == 4 and "RESOLVED: XRouterProviderDown" in mail.outbox[1].subject


@pytest.mark.django_db
def test_malformed_notifications_are_refused_with_a_reason(client, configured):
    assert post(client, {"alerts": []}).status_code == 400
    assert post(client, {"version": "4", "alerts": [{"status": "weird"}]}).status_code == 400
    assert post(client, notification(count=1001)).status_code == 400
    response = client.post("/api/v1/alerts/alertmanager", b"not json", content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 400 and response.json()["error"] == "the body is not JSON"
    assert not Alert.objects.exists()


@pytest.mark.django_db
def test_open_alerts_are_listed_in_the_admin(client, configured, django_user_model):
    post(client, notification())
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client.force_login(root)
    page = client.get("/admin/alerts/alert/?status__exact=firing").content.decode()
    assert "XRouterProviderDown" in page and "fails its active health checks" in page


@pytest.fixture
def failing_stand_in():
    receiver = Receiver(statuses=(502,), reply=b"")
    yield receiver.base
    receiver.close()


@pytest.mark.parametrize("channel", ["telegram", "webhook"])
def test_a_failed_forward_does_not_put_the_bot_token_or_hook_url_in_its_error(failing_stand_in, channel):
    """Celery logs a retried task's exception text (and Sentry records it): the Telegram bot token is in the
    URL's path, and a generic webhook's URL (Slack's, Mattermost's) is itself the secret."""
    from apps.alerts import tasks

    url = f"{failing_stand_in}/tg/bot{BOT}/sendMessage" if channel == "telegram" else f"{failing_stand_in}/hooks/T0/B0/s3cr3tpath"
    with pytest.raises(Exception) as failed:
        tasks._post(url, {"text": "x"})
    text = f"{failed.value} {failed.value!r} {failed.value.args}"
    assert "502" in text and BOT not in text and "s3cr3tpath" not in text, text


def test_a_telegram_bot_token_never_reaches_a_log_line_or_sentry():
    """sentry-sdk's httpx integration keeps each request's URL as a breadcrumb, sent with the next error event
    (a forward that gives up, the refusal it logs); the bot token is in the path, not the query."""
    from xrouter_project.log_filters import strip_query
    from xrouter_project.sentry import scrub_event

    url = f"https://api.telegram.org/bot{BOT}/sendMessage"
    line = strip_query(f"POST {url} failed")
    event = scrub_event({"breadcrumbs": {"values": [{"category": "httplib", "data": {"url": url}}]}}, None)
    assert BOT not in line and BOT not in str(event), (line, event)
    assert "/bot[redacted]/sendMessage" in line
