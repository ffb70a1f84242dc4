"""Breakers opened or closed by hand (apps/routing/services.breaker_set): set on a provider's health page,
stored, audited, applied by a running gateway through the bus and by a gateway started afterwards, and
no longer applied once expired or released."""

import datetime
import time

import httpx
import pytest
from django.test import Client
from django.utils import timezone

from tests.routing.conftest import Rules, router_gateway, spawn, unique_model  # noqa: F401 (fixtures)

MTS, TBANK = "mts/mws-gpt-alpha", "tbank/t-tech/T-lite-it-2.1"


@pytest.fixture
def operator(django_db_blocker, gateway):
    from apps.accounts.models import User

    with django_db_blocker.unblock():
        user, _ = User.objects.get_or_create(username="breaker-operator", defaults={"is_staff": True, "is_superuser": True})
        client = Client()
        client.force_login(user)
    return client


@pytest.fixture
def rule(django_db_blocker):
    """A rule sending a model of its own to MTS, then T-Bank; breakers set by hand are removed afterwards."""
    from apps.providers.services import config_announce
    from apps.routing.models import ManualBreaker

    rules = Rules(django_db_blocker)
    model = unique_model("by-hand")
    rules.create(name=f"t-hand-{model[-6:]}", match_model=model, targets=[{"model": MTS}, {"model": TBANK}])
    yield model
    rules.delete_all()
    with django_db_blocker.unblock():
        ManualBreaker.objects.all().delete()
        config_announce()


def served_by(gw, model) -> str:
    r = httpx.post(gw.v1 + "/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                   headers={"authorization": f"Bearer {gw.keys['alice']}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.headers["x-xrouter-route"].split(";")[1]


def eventually(check, seconds=3.0):
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def health_page(django_db_blocker, operator, data=None):
    from apps.providers.models import Provider

    with django_db_blocker.unblock():
        url = f"/admin/routing/manualbreaker/provider/{Provider.objects.get(name='mts').pk}/health/"
        return operator.post(url, data) if data is not None else operator.get(url)


def test_a_breaker_opened_on_the_health_page_reaches_a_running_gateway_and_is_audited(
        operator, rule, router_gateway, django_db_blocker):  # noqa: F811
    from apps.audit.models import AuditEvent
    from apps.routing.models import ManualBreaker

    assert served_by(router_gateway, rule) == MTS
    page = health_page(django_db_blocker, operator, {"target": MTS, "opened": "1", "reason": "provider incident 42"})
    assert page.status_code == 302

    with django_db_blocker.unblock():
        breaker = ManualBreaker.objects.get(target=MTS)
        event = AuditEvent.objects.filter(action="breaker.opened").order_by("-id").first()
    assert breaker.open and breaker.until is None and breaker.set_by == "breaker-operator"
    assert event.detail["target"] == MTS and event.detail["reason"] == "provider incident 42" and event.actor == "breaker-operator"
    assert eventually(lambda: served_by(router_gateway, rule) == TBANK)

    html = health_page(django_db_blocker, operator).content.decode()
    assert "provider incident 42" in html and f'data-target="{MTS}"' in html

    page = health_page(django_db_blocker, operator, {"release": str(breaker.pk)})
    assert page.status_code == 302
    with django_db_blocker.unblock():
        assert AuditEvent.objects.filter(action="breaker.released", target_id=str(breaker.pk)).exists()
        assert not ManualBreaker.objects.filter(target=MTS).exists()
    assert eventually(lambda: served_by(router_gateway, rule) == MTS)


def test_a_breaker_set_by_hand_survives_a_restart_and_expires(operator, rule, spawn, django_db_blocker):  # noqa: F811
    from apps.routing.services import breaker_set

    with django_db_blocker.unblock():
        breaker_set("mts", opened=True, reason="whole provider")
    fresh = spawn()  # a process started after the breaker was set: it loads it with its catalog
    assert served_by(fresh, rule) == TBANK

    with django_db_blocker.unblock():  # now with an end, which the running process learns through the bus
        breaker_set("mts", opened=True, until=timezone.now() + datetime.timedelta(seconds=3), reason="whole provider")
    assert eventually(lambda: served_by(fresh, rule) == MTS, seconds=10)  # expired: no reload needed


def test_a_breaker_target_must_exist_and_only_those_who_may_change_breakers_set_them(
        operator, rule, django_db_blocker, gateway):
    from apps.accounts.models import User
    from apps.routing.models import ManualBreaker

    page = health_page(django_db_blocker, operator, {"target": "mts/NoSuchModel", "opened": "1"})
    assert page.status_code == 200 and "Select a valid choice" in page.content.decode()
    with django_db_blocker.unblock():
        viewer, _ = User.objects.get_or_create(username="breaker-viewer", defaults={"is_staff": True})
        from django.contrib.auth.models import Permission

        viewer.user_permissions.add(Permission.objects.get(codename="view_provider"))
        client = Client()
        client.force_login(viewer)
    from apps.providers.models import Provider

    with django_db_blocker.unblock():
        url = f"/admin/routing/manualbreaker/provider/{Provider.objects.get(name='mts').pk}/health/"
        assert client.get(url).status_code == 200
        assert client.post(url, {"target": MTS, "opened": "1"}).status_code == 403
        assert not ManualBreaker.objects.exists()
