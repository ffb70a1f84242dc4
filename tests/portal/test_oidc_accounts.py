"""Whom an OpenID Connect login signs in: the account of the verified address, or a new one when the sign-up
policy lets the address in (the browser tests in tests/browser/test_login.py drive the whole flow)."""

import datetime
import uuid

import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from apps.accounts.models import Invitation, Membership, User
from apps.accounts.services import invitation_create
from apps.portal.oidc import oidc_login_name, person_for_identity

pytestmark = pytest.mark.django_db


def _address(domain="example.com"):
    return f"idp-{uuid.uuid4().hex[:8]}@{domain}"


@pytest.fixture
def policy(settings):
    def set_policy(name, domains=()):
        settings.XROUTER = settings.XROUTER | {"SIGNUP": name, "SIGNUP_DOMAINS": list(domains)}

    return set_policy


def test_the_account_with_the_address_is_found_whatever_its_case(alice):
    assert person_for_identity(alice.email.upper(), "someone") == alice


def test_an_address_two_accounts_share_is_refused(alice):
    User.objects.create_user(f"twin-{uuid.uuid4().hex[:6]}", alice.email.upper())
    with pytest.raises(PermissionDenied):
        person_for_identity(alice.email, "alice")


def test_a_deactivated_account_is_refused(alice):
    User.objects.filter(pk=alice.pk).update(is_active=False)
    with pytest.raises(PermissionDenied):
        person_for_identity(alice.email, "alice")


def test_open_sign_up_makes_an_account_with_its_own_organisation(policy, alice):
    policy("open")
    email = _address()
    user = person_for_identity(email, alice.username)  # the hint is taken: a suffix is added

    assert user.email == email and user.username.startswith(f"{alice.username}-") and not user.has_usable_password()
    assert Membership.objects.get(user=user).role == Membership.Role.OWNER


def test_the_domains_policy_takes_only_listed_domains(policy):
    policy("domains", ["bank.example"])
    with pytest.raises(PermissionDenied):
        person_for_identity(_address("gmail.example"), "outsider")
    assert person_for_identity(_address("bank.example"), "insider").is_active


def test_invite_only_takes_invited_addresses_and_accepts_their_invitations(policy, acme):
    policy("invite")
    with pytest.raises(PermissionDenied):
        person_for_identity(_address(), "stranger")
    email = _address()
    invitation, _ = invitation_create(acme, email, Membership.Role.BILLING_VIEWER, days=7)
    expired, _ = invitation_create(acme, _address(), days=7)
    Invitation.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - datetime.timedelta(seconds=1))

    user = person_for_identity(email.upper(), "invited")

    assert [(m.organisation, m.role) for m in Membership.objects.filter(user=user)] == [(acme, "billing_viewer")]
    assert Invitation.objects.get(pk=invitation.pk).accepted_by == user
    with pytest.raises(PermissionDenied):
        person_for_identity(expired.email, "late")


def test_the_button_needs_the_whole_configuration(settings, browser):
    settings.XROUTER = settings.XROUTER | {"OIDC_LOGIN": {"DISCOVERY_URL": "http://127.0.0.1:9/.well-known/openid-configuration",
                                                          "CLIENT_ID": "portal", "CLIENT_SECRET": "", "NAME": "ID"}}
    assert oidc_login_name() is None
    assert 'id="oidc-login"' not in browser().get("/accounts/login/").content.decode()
    assert browser().post("/accounts/login/oidc/").status_code == 404

    settings.XROUTER["OIDC_LOGIN"]["CLIENT_SECRET"] = "secret"
    page = browser().get("/accounts/login/").content.decode()
    assert oidc_login_name() == "ID" and 'id="oidc-login"' in page and "secret" not in page


@pytest.mark.parametrize(("url", "accepted"), [("https://id.example/.well-known/openid-configuration", True),
                                               ("http://127.0.0.1:8080/.well-known/openid-configuration", True),
                                               ("http://id.example/.well-known/openid-configuration", False),
                                               ("ftp://id.example/", False)])
def test_the_discovery_url_must_be_https_except_on_loopback(url, accepted):
    from tests.test_settings import run_check

    result = run_check(XROUTER_OIDC_LOGIN_DISCOVERY_URL=url)
    assert (result.returncode == 0) is accepted
    assert accepted or "XROUTER_OIDC_LOGIN_DISCOVERY_URL" in result.stderr
