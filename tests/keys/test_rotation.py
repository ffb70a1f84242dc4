"""Rotation: a sibling with the same rights and a new secret; the old key works for a grace period the
user picks (0 to 7 days), then is refused — in the service, the management API, the portal, the admin,
and a running gateway driven by the openai SDK (HTTP and WebSocket)."""

import asyncio
import datetime
import time
import uuid

import httpx
import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.keys.models import ApiKey
from apps.keys.selectors import key_info_for
from apps.keys.services import key_create, key_revoke, key_rotate
from tests.conftest import need

from .support import models_status, status_within

DAY = datetime.timedelta(days=1)


# --- The service ---

@pytest.mark.django_db
def test_the_sibling_has_the_same_rights_and_the_old_key_works_for_the_grace_period(alice, acme):
    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "models:read", "keys:manage"])
    expiry = timezone.now() + 30 * DAY
    old, old_plain = key_create(user=alice, name="backend", parent=parent, scopes=["chat", "keys:manage"],
                                allowed_models=["gigachat/*"], residency="RU", allowed_ips=["203.0.113.0/24"],
                                expires_at=expiry)
    child, _ = key_create(user=alice, name="child", parent=old)
    before = timezone.now()

    new, new_plain = key_rotate(old, grace=DAY, by=alice)

    assert new.pk != old.pk and new_plain != old_plain and new.prefix != old.prefix
    same = ("user_id", "organisation_id", "parent_id", "name", "scopes", "allowed_models", "residency", "allowed_ips")
    assert {f: getattr(new, f) for f in same} == {f: getattr(old, f) for f in same}
    assert new.organisation == acme and new.parent == parent and new.expires_at == expiry
    old.refresh_from_db()
    assert before + DAY <= old.expires_at <= timezone.now() + DAY
    assert key_info_for(old_plain) is not None and key_info_for(new_plain) is not None
    child.refresh_from_db()
    assert child.parent == new  # revoking the new key still reaches the keys the old one made
    key_revoke(new)
    child.refresh_from_db()
    assert child.revoked_at is not None


@pytest.mark.django_db
def test_a_grace_never_extends_a_key_that_expires_sooner(alice):
    soon = timezone.now() + datetime.timedelta(hours=2)
    old, _ = key_create(user=alice, name="short-lived", expires_at=soon)
    new, _ = key_rotate(old, grace=datetime.timedelta(days=7))
    old.refresh_from_db()
    assert old.expires_at == soon and new.expires_at == soon


@pytest.mark.django_db
def test_zero_grace_refuses_the_old_key_at_once(alice):
    old, old_plain = key_create(user=alice, name="leaked")
    _, new_plain = key_rotate(old, grace=datetime.timedelta(0), by=alice)
    assert key_info_for(old_plain) is None
    assert key_info_for(new_plain) is not None


@pytest.mark.django_db
@pytest.mark.parametrize("grace", [datetime.timedelta(days=7, seconds=1), datetime.timedelta(seconds=-1)])
def test_a_grace_outside_0_to_7_days_is_refused_and_nothing_changes(alice, grace):
    old, _ = key_create(user=alice, name="k")
    with pytest.raises(ValidationError, match="from 0 to 7 days"):
        key_rotate(old, grace=grace, by=alice)
    old.refresh_from_db()
    assert old.expires_at is None and ApiKey.objects.filter(user=alice, name="k").count() == 1


@pytest.mark.django_db
def test_only_the_keys_user_or_an_operator_rotates_it_and_never_a_dead_key(alice, bob, charlie):
    from django.contrib.auth.models import Group

    bobs, _ = key_create(user=bob, name="bob's")
    with pytest.raises(PermissionDenied, match="own user"):
        key_rotate(bobs, grace=DAY, by=alice)  # his owner may revoke it, not get a secret that acts as him
    Group.objects.get(name="operator").user_set.add(charlie)
    operator = type(charlie).objects.get(pk=charlie.pk)
    assert key_rotate(bobs, grace=DAY, by=operator)[0].user == bob
    revoked, _ = key_create(user=bob, name="revoked")
    key_revoke(revoked)
    with pytest.raises(ValidationError, match="revoked, expired"):
        key_rotate(revoked, grace=DAY, by=bob)


# --- The management API ---

def rotate(api, key_id, grace):
    return api.post(f"/api/v1/keys/{key_id}/rotate/", {"grace_seconds": grace}, format="json")


@pytest.mark.django_db
def test_the_api_rotates_a_key_and_shows_the_new_secret_once(alice):
    old, old_plain = key_create(user=alice, name="ci", scopes=["models:read", "keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {old_plain}")
    answer = rotate(api, old.id, 3600)
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["key"].startswith("xr-") and body["name"] == "ci" and body["scopes"] == ["models:read", "keys:manage"]
    assert body["replaces"]["id"] == old.id and body["replaces"]["expires_at"] is not None
    assert "key" not in body["replaces"]
    listed = api.get("/api/v1/keys/").json()["results"]
    assert all("key" not in k for k in listed)  # shown once: never in a list
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {body['key']}")
    assert rotate(api, body["id"], 0).status_code == 201  # the new key rotates itself, refused at once
    assert api.get("/api/v1/keys/").status_code in (401, 403)


@pytest.mark.django_db
def test_the_api_refuses_a_grace_over_7_days_with_a_clear_error(alice, signed_in):
    old, _ = key_create(user=alice, name="k")
    refused = rotate(signed_in(alice), old.id, 7 * 24 * 3600 + 1)
    assert refused.status_code == 400
    assert "from 0 to 7 days (604800 seconds)" in refused.json()["error"]["message"]
    assert rotate(signed_in(alice), old.id, -5).status_code == 400
    old.refresh_from_db()
    assert old.expires_at is None


@pytest.mark.django_db
def test_the_api_lets_nobody_rotate_another_persons_key(alice, bob, charlie, signed_in):
    alices, _ = key_create(user=alice, name="alice's")
    bobs, _ = key_create(user=bob, name="bob's")
    assert rotate(signed_in(alice), bobs.id, 0).status_code == 403  # the owner sees it, may revoke it, not rotate it
    assert rotate(signed_in(bob), alices.id, 0).status_code == 404  # a developer does not see it
    assert rotate(signed_in(charlie), alices.id, 0).status_code == 404  # another tenant
    assert ApiKey.objects.filter(name__in=["alice's", "bob's"], expires_at__isnull=False).count() == 0


# --- The portal and the admin ---

@pytest.mark.django_db
def test_the_portal_rotates_ones_own_key_and_shows_the_new_one_once(alice, bob, browser):
    old, _ = key_create(user=alice, name="website")
    bobs, _ = key_create(user=bob, name="bob's")
    page = browser(alice, HTTP_ACCEPT_LANGUAGE="en").post(f"/keys/{old.id}/rotate/", {"grace": "3600"})
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    new = ApiKey.objects.filter(name="website").exclude(pk=old.pk).get()
    html = page.content.decode()
    assert f"xr-{new.prefix}-" in html and f"It replaces xr-{old.prefix}-" in html
    again = browser(alice, HTTP_ACCEPT_LANGUAGE="en").get("/keys/").content.decode()
    assert 'id="new-key"' not in again
    old.refresh_from_db()
    assert old.is_active() and old.expires_at <= timezone.now() + datetime.timedelta(hours=1)
    assert browser(alice).post(f"/keys/{bobs.id}/rotate/", {"grace": "0"}).status_code == 404
    assert browser(alice).post(f"/keys/{old.id}/rotate/", {"grace": "999999999"}).status_code == 302  # not a choice
    bobs.refresh_from_db()
    assert bobs.expires_at is None


@pytest.mark.django_db
def test_the_admin_rotates_keys_through_the_service(client, alice):
    old, old_plain = key_create(user=alice, name="admin-rotated")
    root = type(alice).objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}", "root@example.com", "pw")
    client.force_login(root)
    response = client.post("/admin/keys/apikey/", {"action": "rotate_at_once", "_selected_action": [old.pk]},
                           follow=True)
    assert response.status_code == 200
    new = ApiKey.objects.filter(name="admin-rotated").exclude(pk=old.pk).get()
    assert f"xr-{new.prefix}-" in response.content.decode()
    assert key_info_for(old_plain) is None


# --- A running gateway ---

@pytest.fixture
def rotatable(gateway, django_db_blocker):
    from apps.accounts.models import User

    with django_db_blocker.unblock():
        user, _ = User.objects.get_or_create(username=f"rota-{uuid.uuid4().hex[:6]}")
        return key_create(user=user, name="rotatable")


def test_the_openai_sdk_works_with_a_rotated_key_and_the_old_one_until_its_grace_ends(gateway, rotatable,
                                                                                      django_db_blocker):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    from openai import AuthenticationError, OpenAI

    def chat(plaintext):
        client = OpenAI(base_url=gateway.v1, api_key=plaintext, max_retries=0, timeout=30)
        return client.chat.completions.create(model="gigachat/GigaChat-2",
                                              messages=[{"role": "user", "content": "hi"}]).choices[0].message.content

    old, old_plain = rotatable
    assert chat(old_plain)  # cached in the gateway now
    with django_db_blocker.unblock():
        first, first_plain = key_rotate(old, grace=datetime.timedelta(0))
    assert status_within(lambda: models_status(gateway.base_url, old_plain), 401, timeout=10.0)[0] == 401
    with pytest.raises(AuthenticationError):
        chat(old_plain)
    assert chat(first_plain)

    with django_db_blocker.unblock():
        _, second_plain = key_rotate(first, grace=datetime.timedelta(hours=1))
    assert chat(second_plain) and chat(first_plain)  # the grace period: both work


def test_a_socket_on_the_old_key_closes_when_the_grace_period_ends(gateway, rotatable, django_db_blocker):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    old, old_plain = rotatable
    url = gateway.base_url.replace("http://", "ws://") + "/v1/realtime/chat"

    def rotate_and_disconnect():
        from django.db import connections

        try:
            key_rotate(old, grace=datetime.timedelta(seconds=2))
        finally:
            connections.close_all()  # a worker thread's connection would hold the test database open

    async def scenario():
        async with connect(url, additional_headers={"Authorization": f"Bearer {old_plain}"}, open_timeout=10) as ws:
            await ws.send('{"type": "ping"}')
            assert "pong" in await asyncio.wait_for(ws.recv(), 10)
            with django_db_blocker.unblock():
                await asyncio.to_thread(rotate_and_disconnect)
            started = time.monotonic()
            try:
                while time.monotonic() - started < 30:  # a hang guard
                    await asyncio.wait_for(ws.recv(), 30)
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd else 1006, exc.rcvd.reason if exc.rcvd else ""
        return None

    code, reason = asyncio.run(scenario())
    assert code == 4401 and "expired" in reason
    assert httpx.get(gateway.v1 + "/models", headers={"authorization": f"Bearer {old_plain}"}, timeout=10).status_code == 401
