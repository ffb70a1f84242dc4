"""Issue 8 item 1: scopes, parent keys and who may issue keys for whom."""

import datetime as dt

import httpx
import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.keys.models import ApiKey
from apps.keys.selectors import key_info_for
from apps.keys.services import key_create, key_revoke


def api_as(plaintext: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    return api


@pytest.mark.django_db
def test_a_restricted_key_cannot_mint_an_unrestricted_key_that_outlives_it(alice):
    expiry = timezone.now() + dt.timedelta(days=1)
    parent, plaintext = key_create(user=alice, name="narrow", allowed_models=["tbank/t-tech/T-lite-it-2.1"],
                                   residency="RU", expires_at=expiry)

    created = api_as(plaintext).post("/api/v1/keys/", {"name": "wide"}, format="json")
    if created.status_code == 201:  # the bug: a key with none of the parent's limits, not tied to it
        child = ApiKey.objects.get(id=created.json()["id"])
        key_revoke(parent)
        child.refresh_from_db()
        assert child.revoked_at is not None, "the minted key survived revoking the key that made it"
        assert child.allowed_models == parent.allowed_models and child.residency == "RU"
    assert created.status_code == 403
    assert "keys:manage" in created.json()["error"]["message"]


@pytest.mark.django_db
def test_a_managing_key_creates_only_subsets_of_itself_and_revoking_it_revokes_them(alice):
    expiry = timezone.now() + dt.timedelta(days=1)
    parent, plaintext = key_create(user=alice, name="manager", allowed_models=["tbank/*"], residency="RU",
                                   expires_at=expiry, scopes=["chat", "keys:manage"])
    api = api_as(plaintext)

    for wider in ({"allowed_models": ["*"]}, {"allowed_models": []}, {"allowed_models": ["gigachat/*"]},
                  {"residency": ""}, {"residency": "US"}, {"scopes": ["chat", "usage:read"]},
                  {"expires_at": (expiry + dt.timedelta(seconds=1)).isoformat()}, {"expires_at": None}):
        response = api.post("/api/v1/keys/", {"name": "wider", **wider}, format="json")
        assert response.status_code == 403, (wider, response.json())
        assert response.json()["error"]["message"]

    child = api.post("/api/v1/keys/", {"name": "child", "allowed_models": ["tbank/t-tech/*"]}, format="json")
    assert child.status_code == 201, child.json()
    body = child.json()
    assert body["allowed_models"] == ["tbank/t-tech/*"] and body["residency"] == "RU"
    assert body["scopes"] == ["chat"]  # the default (chat, embeddings, models:read) ∩ the parent's
    assert dt.datetime.fromisoformat(body["expires_at"]) <= expiry
    grandchild = api_as(body["key"]).post("/api/v1/keys/", {"name": "grandchild"}, format="json")
    assert grandchild.status_code == 403  # the child has no keys:manage

    stored = ApiKey.objects.get(id=body["id"])
    assert stored.parent_id == parent.id
    key_revoke(parent)
    stored.refresh_from_db()
    assert stored.revoked_at is not None
    assert key_info_for(body["key"]) is None


@pytest.mark.django_db
def test_keys_default_to_chat_embeddings_and_models_and_the_management_api_checks_scopes(alice):
    key, plaintext = key_create(user=alice, name="plain")
    assert key.scopes == ["chat", "embeddings", "models:read"]
    api = api_as(plaintext)
    for url, scope in (("/api/v1/keys/", "keys:manage"), ("/api/v1/usage/", "usage:read")):
        response = api.get(url)
        assert response.status_code == 403, url
        assert scope in response.json()["error"]["message"]
    _, reader = key_create(user=alice, name="reader", scopes=["usage:read"])
    assert api_as(reader).get("/api/v1/usage/").status_code == 200


@pytest.mark.django_db
def test_only_holders_of_issue_for_others_create_keys_for_someone_else(alice, bob, charlie):
    from django.contrib.auth.models import Group
    from django.core.exceptions import PermissionDenied

    alice.is_staff = True
    alice.save()
    with pytest.raises(PermissionDenied):
        key_create(user=bob, name="for bob", issued_by=alice)  # staff alone is not enough
    key_create(user=alice, name="for herself", issued_by=alice)

    Group.objects.get(name="operator").user_set.add(charlie)
    charlie = type(charlie).objects.get(pk=charlie.pk)  # a fresh instance: permissions are cached per instance
    key, _ = key_create(user=bob, name="from the operator", issued_by=charlie)
    assert key.user == bob
    root = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    assert key_create(user=bob, name="from root", issued_by=root)[0].user == bob


def test_v1_refuses_a_key_without_the_endpoints_scope_naming_it(gateway, django_db_blocker):
    from apps.accounts.models import User

    with django_db_blocker.unblock():
        user, _ = User.objects.get_or_create(username="alice")
        _, embed_only = key_create(user=user, name="embeddings only", scopes=["embeddings"])
    headers = {"authorization": f"Bearer {embed_only}"}
    chat = httpx.post(gateway.v1 + "/chat/completions", headers=headers, timeout=30,
                      json={"model": "gigachat/GigaChat-2", "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 403
    assert chat.json()["error"]["type"] == "permission_error" and "'chat'" in chat.json()["error"]["message"]
    for path in ("/models", "/models/gigachat/GigaChat-2"):
        listed = httpx.get(gateway.v1 + path, headers=headers, timeout=30)
        assert listed.status_code == 403 and "'models:read'" in listed.json()["error"]["message"]
    embedded = httpx.post(gateway.v1 + "/embeddings", headers=headers, timeout=30,
                          json={"model": "gigachat/Embeddings", "input": "hi"})
    assert embedded.status_code == 200, embedded.text


@pytest.mark.parametrize(
    ("parent", "child", "covered"),
    [
        ("tbank/*", "tbank/t-tech/T-lite-it-2.1", True),
        ("tbank/*", "tbank/t-tech/*", True),
        ("tbank/*", "tbank/*", True),
        ("*", "anything/at-all*", True),
        ("tbank/*", "gigachat/GigaChat-2", False),
        ("tbank/*", "tbank*", False),  # wider: also matches "tbankrupt/..."
        ("tbank/t-?", "tbank/t-*", False),  # a glob under a non-prefix glob: refused, not guessed
        ("smart", "smart", True),  # an exact rule/alias name covers itself
        ("smart", "smart*", False),
        ("gigachat/GigaChat-2", "gigachat/*", False),
        ("gigachat/[Gg]*", "gigachat/GigaChat-2", True),  # a glob-free entry the pattern matches
        ("gigachat/[Gg]*", "gigachat/G*", False),
    ],
)
def test_which_allowed_models_entries_a_parent_covers(parent, child, covered):
    from apps.keys.services import _covers

    assert _covers(parent, child) is covered


@pytest.mark.django_db
def test_the_operator_group_holds_issue_for_others_and_existing_keys_have_the_default_scopes():
    from django.contrib.auth.models import Group

    perms = Group.objects.get(name="operator").permissions.values_list("content_type__app_label", "codename")
    assert ("keys", "issue_for_others") in set(perms)


@pytest.mark.django_db
def test_create_api_key_takes_scopes(capsys):
    from django.core.management import CommandError, call_command

    call_command("create_api_key", "--user", "ops-bot", "--name", "ci", "--scopes", "usage:read,chat")
    assert ApiKey.objects.get(user__username="ops-bot").scopes == ["chat", "usage:read"]
    with pytest.raises(CommandError, match="Unknown scope"):
        call_command("create_api_key", "--user", "ops-bot", "--scopes", "chat,admin")


@pytest.mark.django_db
def test_the_admin_edits_scopes_shows_the_parent_and_refuses_staff_issuing_for_others(client, alice, bob):
    from django.contrib.auth.models import Permission

    staff = type(alice).objects.create_user("staffer", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["add_apikey", "view_apikey", "change_apikey"]))
    client.force_login(staff)
    form = {"user": bob.id, "name": "for bob", "scopes": ["chat"], "allowed_models": "[]", "residency": "", "expires_at": ""}
    assert client.post("/admin/keys/apikey/add/", form).status_code == 403
    assert not ApiKey.objects.filter(user=bob).exists()

    root = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    response = client.post("/admin/keys/apikey/add/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    key = ApiKey.objects.get(user=bob)
    assert key.scopes == ["chat"]
    ApiKey.objects.filter(pk=key.pk).update(scopes=["chat", "keys:manage"])
    key.refresh_from_db()
    child, _ = key_create(user=bob, name="child", parent=key)
    html = client.get(f"/admin/keys/apikey/{child.id}/change/").content.decode()
    assert 'name="parent"' not in html and str(key) in html  # shown, not editable
    client.post("/admin/keys/apikey/", {"action": "revoke", "_selected_action": [key.id]})
    child.refresh_from_db()
    assert child.revoked_at is not None


@pytest.mark.django_db
def test_bad_scopes_and_model_lists_are_400s_naming_the_field(alice):
    _, plaintext = key_create(user=alice, name="manager", scopes=["keys:manage", "chat"])
    api = api_as(plaintext)
    for body, field in (({"scopes": ["admin"]}, "scopes"), ({"scopes": "chat"}, "scopes"),
                        ({"allowed_models": "gpt-*"}, "allowed_models"), ({"allowed_models": [""]}, "allowed_models")):
        response = api.post("/api/v1/keys/", {"name": "bad", **body}, format="json")
        assert response.status_code == 400, (body, response.content)
        assert response.json()["error"]["param"] == field
