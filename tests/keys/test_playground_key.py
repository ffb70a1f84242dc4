"""apps.keys.services.key_for_playground: the hour-long `playground` key the portal's playground bills,
reused while valid, within the organisation's policy, never for someone who may issue no key."""

import datetime

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from apps.accounts.models import Membership
from apps.keys.selectors import playground_keys
from apps.keys.services import key_create, key_for_playground, key_revoke

pytestmark = pytest.mark.django_db


@pytest.fixture
def owner(alice, acme):
    Membership.objects.update_or_create(user=alice, organisation=acme, defaults={"role": Membership.Role.OWNER})
    return alice


def test_it_makes_an_hour_long_chat_only_key_and_reuses_it(owner, acme):
    key = key_for_playground(owner)
    again = key_for_playground(owner)

    assert again.pk == key.pk
    assert (key.name, key.scopes, key.organisation_id) == ("playground", ["chat"], acme.pk)
    assert datetime.timedelta(minutes=59) < key.expires_at - timezone.now() <= datetime.timedelta(hours=1)


def test_a_key_about_to_expire_or_revoked_is_not_reused(owner):
    soon, _ = key_create(user=owner, name="playground", scopes=["chat"],
                         expires_at=timezone.now() + datetime.timedelta(minutes=3))
    fresh = key_for_playground(owner)
    key_revoke(fresh)

    assert fresh.pk != soon.pk
    assert key_for_playground(owner).pk not in (soon.pk, fresh.pk)


def test_the_organisation_policy_bounds_it(owner, acme):
    acme.allowed_models, acme.residency = ["gigachat/*"], "RU"
    acme.save()

    key = key_for_playground(owner)

    assert (key.allowed_models, key.residency) == (["gigachat/*"], "RU")


def test_a_billing_viewer_gets_none(owner, acme):
    Membership.objects.filter(user=owner).update(role=Membership.Role.BILLING_VIEWER)
    with pytest.raises(PermissionDenied):
        key_for_playground(owner)


def test_the_playground_offers_ones_own_active_chat_keys(owner, bob, acme):
    mine, _ = key_create(user=owner, name="mine")
    key_create(user=owner, name="no-chat", scopes=["models:read"])
    expired, _ = key_create(user=owner, name="expired", expires_at=timezone.now() + datetime.timedelta(seconds=1))
    type(expired).objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))
    key_create(user=bob, name="bobs")
    made_here = {mine.id, expired.id} | set(owner.api_keys.filter(name="no-chat").values_list("id", flat=True))

    # (the session gateway's keys of alice, committed earlier in a full run, are hers too: left out)
    assert [k.name for k in playground_keys(owner) if k.id in made_here] == ["mine"]
    assert all(k.user_id == owner.id and "chat" in k.scopes and k.is_active() for k in playground_keys(owner))

