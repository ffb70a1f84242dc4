"""Memberships: the services' role rules, default organisations, and the migration from User.organisation."""

import asyncio
import importlib
import uuid

import pytest
from django.apps import apps as django_apps
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import translation

from apps.accounts.models import Membership, Organisation, User
from apps.accounts.services import membership_add, membership_remove, membership_set_role, organisation_update_policy

Role = Membership.Role


@pytest.fixture(autouse=True)
def english():
    """The services' refusals are in the caller's language (the portal's Russian by default): read them in English."""
    with translation.override("en"):
        yield


def membership(user, organisation):
    return Membership.objects.get(user=user, organisation=organisation)


@pytest.mark.django_db
def test_a_user_belongs_to_several_organisations_once_each(alice, acme, globex):
    membership_add(globex, alice, Role.BILLING_VIEWER)
    assert set(alice.memberships.values_list("organisation__name", "role")) == {("acme", "owner"), ("globex", "billing_viewer")}
    with pytest.raises(ValidationError, match="already a member"):
        membership_add(acme, alice)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(user=alice, organisation=acme)


@pytest.mark.django_db
def test_the_first_organisation_becomes_the_default_and_a_second_does_not(acme, globex):
    dora = User.objects.create(username="dora")
    membership_add(acme, dora)
    membership_add(globex, dora)
    dora.refresh_from_db()
    assert dora.organisation == acme


@pytest.mark.django_db
def test_removing_the_default_organisation_falls_back_to_another_or_none(alice, acme, globex):
    membership_add(globex, alice)
    membership_add(acme, User.objects.create(username="eve"), Role.OWNER)  # acme keeps an owner
    membership_remove(membership(alice, acme))
    alice.refresh_from_db()
    assert alice.organisation == globex
    membership_remove(membership(alice, globex))
    alice.refresh_from_db()
    assert alice.organisation is None


@pytest.mark.django_db
def test_only_owners_and_admins_manage_members(alice, bob, acme):
    dora = User.objects.create(username="dora")
    for role in (Role.DEVELOPER, Role.BILLING_VIEWER):
        membership_set_role(membership(bob, acme), role)
        with pytest.raises(PermissionDenied, match="owners and admins"):
            membership_add(acme, dora, by=membership(bob, acme))
        with pytest.raises(PermissionDenied):
            organisation_update_policy(acme, residency="RU", by=membership(bob, acme))
    membership_set_role(membership(bob, acme), Role.ADMIN)
    added = membership_add(acme, dora, by=membership(bob, acme))
    membership_set_role(added, Role.BILLING_VIEWER, by=membership(bob, acme))
    organisation_update_policy(acme, residency="RU", by=membership(bob, acme))
    membership_remove(added, by=membership(bob, acme))
    acme.refresh_from_db()
    assert acme.residency == "RU" and not Membership.objects.filter(user=dora).exists()


@pytest.mark.django_db
def test_only_owners_touch_the_owner_role(alice, bob, acme):
    membership_set_role(membership(bob, acme), Role.ADMIN)
    admin = membership(bob, acme)
    with pytest.raises(PermissionDenied, match="owner"):
        membership_set_role(admin, Role.OWNER, by=admin)  # an admin cannot promote themselves
    with pytest.raises(PermissionDenied, match="owner"):
        membership_set_role(membership(alice, acme), Role.DEVELOPER, by=admin)
    with pytest.raises(PermissionDenied, match="owner"):
        membership_remove(membership(alice, acme), by=admin)
    with pytest.raises(PermissionDenied, match="owner"):
        membership_add(acme, User.objects.create(username="dora"), Role.OWNER, by=admin)
    membership_set_role(admin, Role.OWNER, by=membership(alice, acme))
    assert membership(bob, acme).role == Role.OWNER


@pytest.mark.django_db
def test_the_last_owner_stays_an_owner(alice, acme):
    with pytest.raises(PermissionDenied, match="at least one owner"):
        membership_set_role(membership(alice, acme), Role.ADMIN, by=membership(alice, acme))
    with pytest.raises(PermissionDenied, match="at least one owner"):
        membership_remove(membership(alice, acme))  # not even an operator leaves it ownerless this way
    assert membership(alice, acme).role == Role.OWNER


@pytest.mark.django_db
def test_unknown_roles_and_bad_policies_are_refused(alice, acme):
    with pytest.raises(ValidationError, match="Unknown role"):
        membership_set_role(membership(alice, acme), "root")
    with pytest.raises(ValidationError):
        organisation_update_policy(acme, allowed_models=["gigachat/*", ""])


@pytest.mark.django_db
def test_the_migration_turns_user_organisations_into_memberships(db):
    """A sole member becomes owner; several members all become developers (an operator names the owner)."""
    migration = importlib.import_module("apps.accounts.migrations.0003_memberships_and_policy")
    solo, team = Organisation.objects.create(name="solo"), Organisation.objects.create(name="team")
    sam = User.objects.create(username="sam", organisation=solo)
    tim, tom = (User.objects.create(username=n, organisation=team) for n in ("tim", "tom"))
    User.objects.create(username="nobody")
    migration.memberships_from_user_organisation(django_apps, None)
    made = Membership.objects.filter(organisation__in=[solo, team])
    assert set(made.values_list("user__username", "organisation__name", "role")) == {
        ("sam", "solo", "owner"), ("tim", "team", "developer"), ("tom", "team", "developer")}
    assert {sam, tim, tom} == set(User.objects.filter(memberships__isnull=False))



def test_leaving_an_inactive_default_organisation_frees_the_keys_at_once(django_db_setup, django_db_blocker):
    """Keys follow their user's default organisation (apps.keys.selectors), so changing it is announced:
    the cached refusal is dropped at once, not when it ages out."""
    from apps.accounts.services import organisation_set_active
    from apps.keys import selectors
    from apps.keys.services import key_create

    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():  # committed rows: the cached lookup queries from another thread
        works, quits = Organisation.objects.create(name=f"works-{tag}"), Organisation.objects.create(name=f"quits-{tag}")
        owner, fred = User.objects.create(username=f"olga-{tag}"), User.objects.create(username=f"fred-{tag}")
        membership_add(quits, owner, Role.OWNER)
        membership_add(quits, fred)  # fred's default organisation
        membership_add(works, fred)
        _, plaintext = key_create(user=fred, name="fred", organisation=works)
        organisation_set_active(quits, False)
        selectors._invalidate({})
        assert asyncio.run(selectors.akey_info_for(plaintext)) is None  # refused, and cached so
        membership_remove(membership(fred, quits), by=membership(owner, quits))
        fred.refresh_from_db()
        assert fred.organisation == works
        assert asyncio.run(selectors.akey_info_for(plaintext)) is not None
