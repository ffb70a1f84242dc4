"""Soft budget thresholds: each crossed once per scope and month, e-mailed to owners and billing viewers,
and POSTed to the organisation's webhook — signed, retried, only to addresses we may reach — over real
HTTP and HTTPS to a receiver on loopback."""

import datetime
import ssl
from decimal import Decimal as D

import pytest
import trustme
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from apps.billing import services, tasks, webhooks
from apps.billing.models import BillingSettings, BudgetNotice
from apps.common.fetch import UnsafeURL, resolve_public
from apps.keys.services import key_create
from tests.receiver import Receiver as _Receiver

from .conftest import member, usage

LOOPBACK = override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8"])


def Receiver(statuses=(200,), tls=None):  # noqa: N802 - the shared receiver at the budget webhook's path
    return _Receiver(statuses, tls, path="/hooks/budget")


@pytest.fixture
def receiver():
    made = []

    def make(*args, **kwargs):
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for r in made:
        r.close()


def _setup(org, url="", thresholds=None):
    settings = BillingSettings.objects.create(organisation=org, thresholds=thresholds or [], webhook_url=url,
                                              webhook_secret={"secret": "whsec_test"})
    org.monthly_budget = D("100")
    org.save(update_fields=["monthly_budget"])
    return settings


@pytest.mark.django_db
@LOOPBACK
def test_thresholds_notified_once_by_mail_and_signed_webhook(org, receiver, django_capture_on_commit_callbacks):
    owner, viewer, developer = member(org, "owner"), member(org, "billing_viewer"), member(org, "developer")
    hook = receiver()
    _setup(org, hook.url)
    usage(org, "49.99", timezone.now())
    assert services.budget_notices_check() == []
    usage(org, "35", timezone.now())  # 84.99: past 50 and 80 at once
    with django_capture_on_commit_callbacks() as queued:
        made = services.budget_notices_check()
    assert [n.threshold for n in made] == [80]  # one message, for the highest
    assert sorted(BudgetNotice.objects.filter(scope_id=org.id).values_list("threshold", flat=True)) == [50, 80]
    assert len(mail.outbox) == 1 and sorted(mail.outbox[0].to) == sorted([owner.email, viewer.email])
    assert developer.email not in mail.outbox[0].to and "80%" in mail.outbox[0].subject
    assert len(queued) == 1
    result = tasks.deliver_webhook_task.apply(args=(made[0].id, services.notice_payload(made[0], None)))
    assert result.get() == "HTTP 200"
    headers, body = hook.requests[0]
    assert webhooks.verify("whsec_test", body, headers[webhooks.SIGNATURE_HEADER])
    assert not webhooks.verify("whsec_other", body, headers[webhooks.SIGNATURE_HEADER])
    assert headers["Host"] == hook.url.split("/")[2]
    assert b'"threshold_percent":80' in body and b'"spend":"84.99"' in body and b'"currency":"RUB"' in body
    assert BudgetNotice.objects.get(id=made[0].id).webhook_delivered_at is not None
    # The next runs send nothing more this month, until the next threshold.
    assert services.budget_notices_check() == []
    usage(org, "20", timezone.now())
    assert [n.threshold for n in services.budget_notices_check()] == [100]
    assert len(mail.outbox) == 2


@pytest.mark.django_db
def test_key_budget_uses_the_organisations_thresholds(org):
    owner = member(org, "owner")
    BillingSettings.objects.create(organisation=org, thresholds=[25])
    key, _ = key_create(user=owner, name="budgeted", organisation=org)
    key.monthly_budget = D("10")
    key.save(update_fields=["monthly_budget"])
    usage(org, "2.5", timezone.now(), key=key)
    made = services.budget_notices_check()
    assert [(n.scope, n.scope_id, n.threshold) for n in made] == [("key", key.id, 25)]
    assert "budgeted" in mail.outbox[0].subject


@pytest.mark.django_db
def test_last_month_spend_does_not_count(org):
    member(org, "owner")
    _setup(org)
    today = timezone.localdate()
    usage(org, "99", timezone.now() - datetime.timedelta(days=today.day + 1))
    assert services.budget_notices_check() == []


@pytest.mark.django_db
@LOOPBACK
def test_webhook_retried_with_backoff_until_delivered(org, receiver):
    member(org, "owner")
    hook = receiver(statuses=(500, 503, 200))
    _setup(org, hook.url)
    usage(org, "60", timezone.now())
    notice = services.budget_notices_check()[0]
    result = tasks.deliver_webhook_task.apply(args=(notice.id, services.notice_payload(notice, None)))
    assert result.get() == "HTTP 200" and len(hook.requests) == 3
    # Every attempt is signed afresh, the same event id each time (the receiver deduplicates by it).
    assert len({body for _h, body in hook.requests}) == 1
    assert [tasks.webhook_backoff(n) for n in range(4)] == [30, 60, 120, 240]


@pytest.mark.django_db
@LOOPBACK
def test_a_4xx_answer_is_not_retried(org, receiver):
    member(org, "owner")
    hook = receiver(statuses=(410,))
    _setup(org, hook.url)
    usage(org, "60", timezone.now())
    notice = services.budget_notices_check()[0]
    assert tasks.deliver_webhook_task.apply(args=(notice.id, {})).get() == "HTTP 410"
    assert len(hook.requests) == 1
    assert BudgetNotice.objects.get(id=notice.id).webhook_delivered_at is None


@pytest.mark.django_db
def test_webhook_to_loopback_refused_without_fetch_allow(org, receiver):
    member(org, "owner")
    hook = receiver()
    _setup(org, hook.url)
    usage(org, "60", timezone.now())
    notice = services.budget_notices_check()[0]
    with override_settings(XROUTER_FETCH_ALLOW=[]):
        assert tasks.deliver_webhook_task.apply(args=(notice.id, {})).get() == "refused"
    assert hook.requests == []
    assert "not public" in BudgetNotice.objects.get(id=notice.id).webhook_status


@LOOPBACK
def test_https_delivery_to_a_trusted_loopback_receiver(receiver):
    ca = trustme.CA()
    hook = receiver(tls=ca)
    assert hook.url.startswith("https://")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    assert webhooks.deliver(hook.url, "s", {"type": "ping"}, verify_tls=client_context) == 200
    headers, body = hook.requests[0]
    assert body == b'{"type":"ping"}' and webhooks.verify("s", body, headers[webhooks.SIGNATURE_HEADER])
    with pytest.raises(webhooks.DeliveryFailed):  # an untrusted certificate
        webhooks.deliver(hook.url, "s", {"type": "ping"})


@pytest.mark.parametrize("url,why", [
    ("ftp://example.com/x", "https://"), ("https://user:pw@example.com/", "password"),
    ("https://127.0.0.1/hook", "not public"), ("https://10.1.2.3/hook", "not public"),
    ("https://169.254.169.254/latest", "not public"), ("https://[::1]/hook", "not public"),
    ("https://[::ffff:127.0.0.1]/hook", "not public"), ("https://0.0.0.0/", "not public"),
    ("http://8.8.8.8/hook", "https://"), ("https://no-such-host.invalid/", "does not resolve"),
])
def test_unsafe_urls_refused(url, why):
    with override_settings(XROUTER_FETCH_ALLOW=[]), pytest.raises(UnsafeURL, match=why):
        resolve_public(url)


def test_fetch_allow_opens_listed_networks_only():
    with override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8"]):
        target = resolve_public("http://127.0.0.2:8080/hook")
        assert (target.url, target.host, target.address) == ("http://127.0.0.2:8080/hook", "127.0.0.2", "127.0.0.2")
        with pytest.raises(UnsafeURL):
            resolve_public("https://10.0.0.1/")
    with override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8", "::1/128"]):
        target = resolve_public("https://localhost/hook")  # connects to the address, keeps the name for TLS
        assert target.host == "localhost" and target.address in ("127.0.0.1", "::1")


def test_signature_rejects_old_timestamps():
    header = webhooks.sign("s", b"{}", 1_000_000)
    assert webhooks.verify("s", b"{}", header, now=1_000_100)
    assert not webhooks.verify("s", b"{}", header, now=1_000_000 + 301)
    assert not webhooks.verify("s", b"{}", "garbage")


@pytest.mark.django_db
def test_admin_makes_a_signing_secret_shows_it_once_and_stores_it_encrypted(org):
    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client

    admin_user = get_user_model().objects.create_superuser("billing-admin", "ba@example.com", "x" * 12)
    client = Client()
    client.force_login(admin_user)
    r = client.post("/admin/billing/billingsettings/add/", {
        "organisation": org.id, "thresholds": "[50, 90]", "webhook_url": "https://hooks.example.com/xrouter"}, follow=True)
    assert r.status_code == 200
    settings = BillingSettings.objects.get(organisation=org)
    secret = settings.webhook_secret["secret"]
    assert secret.startswith("whsec_") and secret in r.content.decode()  # shown this once
    with connection.cursor() as cursor:
        cursor.execute("SELECT webhook_secret FROM billing_billingsettings WHERE id = %s", [settings.id])
        assert secret not in cursor.fetchone()[0]
    page = client.get(f"/admin/billing/billingsettings/{settings.id}/change/").content.decode()
    assert secret not in page
    bad = client.post("/admin/billing/billingsettings/add/", {
        "organisation": org.id, "thresholds": "[0, 5000]", "webhook_url": "ftp://x.example/"})
    assert bad.status_code == 200 and "https://" in bad.content.decode() and "percentages" in bad.content.decode()


@pytest.mark.django_db
@LOOPBACK
def test_webhook_gives_up_after_its_attempts(org, receiver):
    member(org, "owner")
    hook = receiver(statuses=(503,))
    _setup(org, hook.url)
    usage(org, "60", timezone.now())
    notice = services.budget_notices_check()[0]
    assert tasks.deliver_webhook_task.apply(args=(notice.id, {})).get() == "failed"
    assert len(hook.requests) == tasks.WEBHOOK_RETRIES + 1
    assert BudgetNotice.objects.get(id=notice.id).webhook_status == f"attempt {tasks.WEBHOOK_RETRIES + 1} failed: HTTP 503"
