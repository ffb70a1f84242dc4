"""Logging in, in headless Chromium against a served gateway: two-factor enrolment and login (TOTP codes
computed from the secret the page shows), and login through a stand-in OpenID Connect provider on loopback."""

import base64
import os
import time
import uuid
from contextlib import contextmanager

import httpx
import pytest
from django_otp.oath import TOTP

from tests.browser.oidc_provider import CLIENT_ID, CLIENT_SECRET, StandInProvider
from tests.conftest import start_gateway, stop_gateway

PASSWORD = "browser-login-password-42"


@contextmanager
def database(django_db_blocker):
    """The committed test database, for the served process to read. Closed after use: under Playwright's
    event loop a connection opened here would escape the teardown's close and hold the database open."""
    from django.db import connections

    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connections.close_all()


def totp_code(secret_b32: str, at: float | None = None) -> str:
    totp = TOTP(base64.b32decode(secret_b32))
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


@pytest.fixture
def person(django_db_blocker):
    """make(email=None) → a committed user with a password and an organisation (the served process reads them)."""
    from apps.accounts.models import Organisation, User
    from apps.accounts.services import organisation_create_for

    made = []

    def make(email=None):
        name = f"login-{uuid.uuid4().hex[:8]}"
        with database(django_db_blocker):
            user = User.objects.create_user(name, email or f"{name}@example.com", PASSWORD)
            organisation = organisation_create_for(user, name)
        made.append((user, organisation))
        return user

    yield make
    with database(django_db_blocker):
        for user, organisation in made:
            user.delete()
            Organisation.objects.filter(pk=organisation.pk).delete()


def _sign_in_with_password(page, base_url, user):
    page.goto(base_url + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button.primary")


def test_totp_enrolment_and_login(portal, page_for, person):
    user = person()
    page = page_for("en")
    _sign_in_with_password(page, portal.base_url, user)
    page.wait_for_url(portal.base_url + "/")

    page.goto(portal.base_url + "/security/")
    page.click("text=Turn on two-factor login")
    assert page.locator(".qr svg").is_visible()
    secret = page.locator("#totp-secret").inner_text()
    # The previous time step's code: the login below then takes the current one (a code works once).
    page.fill("input[name=code]", totp_code(secret, time.time() - 30))
    page.click("text=Confirm")
    recovery = page.locator("#recovery-codes").inner_text().split()
    assert len(recovery) == 10
    page.click("text=Sign out")

    _sign_in_with_password(page, portal.base_url, user)
    page.wait_for_url("**/accounts/login/code/**")
    page.fill("input[name=code]", totp_code(secret))
    page.click("button.primary")
    page.wait_for_url(portal.base_url + "/")
    assert page.locator(".who").inner_text() == user.username

    # A recovery code signs in too, once.
    page.click("text=Sign out")
    _sign_in_with_password(page, portal.base_url, user)
    page.fill("input[name=code]", recovery[0])
    page.click("button.primary")
    page.wait_for_url(portal.base_url + "/")


# --- OpenID Connect login ---

@pytest.fixture(scope="module")
def identity_provider():
    provider = StandInProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def oidc_portal(django_db_setup, identity_provider, tmp_path_factory):
    """A gateway whose login page offers the stand-in provider; open sign-up."""
    env = {"XROUTER_OIDC_LOGIN_DISCOVERY_URL": identity_provider.discovery_url,
           "XROUTER_OIDC_LOGIN_CLIENT_ID": CLIENT_ID, "XROUTER_OIDC_LOGIN_CLIENT_SECRET": CLIENT_SECRET,
           "XROUTER_OIDC_LOGIN_NAME": "Stand-in ID", "XROUTER_SIGNUP": "open",
           "XROUTER_EMAIL_DIR": str(tmp_path_factory.mktemp("oidc-mail")),
           "XROUTER_USAGE_STREAM": f"xrouter:usage:test:oidc{os.getpid()}"}
    process, base = start_gateway(env)
    yield base
    stop_gateway(process)


def _sign_in_with_provider(page, base_url):
    page.goto(base_url + "/accounts/login/")
    page.click("#oidc-login")


def test_an_account_with_the_verified_address_signs_in_through_the_provider(oidc_portal, identity_provider, page_for,
                                                                           person):
    user = person()
    identity_provider.identity = {"sub": "u-1", "email": user.email.upper(), "email_verified": True}
    page = page_for("ru")

    page.goto(oidc_portal + "/accounts/login/")
    assert page.locator("#oidc-login").inner_text() == "Войти через Stand-in ID"
    page.click("#oidc-login")

    page.wait_for_url(oidc_portal + "/")
    assert page.locator(".who").inner_text() == user.username


def test_a_new_verified_address_gets_an_account_and_an_organisation(oidc_portal, identity_provider, page_for,
                                                                   django_db_blocker):
    from apps.accounts.models import Membership, Organisation, User

    email = f"oidc-{uuid.uuid4().hex[:8]}@example.com"
    identity_provider.identity = {"sub": "u-2", "email": email, "email_verified": True,
                                  "preferred_username": email.split("@")[0]}
    page = page_for("en")

    _sign_in_with_provider(page, oidc_portal)

    page.wait_for_url(oidc_portal + "/")
    with database(django_db_blocker):
        user = User.objects.get(email=email)
        membership = Membership.objects.get(user=user)
        assert (user.username, user.has_usable_password(), membership.role) == (email.split("@")[0], False, "owner")
        Organisation.objects.filter(pk=membership.organisation_id).delete()
        user.delete()


def test_the_code_step_follows_the_provider_for_two_factor_accounts(oidc_portal, identity_provider, page_for,
                                                                   person, django_db_blocker):
    from apps.accounts.services import totp_enrolment_confirm, totp_enrolment_start

    user = person()
    with database(django_db_blocker):
        device = totp_enrolment_start(user)
        secret = base64.b32encode(device.bin_key).decode()
        assert totp_enrolment_confirm(device, totp_code(secret, time.time() - 30))
    identity_provider.identity = {"sub": "u-3", "email": user.email, "email_verified": True}
    page = page_for("en")

    _sign_in_with_provider(page, oidc_portal)

    page.wait_for_url("**/accounts/login/code/**")
    assert page.locator(".who").count() == 0  # not signed in yet
    page.fill("input[name=code]", totp_code(secret))
    page.click("button.primary")
    page.wait_for_url(oidc_portal + "/")
    assert page.locator(".who").inner_text() == user.username


@pytest.mark.parametrize("case", ["unverified address", "forged signature"])
def test_the_provider_s_word_is_checked(oidc_portal, identity_provider, page_for, person, case):
    user = person()
    identity_provider.identity = {"sub": "u-4", "email": user.email, "email_verified": case != "unverified address"}
    identity_provider.sign_with_another_key = case == "forged signature"
    page = page_for("en")
    token_requests = identity_provider.token_requests
    try:
        _sign_in_with_provider(page, oidc_portal)
        page.wait_for_url("**/accounts/login/")
    finally:
        identity_provider.sign_with_another_key = False

    assert identity_provider.token_requests == token_requests + 1  # refused on reading the ID token, not before
    assert page.locator(".messages .error").count() == 1
    assert page.locator(".who").count() == 0
    assert httpx.get(oidc_portal + "/", cookies={c["name"]: c["value"] for c in page.context.cookies()},
                     timeout=10).status_code == 302


def test_without_configuration_there_is_no_button_and_no_route(portal, page_for):
    page = page_for("en")
    page.goto(portal.base_url + "/accounts/login/")
    assert page.locator("#oidc-login").count() == 0
    assert httpx.post(portal.base_url + "/accounts/login/oidc/", timeout=10).status_code in (403, 404)
    assert httpx.get(portal.base_url + "/accounts/login/oidc/callback/?code=x&state=y", timeout=10).status_code == 404
