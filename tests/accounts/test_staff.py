"""Operator staff groups (made by a migration) and the admin of organisations and memberships."""

import pytest
from django.contrib.auth.models import Group

from apps.accounts.models import Membership, User


def staff(name, group):
    user = User.objects.create(username=name, is_staff=True)
    user.groups.add(Group.objects.get(name=group))
    return User.objects.get(pk=user.pk)  # a fresh instance: permissions are cached per instance


@pytest.mark.django_db
def test_the_migration_makes_the_staff_groups(db):
    operator, support, finance, auditor = (staff(n, n) for n in ("operator", "support", "finance", "auditor"))
    assert operator.has_perms(["keys.issue_for_others", "providers.change_provider", "routing.add_routingrule",
                               "accounts.change_organisation", "accounts.change_membership", "usage.view_usagerecord"])
    assert support.has_perms(["accounts.view_user", "keys.view_apikey", "keys.change_apikey", "usage.view_usagerecord"])
    assert finance.has_perms(["usage.view_usagerecord", "providers.view_providermodel", "accounts.view_organisation"])
    assert auditor.has_perms(["accounts.view_user", "keys.view_apikey", "providers.view_credential", "admin.view_logentry"])
    for user in (operator, support, finance, auditor):
        assert not user.has_perm("accounts.change_user")  # the user form grants superuser: superusers only
    for user in (finance, auditor):  # read-only
        actions = {p.split(".")[1].split("_")[0] for p in user.get_all_permissions()}
        assert actions == {"view"}, (user, user.get_all_permissions())
    assert not finance.has_perm("keys.view_apikey") and not finance.has_perm("providers.view_credential")


@pytest.mark.django_db
def test_a_read_only_auditor_sees_the_admin_but_cannot_deactivate_anyone(client, alice, acme):
    client.force_login(staff("audrey", "auditor"))
    assert client.get("/admin/accounts/user/").status_code == 200
    assert client.get(f"/admin/accounts/organisation/{acme.id}/change/").status_code == 200
    for url, obj in (("/admin/accounts/user/", alice), ("/admin/accounts/organisation/", acme)):
        client.post(url, {"action": "deactivate", "_selected_action": [obj.pk]})
        obj.refresh_from_db()
        assert obj.is_active, url


@pytest.mark.django_db
def test_the_organisation_admin_shows_the_policy_and_edits_memberships(admin_client, alice, bob, acme):
    page = admin_client.get(f"/admin/accounts/organisation/{acme.id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="allowed_models"' in html and 'name="residency"' in html and "memberships-TOTAL_FORMS" in html
    bobs = Membership.objects.get(user=bob, organisation=acme)
    alices = Membership.objects.get(user=alice, organisation=acme)
    form = {
        "name": "acme", "is_active": "on", "allowed_models": '["gigachat/*"]', "residency": "RU",
        "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "2", "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": alices.id, "memberships-0-organisation": acme.id, "memberships-0-user": alice.id,
        "memberships-0-role": "owner",
        "memberships-1-id": bobs.id, "memberships-1-organisation": acme.id, "memberships-1-user": bob.id,
        "memberships-1-role": "developer", "memberships-1-DELETE": "on",
    }
    response = admin_client.post(f"/admin/accounts/organisation/{acme.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    acme.refresh_from_db()
    bob.refresh_from_db()
    assert acme.allowed_models == ["gigachat/*"] and acme.residency == "RU"
    assert not Membership.objects.filter(id=bobs.id).exists()
    assert bob.organisation is None  # the default organisation follows the memberships


@pytest.mark.django_db
def test_the_user_admin_lists_the_memberships(admin_client, alice, acme):
    html = admin_client.get(f"/admin/accounts/user/{alice.id}/change/").content.decode()
    assert "memberships-TOTAL_FORMS" in html and "default organisation" in html


@pytest.mark.django_db
def test_an_auditor_cannot_revoke_keys_and_support_can(client, alice_key):
    for name, revoked in (("audrey", False), ("sue", True)):
        client.force_login(staff(name, "auditor" if name == "audrey" else "support"))
        client.post("/admin/keys/apikey/", {"action": "revoke", "_selected_action": [alice_key.key.pk]})
        alice_key.key.refresh_from_db()
        assert (alice_key.key.revoked_at is not None) is revoked, name
