"""Who lists and revokes which keys: owners and admins every key of their organisation (a leaver's too),
developers their own, billing viewers none, other tenants nothing — in the management API and the portal.
Removing a member refuses their keys in that organisation, in this process and in a running gateway."""

import asyncio
import uuid

import pytest
from django.conf import settings
from django.core.exceptions import PermissionDenied

from apps.accounts.models import Membership, Organisation, User
from apps.accounts.services import membership_add, membership_remove
from apps.keys import selectors
from apps.keys.selectors import key_info_for, keys_visible_to
from apps.keys.services import key_create
from tests.conftest import need

from .support import models_status, status_within

Role = Membership.Role


@pytest.fixture
def erin(acme):
    """acme's admin."""
    user = User.objects.create_user(f"erin-{uuid.uuid4().hex[:8]}", organisation=acme)
    Membership.objects.create(user=user, organisation=acme, role=Role.ADMIN)
    return user


@pytest.fixture
def keys(alice, bob, charlie, acme):
    """A key each, bob's with a child, and a leaver's: fred was in acme and left."""
    fred = User.objects.create_user(f"fred-{uuid.uuid4().hex[:8]}")
    membership_add(acme, fred)
    made = {name: key_create(user=user, name=name, scopes=["chat", "keys:manage"])[0]
            for name, user in (("alice", alice), ("bob", bob), ("charlie", charlie), ("fred", fred))}
    made["bob-child"] = key_create(user=bob, name="bob-child", parent=made["bob"])[0]
    membership_remove(Membership.objects.get(user=fred, organisation=acme), by=Membership.objects.get(user=alice, organisation=acme))
    return made


ACME = {"alice", "bob", "bob-child", "fred"}


@pytest.mark.django_db
def test_the_api_lists_every_acme_key_to_owners_and_admins_own_keys_to_developers_none_to_billing_viewers(
        keys, alice, bob, charlie, erin, dave, signed_in):
    # (alice also holds the session gateway's keys, "alice-e2e" and "ru-only", committed in a full run:
    # only the keys made here are compared, and nobody sees another organisation's)
    made = {k.id for k in keys.values()}

    def listed(user):
        results = signed_in(user).get("/api/v1/keys/?page_size=200").json()["results"]
        assert charlie == user or not {k["id"] for k in results} & {keys["charlie"].id}
        return {k["name"] for k in results if k["id"] in made}

    assert listed(alice) == ACME and listed(erin) == ACME
    assert listed(bob) == {"bob", "bob-child"}
    assert listed(dave) == set()
    assert listed(charlie) == {"charlie"}


@pytest.mark.django_db
def test_the_api_lets_owners_and_admins_revoke_any_acme_key_and_nobody_else_anothers(
        keys, alice, bob, charlie, erin, dave, signed_in):
    def revoke(user, name):
        return signed_in(user).post(f"/api/v1/keys/{keys[name].id}/revoke/").status_code

    assert revoke(bob, "alice") == 404 and revoke(dave, "alice") == 404 and revoke(charlie, "bob") == 404
    assert revoke(dave, "bob") == 404  # a billing viewer revokes nothing, not even in their organisation
    assert revoke(erin, "fred") == 200  # the leaver's key
    assert revoke(alice, "bob") == 200
    for name in ("fred", "bob", "bob-child"):  # revoking bob's key revoked the key it made
        keys[name].refresh_from_db()
        assert keys[name].revoked_at is not None, name
    keys["alice"].refresh_from_db()
    assert keys["alice"].revoked_at is None


@pytest.mark.django_db
def test_called_with_a_key_the_api_sees_only_that_key_and_its_children_even_an_owners(keys, alice):
    from rest_framework.test import APIClient

    _, plaintext = key_create(user=alice, name="owner-key", scopes=["keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert {k["name"] for k in api.get("/api/v1/keys/").json()["results"]} == {"owner-key"}
    assert api.post(f"/api/v1/keys/{keys['bob'].id}/revoke/").status_code == 404


@pytest.mark.django_db
def test_the_portal_shows_and_revokes_by_the_same_rules(keys, alice, bob, erin, dave, browser):
    def shown(user):
        html = browser(user, HTTP_ACCEPT_LANGUAGE="en").get("/keys/").content.decode()
        return {name for name, key in keys.items() if f"xr-{key.prefix}-" in html}

    assert shown(alice) == ACME and shown(erin) == ACME
    assert shown(bob) == {"bob", "bob-child"}
    assert shown(dave) == set()
    # the leaver's key is listed for the owners, and said to be refused (the key lookup refuses it)
    rows = browser(alice, HTTP_ACCEPT_LANGUAGE="en").get("/keys/").content.decode().split("<tr")
    fred_row = next(r for r in rows if f"xr-{keys['fred'].prefix}-" in r)
    bob_row = next(r for r in rows if f"xr-{keys['bob'].prefix}-" in r)
    assert "not a member here" in fred_row and "not a member here" not in bob_row and "active" in bob_row
    assert browser(bob).post(f"/keys/{keys['alice'].id}/revoke/").status_code == 404
    assert browser(dave).post(f"/keys/{keys['bob'].id}/revoke/").status_code == 404
    assert browser(alice).post(f"/keys/{keys['fred'].id}/revoke/").status_code == 302
    keys["fred"].refresh_from_db()
    assert keys["fred"].revoked_at is not None


@pytest.mark.django_db
def test_a_removed_members_keys_in_that_organisation_are_refused_and_still_listed_for_the_owners(
        alice, bob, acme, globex):
    membership_add(globex, bob)
    in_acme, acme_plain = key_create(user=bob, name="in acme", organisation=acme)
    _, globex_plain = key_create(user=bob, name="in globex", organisation=globex)
    assert key_info_for(acme_plain) is not None

    membership_remove(Membership.objects.get(user=bob, organisation=acme))

    assert key_info_for(acme_plain) is None
    assert key_info_for(globex_plain) is not None  # his keys elsewhere are his still
    assert in_acme in keys_visible_to(alice) and in_acme not in keys_visible_to(bob)
    with pytest.raises(PermissionDenied, match="not a member"):
        key_create(user=bob, name="again", organisation=acme)


@pytest.mark.django_db
def test_billing_viewers_are_issued_no_keys(acme, dave, signed_in):
    assert signed_in(dave).post("/api/v1/keys/", {"name": "mine"}, format="json").status_code == 403
    with pytest.raises(PermissionDenied, match="billing viewer"):
        key_create(user=dave, name="by the command line", organisation=acme)


def test_a_member_made_billing_viewer_has_their_cached_keys_refused_until_made_developer_again(committed_db):
    from apps.accounts.services import membership_set_role

    tag = uuid.uuid4().hex[:6]
    org = Organisation.objects.create(name=f"demotions-{tag}")
    owner, member = User.objects.create(username=f"olga-{tag}"), User.objects.create(username=f"dan-{tag}")
    membership_add(org, owner, Role.OWNER)
    membership = membership_add(org, member)
    _, plaintext = key_create(user=member, name="dan's", organisation=org)
    assert asyncio.run(selectors.akey_info_for(plaintext)) is not None  # cached

    membership_set_role(membership, Role.BILLING_VIEWER, by=Membership.objects.get(user=owner, organisation=org))
    assert asyncio.run(selectors.akey_info_for(plaintext)) is None
    membership_set_role(membership, Role.DEVELOPER)
    assert asyncio.run(selectors.akey_info_for(plaintext)) is not None


def test_removing_a_member_refuses_their_cached_keys_at_once_here_and_in_a_running_gateway(
        gateway, django_db_blocker):
    need("Redis (the bus between processes)", bool(settings.REDIS_URL))
    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        org = Organisation.objects.create(name=f"leavers-{tag}")
        owner, leaver = User.objects.create(username=f"olga-{tag}"), User.objects.create(username=f"lev-{tag}")
        membership_add(org, owner, Role.OWNER)
        membership_add(org, leaver)
        _, plaintext = key_create(user=leaver, name="leaver", organisation=org)
        assert asyncio.run(selectors.akey_info_for(plaintext)) is not None  # cached in this process
        assert models_status(gateway.base_url, plaintext) == 200  # and in the gateway's

        membership_remove(Membership.objects.get(user=leaver, organisation=org),
                          by=Membership.objects.get(user=owner, organisation=org))

        assert asyncio.run(selectors.akey_info_for(plaintext)) is None
    assert status_within(lambda: models_status(gateway.base_url, plaintext), 401, timeout=10.0)[0] == 401
