"""The organisation policy bounds every key created in it (apps.keys.services.key_create, the one check)."""

import pytest
from django.core.exceptions import PermissionDenied

from apps.accounts.models import Membership
from apps.keys.services import key_create


@pytest.fixture
def ru_gigachat(acme):
    acme.allowed_models, acme.residency = ["gigachat/*", "yandexgpt/yandexgpt-lite"], "RU"
    acme.save()
    return acme


@pytest.mark.django_db
def test_a_key_without_limits_of_its_own_takes_the_policy(alice, ru_gigachat):
    key, _ = key_create(user=alice, name="k")
    assert key.organisation == ru_gigachat
    assert key.allowed_models == ["gigachat/*", "yandexgpt/yandexgpt-lite"]
    assert key.residency == "RU"


@pytest.mark.django_db
def test_empty_limits_take_the_policy_as_the_admin_form_sends_them(alice, ru_gigachat):
    key, _ = key_create(user=alice, name="k", organisation=ru_gigachat, allowed_models=[], residency="")
    assert key.allowed_models == ["gigachat/*", "yandexgpt/yandexgpt-lite"] and key.residency == "RU"


@pytest.mark.django_db
def test_a_key_narrower_than_the_policy_is_created(alice, ru_gigachat):
    key, _ = key_create(user=alice, name="k", allowed_models=["gigachat/GigaChat-Pro", "gigachat/lite*"], residency="RU")
    # An exact entry the policy only matches by a glob is kept to that model (it names no rule or alias).
    assert key.allowed_models == ["gigachat/GigaChat-Pr[o]", "gigachat/lite*"]


@pytest.mark.parametrize("limits", [
    {"allowed_models": ["openai/*"]},
    {"allowed_models": ["gigachat/*", "*"]},
    {"allowed_models": ["yandexgpt/*"]},  # the policy names one yandexgpt model, not the family
    {"allowed_models": ["gigachat/*"], "residency": "EU"},
])
@pytest.mark.django_db
def test_a_key_wider_than_the_policy_is_refused(alice, ru_gigachat, limits):
    with pytest.raises(PermissionDenied, match="acme"):
        key_create(user=alice, name="wide", **limits)
    assert not alice.api_keys.exists()


@pytest.mark.django_db
def test_the_policy_binds_keys_created_by_keys_too(alice, acme):
    parent, _ = key_create(user=alice, name="manager", scopes=["chat", "keys:manage"])  # before the policy
    acme.allowed_models = ["gigachat/*"]
    acme.save()
    child, _ = key_create(user=alice, name="child", parent=parent)
    assert child.allowed_models == ["gigachat/*"]
    with pytest.raises(PermissionDenied):
        key_create(user=alice, name="wider", parent=parent, allowed_models=["openai/*"])


@pytest.mark.django_db
def test_the_policy_of_the_named_organisation_applies_not_the_default_one(alice, acme, globex):
    globex.allowed_models = ["tbank/*"]
    globex.save()
    Membership.objects.create(user=alice, organisation=globex)  # a key's organisation is one of its user's
    assert key_create(user=alice, name="acme")[0].allowed_models == []  # acme has no policy
    assert key_create(user=alice, name="globex", organisation=globex)[0].allowed_models == ["tbank/*"]


@pytest.mark.django_db
def test_without_an_organisation_there_is_no_policy(db):
    from apps.accounts.models import User

    loner = User.objects.create(username="loner")
    key, _ = key_create(user=loner, name="k", allowed_models=["*"], residency="EU")
    assert key.organisation is None and key.allowed_models == ["*"] and key.residency == "EU"
