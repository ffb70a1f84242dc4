"""Issue 12, hardening: an organisation's IP allow-list binds every key and token of it at once (/v1 and the
management API, through the one client-address resolver), besides a key's own list."""

import ipaddress
import uuid

import httpx
import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Membership, Organisation, User
from apps.accounts.services import organisation_update_policy
from apps.common.client_address import parse_networks
from apps.keys.selectors import KeyInfo
from apps.keys.services import key_create
from tests.keys.support import status_within

OFFICE = "203.0.113.0/24"


def info(key=(), organisation=()) -> KeyInfo:
    return KeyInfo(id=1, prefix="00000000", name="k", user_id=1, organisation_id=1, allowed_models=(), residency="",
                   expires_at=None, networks=parse_networks(list(key)), organisation_networks=parse_networks(list(organisation)))


def ip(text):
    return ipaddress.ip_address(text)


def test_both_lists_must_allow_an_address():
    assert info().address_refusal(None) is None
    both = info(key=["203.0.113.0/25"], organisation=[OFFICE])
    assert both.address_refusal(ip("203.0.113.5")) is None
    assert "its IP allow-list" in both.address_refusal(ip("203.0.113.200"))
    organisation_only = info(organisation=[OFFICE])
    assert "organisation's IP allow-list" in organisation_only.address_refusal(ip("198.51.100.1"))
    assert "unknown address" in organisation_only.address_refusal(None)


@pytest.mark.django_db
def test_the_policy_stores_one_spelling_per_network_and_refuses_a_bad_one(acme, alice):
    owner = Membership.objects.get(user=alice, organisation=acme)
    organisation_update_policy(acme, allowed_ips=[OFFICE, " 2001:DB8::/32", OFFICE], by=owner)
    assert Organisation.objects.get(pk=acme.pk).allowed_ips == [OFFICE, "2001:db8::/32"]
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="allowed_ips"):
        organisation_update_policy(acme, allowed_ips=["203.0.113.5/24"], by=owner)


@pytest.mark.django_db
def test_the_management_api_refuses_a_key_and_takes_the_list_from_an_owner(acme, alice, bob):
    _, plaintext = key_create(user=bob, organisation=acme, name="team", scopes=["keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert api.get("/api/v1/keys/", REMOTE_ADDR="198.51.100.1").status_code == 200
    owner = APIClient()
    owner.force_login(alice)
    answer = owner.patch(f"/api/v1/organisations/{acme.pk}/", {"allowed_ips": [OFFICE]}, format="json")
    assert answer.status_code == 200 and answer.json()["allowed_ips"] == [OFFICE]
    refused = api.get("/api/v1/keys/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403 and "organisation's IP allow-list" in refused.json()["error"]["message"]
    assert api.get("/api/v1/keys/", REMOTE_ADDR="203.0.113.9").status_code == 200
    member = APIClient()
    member.force_login(bob)  # a developer may not change the policy
    assert member.patch(f"/api/v1/organisations/{acme.pk}/", {"allowed_ips": []}, format="json").status_code == 403


@pytest.mark.django_db
def test_the_management_api_refuses_an_oauth_token_from_outside(acme, alice):
    from apps.oauth.services import application_create
    from tests.oauth.test_api import oauth_token

    application = application_create(user=alice, organisation=acme, name="ci", client_type="public",
                                     redirect_uris="https://dash.acme.example/callback")[0]
    token = oauth_token(application, alice, "usage:read")
    acme.allowed_ips = [OFFICE]
    acme.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    refused = api.get("/api/v1/usage/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403 and "organisation's IP allow-list" in refused.json()["error"]["message"]
    assert api.get("/api/v1/usage/", REMOTE_ADDR="203.0.113.9").status_code == 200


def test_v1_refuses_at_once_when_the_organisation_fences_itself(gateway, django_db_blocker):
    with django_db_blocker.unblock():
        suffix = uuid.uuid4().hex[:8]
        organisation = Organisation.objects.create(name=f"fenced-{suffix}")
        user = User.objects.create(username=f"fenced-{suffix}", organisation=organisation)
        Membership.objects.create(user=user, organisation=organisation, role=Membership.Role.OWNER)
        _, plaintext = key_create(user=user, organisation=organisation, name="fenced")

    def status():
        return httpx.get(gateway.v1 + "/models", headers={"authorization": f"Bearer {plaintext}"}, timeout=10).status_code

    assert status() == 200  # now cached with the key, and the organisation's (empty) networks
    with django_db_blocker.unblock():
        organisation_update_policy(organisation, allowed_ips=[OFFICE])
    assert status_within(status, 403, timeout=5)[0] == 403  # the bus drops the cached entry
    refused = httpx.get(gateway.v1 + "/models", headers={"authorization": f"Bearer {plaintext}"}, timeout=10).json()
    assert refused["error"]["code"] == "ip_not_allowed" and "organisation's" in refused["error"]["message"]
    with django_db_blocker.unblock():
        organisation_update_policy(organisation, allowed_ips=["127.0.0.0/8", OFFICE])
    assert status_within(status, 200, timeout=5)[0] == 200
