"""Issue 8 review (items 1, 4, 5): ways around the key checks a hostile read found."""

import asyncio
import uuid

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from rest_framework.test import APIClient

from apps.keys.models import ApiKey
from apps.keys.selectors import akey_info_for, key_info_for
from apps.keys.services import key_create, key_revoke
from apps.routing.access import may_use


def api_as(plaintext: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return api


@pytest.fixture(autouse=True)
def fresh_key_cache(monkeypatch):
    from apps.keys import selectors

    selectors._invalidate({})
    monkeypatch.setattr(selectors, "_down_until", 0.0)


@pytest.mark.django_db
def test_a_child_cannot_name_a_rule_that_its_parents_glob_only_matches_by_name(alice):
    # "gpt-everything" is a rule (not a model) whose target is a GigaChat model: the parent, limited to
    # gpt-*, may not use it; a child it creates with the exact entry "gpt-everything" must not either.
    models = {"openai/gpt-4o": object(), "gigachat/GigaChat-2": object()}
    parent, parent_plain = key_create(user=alice, name="manager", allowed_models=["gpt-*"], scopes=["chat", "keys:manage"])
    assert not may_use(key_info_for(parent_plain), "gpt-everything", "gigachat/GigaChat-2", models)

    created = api_as(parent_plain).post("/api/v1/keys/", {"name": "child", "allowed_models": ["gpt-everything"]},
                                        format="json")
    if created.status_code == 201:
        child = key_info_for(created.json()["key"])
        assert not may_use(child, "gpt-everything", "gigachat/GigaChat-2", models), "the child is wider than its parent"
        assert child.allows("gpt-everything")  # the model of that name, were there one, stays allowed
    else:
        assert created.status_code == 403

    # A parent that may use every model ("*") passes exact names on as they are.
    _, star_plain = key_create(user=alice, name="star", allowed_models=["*"], scopes=["chat", "keys:manage"])
    kept = api_as(star_plain).post("/api/v1/keys/", {"name": "c", "allowed_models": ["gpt-everything"]}, format="json")
    assert kept.status_code == 201 and kept.json()["allowed_models"] == ["gpt-everything"]


@pytest.mark.django_db
def test_a_key_revoked_after_the_request_loaded_it_cannot_create_keys(alice):
    parent, _ = key_create(user=alice, name="manager", scopes=["chat", "keys:manage"])
    loaded = ApiKey.objects.get(pk=parent.pk)  # what the API view holds while another request revokes it
    key_revoke(ApiKey.objects.get(pk=parent.pk))
    with pytest.raises(PermissionDenied):
        key_create(user=alice, name="orphan", parent=loaded)
    assert not ApiKey.objects.filter(parent=parent, revoked_at__isnull=True).exists()


def staff_with_key_rights(user_model):
    staff = user_model.objects.create_user(f"staff-{uuid.uuid4().hex[:6]}", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apikey", "view_apikey", "change_apikey"]))
    return staff


def admin_form(key: ApiKey, **changes) -> dict:
    form = {"user": key.user_id, "organisation": key.organisation_id or "", "name": key.name, "scopes": key.scopes,
            "allowed_models": "[]", "residency": "", "expires_at": ""}
    return form | changes


@pytest.mark.django_db
def test_staff_without_issue_for_others_cannot_hand_a_key_to_another_user_or_organisation(client, alice, bob, charlie):
    staff = staff_with_key_rights(type(alice))
    client.force_login(staff)
    own, _ = key_create(user=staff, name="mine", issued_by=staff)

    # Reassigning one's own key (whose plaintext one knows) is issuing a key for someone else.
    response = client.post(f"/admin/keys/apikey/{own.id}/change/", admin_form(own, user=bob.id))
    assert response.status_code == 403
    own.refresh_from_db()
    assert own.user_id == staff.id

    # So is putting one's key into another tenant (its cache scope, its rules, its bill).
    for path, form in ((f"/admin/keys/apikey/{own.id}/change/", admin_form(own, organisation=charlie.organisation_id)),
                       ("/admin/keys/apikey/add/", admin_form(own, name="in globex", organisation=charlie.organisation_id))):
        assert client.post(path, form).status_code == 403, path
    own.refresh_from_db()
    assert own.organisation_id is None
    assert not ApiKey.objects.filter(organisation=charlie.organisation).exists()
    with pytest.raises(PermissionDenied):
        key_create(user=staff, name="api", organisation=charlie.organisation, issued_by=staff)


def test_deleting_a_user_in_the_admin_refuses_their_cached_keys_at_once(client, django_db_setup, django_db_blocker):
    from apps.accounts.models import User

    with django_db_blocker.unblock():
        owner = User.objects.create(username=f"dora-{uuid.uuid4().hex[:6]}")
        _, plaintext = key_create(user=owner, name="k")
        assert asyncio.run(akey_info_for(plaintext)) is not None  # cached now
        root = User.objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}", "root@example.com", "pw")
        client.force_login(root)
        response = client.post(f"/admin/accounts/user/{owner.id}/delete/", {"post": "yes"})
        assert response.status_code == 302
        assert not User.objects.filter(id=owner.id).exists()
        assert asyncio.run(akey_info_for(plaintext)) is None


@pytest.mark.django_db
def test_a_managing_key_sees_and_revokes_only_itself_and_the_keys_it_created(alice):
    production, _ = key_create(user=alice, name="production")
    manager, manager_plain = key_create(user=alice, name="manager", allowed_models=["gigachat/*"],
                                        scopes=["chat", "keys:manage"])
    api = api_as(manager_plain)
    child = api.post("/api/v1/keys/", {"name": "child"}, format="json").json()

    assert {k["id"] for k in api.get("/api/v1/keys/").json()["results"]} == {manager.id, child["id"]}
    assert api.get(f"/api/v1/keys/{production.id}/").status_code == 404
    assert api.post(f"/api/v1/keys/{production.id}/revoke/").status_code == 404
    production.refresh_from_db()
    assert production.revoked_at is None
    assert api.post(f"/api/v1/keys/{child['id']}/revoke/").status_code == 200


@pytest.mark.django_db
def test_editing_a_key_created_key_in_the_admin_keeps_it_within_its_parent(client, alice):
    import datetime as dt

    from django.utils import timezone

    expiry = timezone.now() + dt.timedelta(days=1)
    parent, _ = key_create(user=alice, name="manager", allowed_models=["tbank/*"], residency="RU", expires_at=expiry,
                           scopes=["chat", "keys:manage"])
    child, _ = key_create(user=alice, name="child", parent=parent)
    root = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    local = timezone.localtime(expiry)
    base = admin_form(child, allowed_models='["tbank/*"]', residency="RU", expires_at_0=local.strftime("%Y-%m-%d"),
                      expires_at_1=local.strftime("%H:%M:%S"))
    for wider in ({"expires_at_0": "", "expires_at_1": ""}, {"allowed_models": "[]"}, {"residency": ""},
                  {"scopes": ["chat", "usage:read"]}):
        response = client.post(f"/admin/keys/apikey/{child.id}/change/", base | wider)
        assert response.status_code == 403, wider
    child.refresh_from_db()
    assert child.expires_at is not None and child.allowed_models == ["tbank/*"] and child.residency == "RU"
    assert child.scopes == ["chat"]
    narrower = client.post(f"/admin/keys/apikey/{child.id}/change/", base | {"allowed_models": '["tbank/t-tech/*"]'})
    assert narrower.status_code == 302
    child.refresh_from_db()
    assert child.allowed_models == ["tbank/t-tech/*"]


@pytest.mark.django_db
def test_deleting_a_deactivated_organisation_does_not_bring_its_keys_back(client, alice, alice_key):
    from apps.accounts.services import organisation_set_active

    organisation = alice.organisation
    organisation_set_active(organisation, False)
    assert key_info_for(alice_key.plaintext) is None
    root = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = client.post(f"/admin/accounts/organisation/{organisation.id}/delete/", {"post": "yes"})
    assert response.status_code == 200 and "Cannot delete" in response.content.decode()  # members and keys: protected
    assert key_info_for(alice_key.plaintext) is None


def test_a_revocation_racing_a_creation_under_the_key_revokes_the_new_key_too(django_db_setup, django_db_blocker):
    """Real PostgreSQL, two connections: a creation holds its parent locked (as key_create does) while a
    revocation of that parent starts; when the creation commits, its key must be revoked as well."""
    import threading
    import time

    from django.db import connection, transaction

    from apps.accounts.models import User
    from tests.conftest import need

    need("PostgreSQL", connection.vendor == "postgresql")
    with django_db_blocker.unblock():
        owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
        parent, _ = key_create(user=owner, name="manager", scopes=["chat", "keys:manage"])
        locked, created = threading.Event(), {}

        def create_slowly():
            with transaction.atomic():
                ApiKey.objects.select_for_update().get(pk=parent.pk)
                locked.set()
                time.sleep(1.0)  # the revocation starts meanwhile
                created["id"] = ApiKey.objects.create(user=owner, parent=parent, name="child", prefix=uuid.uuid4().hex[:8],
                                                      hashed_key=uuid.uuid4().hex * 2).id
            connection.close()

        creator = threading.Thread(target=create_slowly)
        creator.start()
        assert locked.wait(10)
        key_revoke(ApiKey.objects.get(pk=parent.pk))  # waits for the creation's lock, then sees its key
        creator.join(10)
        assert ApiKey.objects.get(pk=created["id"]).revoked_at is not None
