"""Sign-up with e-mail confirmation, login with lock-out, password reset, sign-up policies."""

import os
import re
import subprocess
import sys
import uuid

import pytest
from django.core import mail

from apps.accounts.models import Membership, User
from tests.conftest import ROOT

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-42"


def _name(stem="user"):
    return f"{stem}-{uuid.uuid4().hex[:8]}"  # the lock-out counters live in a Redis that parallel runs share


def _sign_up(client, username, email, organisation=""):
    return client.post("/signup/", {"username": username, "email": email, "organisation": organisation,
                                    "password1": PASSWORD, "password2": PASSWORD})


def _link(message) -> str:
    return re.search(r"https?://[^/\s]+(/\S+)", message.body).group(1)


def test_sign_up_confirm_and_sign_in(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    client, username = browser(), _name()

    page = _sign_up(client, username, f"{username}@example.com", organisation=f"org of {username}")

    assert page.status_code == 200
    user = User.objects.get(username=username)
    assert not user.is_active  # until the address is confirmed
    membership = Membership.objects.get(user=user)
    assert (membership.role, membership.organisation.name) == ("owner", f"org of {username}")
    assert user.organisation == membership.organisation
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [f"{username}@example.com"]
    refused = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert refused.status_code == 200 and "_auth_user_id" not in client.session

    confirmed = client.get(_link(mail.outbox[0]))

    assert confirmed.status_code == 302 and confirmed["Location"] == "/accounts/login/"
    assert User.objects.get(username=username).is_active
    signed_in = client.post("/accounts/login/", {"username": username, "password": PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/"
    assert client.get("/").status_code == 200


def test_a_forged_confirmation_link_is_refused(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    client, username = browser(), _name()
    _sign_up(client, username, f"{username}@example.com")
    link = _link(mail.outbox[0])

    forged = client.get(link.rstrip("/")[:-3] + "abc/")

    assert forged.status_code == 400
    assert not User.objects.get(username=username).is_active


def test_weak_passwords_are_refused(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    username = _name()
    page = browser().post("/signup/", {"username": username, "email": f"{username}@example.com",
                                       "password1": "12345678", "password2": "12345678"})
    assert page.status_code == 200 and not User.objects.filter(username=username).exists()
    assert page.context["form"].errors["password2"]


def test_invite_policy_offers_no_form_and_creates_nobody(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "invite"}
    client, username = browser(), _name()

    page = client.get("/signup/")
    posted = _sign_up(client, username, f"{username}@example.com")

    assert "по приглашению" in page.content.decode()
    assert posted.status_code == 200 and not User.objects.filter(username=username).exists()
    assert mail.outbox == []


def test_domains_policy_takes_only_listed_domains(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "domains", "SIGNUP_DOMAINS": ["bank.example"]}
    client, outsider, insider = browser(), _name(), _name()

    _sign_up(client, outsider, f"{outsider}@gmail.example")
    _sign_up(client, insider, f"{insider}@Bank.Example")

    assert not User.objects.filter(username=outsider).exists()
    assert User.objects.filter(username=insider).exists()
    assert len(mail.outbox) == 1


@pytest.mark.parametrize(("environment", "expected"), [("development", "open"), ("production", "invite")])
def test_sign_up_policy_defaults(environment, expected):
    env = {k: v for k, v in os.environ.items() if k != "XROUTER_SIGNUP"} | {"XROUTER_ENV": environment}
    out = subprocess.run(
        [sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                               "print(settings.XROUTER['SIGNUP'])"],
        cwd=ROOT, env=env | {"DJANGO_SETTINGS_MODULE": "xrouter_project.settings"},
        capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == expected


def test_lock_out_after_repeated_failures(browser, settings):
    settings.XROUTER = settings.XROUTER | {"LOGIN_MAX_FAILURES": 5, "LOGIN_LOCKOUT_SECONDS": 900}
    username = _name("locked")
    User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    client = browser(REMOTE_ADDR="10.0.0.7")

    failures = [client.post("/accounts/login/", {"username": username, "password": "wrong"}).status_code
                for _ in range(5)]
    locked = client.post("/accounts/login/", {"username": username, "password": PASSWORD})

    assert failures == [200] * 5
    assert locked.status_code == 429 and "_auth_user_id" not in client.session
    assert "15" in locked.content.decode()  # "try again in 15 minutes"
    # Another address is not locked out by this one's failures.
    elsewhere = browser(REMOTE_ADDR="10.0.0.8")
    assert elsewhere.post("/accounts/login/", {"username": username, "password": PASSWORD}).status_code == 302


def test_a_success_resets_the_failure_count(browser, settings):
    settings.XROUTER = settings.XROUTER | {"LOGIN_MAX_FAILURES": 3}
    username = _name("reset")
    User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    client = browser()
    for _ in range(2):
        client.post("/accounts/login/", {"username": username, "password": "wrong"})
    assert client.post("/accounts/login/", {"username": username, "password": PASSWORD}).status_code == 302
    client.post("/accounts/logout/")

    for _ in range(2):
        client.post("/accounts/login/", {"username": username, "password": "wrong"})

    assert client.post("/accounts/login/", {"username": username, "password": PASSWORD}).status_code == 302


def test_password_reset_by_e_mail(browser):
    username = _name()
    User.objects.create_user(username, f"{username}@example.com", "old-password-123456")
    client = browser()

    client.post("/accounts/password_reset/", {"email": f"{username}@example.com"})
    form = client.get(_link(mail.outbox[0]), follow=True)
    done = client.post(form.redirect_chain[-1][0], {"new_password1": PASSWORD, "new_password2": PASSWORD})

    assert done.status_code == 302
    assert User.objects.get(username=username).check_password(PASSWORD)


def test_logout_needs_post_and_signs_out(browser, alice):
    client = browser(alice)
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302


def test_a_taken_organisation_name_gets_a_suffix(browser, settings, acme):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    username = _name()
    _sign_up(browser(), username, f"{username}@example.com", organisation="acme")
    membership = Membership.objects.get(user__username=username)
    assert (membership.organisation.name, membership.role) == ("acme-2", "owner")
    assert not Membership.objects.filter(organisation=acme, user__username=username).exists()


def test_an_unsendable_confirmation_leaves_no_account(browser, settings):
    """A real SMTP client against a loopback port where nothing listens."""
    from tests.conftest import free_port

    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_TIMEOUT = "127.0.0.1", free_port(), 5
    username = _name()

    page = _sign_up(browser(), username, f"{username}@example.com")

    assert page.status_code == 200 and "Не удалось отправить письмо" in page.content.decode()
    assert not User.objects.filter(username=username).exists()


def test_a_confirmation_link_is_no_password_reset_link(browser, settings):
    settings.XROUTER = settings.XROUTER | {"SIGNUP": "open"}
    client, username = browser(), _name()
    _sign_up(client, username, f"{username}@example.com")
    uidb64, token = _link(mail.outbox[0]).rstrip("/").split("/")[-2:]

    page = client.get(f"/accounts/reset/{uidb64}/{token}/", follow=True)

    assert page.context["validlink"] is False


def _fullwidth(text: str, at: int) -> str:
    """`text` with its character `at` in its fullwidth form (NFKC folds it back, as Django's login form does)."""
    return text[:at] + chr(ord(text[at]) + 0xFEE0) + text[at + 1:]


def test_the_lock_out_counts_a_username_however_it_is_spelt(browser, settings):
    settings.XROUTER = settings.XROUTER | {"LOGIN_MAX_FAILURES": 3, "LOGIN_LOCKOUT_SECONDS": 900}
    username = _name("spelt")
    User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    client = browser(REMOTE_ADDR="10.0.0.11")
    assert browser().post("/accounts/login/", {"username": _fullwidth(username, 0),
                                               "password": PASSWORD}).status_code == 302  # the same person

    failures = [client.post("/accounts/login/", {"username": _fullwidth(username, i), "password": "wrong"}).status_code
                for i in range(3)]  # three spellings of one name: still three failures of one person
    locked = client.post("/accounts/login/", {"username": username, "password": PASSWORD})

    assert failures == [200] * 3
    assert locked.status_code == 429 and "_auth_user_id" not in client.session


def test_the_lock_out_counts_an_ipv6_network_as_one_address(browser, settings):
    # Anyone holds a /64 (a host, a phone): its 2**64 addresses must not each get fresh password guesses.
    settings.XROUTER = settings.XROUTER | {"LOGIN_MAX_FAILURES": 3, "LOGIN_LOCKOUT_SECONDS": 900}
    username = _name("ipv6")
    User.objects.create_user(username, f"{username}@example.com", PASSWORD)
    prefix = f"2001:db8:{uuid.uuid4().hex[:4]}:{uuid.uuid4().hex[:4]}"

    failures = [browser(REMOTE_ADDR=f"{prefix}::{i + 1}").post(
        "/accounts/login/", {"username": username, "password": "wrong"}).status_code for i in range(3)]
    locked = browser(REMOTE_ADDR=f"{prefix}::99").post("/accounts/login/", {"username": username, "password": PASSWORD})
    elsewhere = browser(REMOTE_ADDR="2001:db8:ffff:ffff::1").post(
        "/accounts/login/", {"username": username, "password": PASSWORD})

    assert failures == [200] * 3
    assert locked.status_code == 429
    assert elsewhere.status_code == 302  # another network is not locked out by this one's failures
