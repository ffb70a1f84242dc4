"""Two-factor login (TOTP through django-otp): enrolment on the security page, the code step at login under
the lock-out, recovery codes, turning it off, and the admin's demand for it from staff in production.

Codes are computed from the device's secret as an authenticator app does (django-otp's own TOTP)."""

import base64
import hashlib
import re
import time
import uuid

import pytest
from django_otp.oath import TOTP
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.accounts.models import User
from apps.accounts.services import totp_enrolment_confirm, totp_enrolment_start

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-42"


def code(device: TOTPDevice, at: float | None = None) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits)
    totp.time = time.time() if at is None else at
    return f"{totp.token():06d}"


def _person(**extra) -> User:
    name = f"tf-{uuid.uuid4().hex[:8]}"  # the lock-out counters live in a Redis that parallel runs share
    return User.objects.create_user(name, f"{name}@example.com", PASSWORD, **extra)


def _enrolled(user) -> tuple[TOTPDevice, list[str]]:
    """A confirmed device, its confirming code taken from the previous time step (so the current one is fresh)."""
    device = totp_enrolment_start(user)
    recovery = totp_enrolment_confirm(device, code(device, time.time() - device.step))
    assert recovery is not None
    device.refresh_from_db()
    return device, recovery


def _password(client, user, next_url=None):
    data = {"username": user.username, "password": PASSWORD} | ({"next": next_url} if next_url else {})
    return client.post("/accounts/login/", data)


def test_enrolment_shows_a_qr_code_and_the_secret_then_confirms_with_a_code(browser, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp slows down a retry after a wrong code by a second
    user = _person()
    client = browser(user)
    assert "two-factor-status" in client.get("/security/").content.decode()

    started = client.post("/security/", {"action": "start"})

    page = started.content.decode()
    device = TOTPDevice.objects.get(user=user)
    assert not device.confirmed and started["Cache-Control"] == "no-store"
    assert "<svg" in page and "<path" in page
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page).group(1)
    assert base64.b32decode(secret) == device.bin_key

    wrong = client.post("/security/", {"action": "confirm", "code": "000000" if code(device) != "000000" else "111111"})
    assert "errorlist" in wrong.content.decode() and not TOTPDevice.objects.get(pk=device.pk).confirmed

    confirmed = client.post("/security/", {"action": "confirm", "code": code(device)})

    body = confirmed.content.decode()
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    shown = re.search(r'id="recovery-codes">([^<]+)<', body).group(1).split()
    stored = set(StaticToken.objects.filter(device__user=user).values_list("token", flat=True))
    assert len(shown) == 10 and all(re.fullmatch(r"[a-z2-7]{4}(-[a-z2-7]{4}){3}", c) for c in shown)
    assert stored == {hashlib.sha256(c.replace("-", "").encode()).hexdigest()[:16] for c in shown}  # hashed only
    assert confirmed["Cache-Control"] == "no-store"
    again = client.get("/security/").content.decode()
    assert not any(c in again for c in shown) and "<svg" not in again  # shown once, and the secret no more


def test_login_asks_for_the_code_after_the_password(browser):
    user = _person()
    device, _ = _enrolled(user)
    client = browser()

    after_password = _password(client, user, next_url="/keys/")

    assert after_password.status_code == 302 and after_password["Location"].startswith("/accounts/login/code/")
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # not signed in yet
    step = client.get(after_password["Location"])
    assert step.status_code == 200 and 'autocomplete="one-time-code"' in step.content.decode()

    signed_in = client.post("/accounts/login/code/", {"code": code(device), "next": "/keys/"})

    assert signed_in.status_code == 302 and signed_in["Location"] == "/keys/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.get("/keys/").status_code == 200


def test_a_code_works_once(browser):
    user = _person()
    device, _ = _enrolled(user)
    first, second = browser(), browser()
    _password(first, user)
    _password(second, user)
    used = code(device)

    assert first.post("/accounts/login/code/", {"code": used}).status_code == 302
    replay = second.post("/accounts/login/code/", {"code": used})

    assert replay.status_code == 200 and "_auth_user_id" not in second.session


def test_a_recovery_code_signs_in_once(browser):
    user = _person()
    _, recovery = _enrolled(user)
    first, second = browser(), browser()
    _password(first, user)
    _password(second, user)

    assert first.post("/accounts/login/code/", {"code": recovery[0].upper()}).status_code == 302
    assert second.post("/accounts/login/code/", {"code": recovery[0]}).status_code == 200
    assert "_auth_user_id" not in second.session
    assert StaticToken.objects.filter(device__user=user).count() == 9


def test_the_code_step_without_a_password_sends_to_login(browser):
    user = _person()
    device, _ = _enrolled(user)
    client = browser()
    refused = client.post("/accounts/login/code/", {"code": code(device)})
    assert refused.status_code == 302 and refused["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in client.session


def test_wrong_codes_lock_out_and_a_right_password_buys_no_new_guesses(browser, settings):
    settings.XROUTER = settings.XROUTER | {"LOGIN_MAX_FAILURES": 3, "LOGIN_LOCKOUT_SECONDS": 900}
    settings.OTP_TOTP_THROTTLE_FACTOR = 0  # django-otp's own slow-down would hide the lock-out under test
    user = _person()
    device, _ = _enrolled(user)
    client = browser(REMOTE_ADDR="10.0.0.9")
    wrong = "123456" if code(device) != "123456" else "654321"

    _password(client, user)
    failures = [client.post("/accounts/login/code/", {"code": wrong}).status_code for _ in range(2)]
    _password(client, user)  # right again: the count goes on
    third = client.post("/accounts/login/code/", {"code": wrong})
    locked_code = client.post("/accounts/login/code/", {"code": code(device)})
    locked_password = _password(client, user)

    assert failures == [200, 200] and third.status_code == 200
    assert locked_code.status_code == 429 and locked_password.status_code == 429
    assert "_auth_user_id" not in client.session


def test_turning_it_off_needs_a_code(browser, settings):
    settings.OTP_TOTP_THROTTLE_FACTOR = 0
    user = _person()
    device, _ = _enrolled(user)
    client = browser(user)

    refused = client.post("/security/", {"action": "disable", "code": "12"})
    assert TOTPDevice.objects.filter(user=user).exists() and "errorlist" in refused.content.decode()

    done = client.post("/security/", {"action": "disable", "code": code(device)})

    assert done.status_code == 302
    assert not TOTPDevice.objects.filter(user=user).exists()
    assert not StaticToken.objects.filter(device__user=user).exists()
    assert _password(browser(), user)["Location"] == "/"  # the password alone again


# --- The admin: staff need the code step in production ---

@pytest.fixture
def production_admin(settings):
    settings.XROUTER = settings.XROUTER | {"STAFF_TOTP": True}


def test_staff_without_a_device_are_sent_to_enrol(browser, production_admin):
    staff = _person(is_staff=True, is_superuser=True)
    client = browser()
    _password(client, staff)

    admin = client.get("/admin/", follow=True)

    assert admin.redirect_chain[-1][0] == "/security/"
    assert "Сотрудникам" in admin.content.decode()  # "staff need two-factor login", in Russian by default


def test_staff_reach_the_admin_through_the_code_step(browser, production_admin):
    staff = _person(is_staff=True, is_superuser=True)
    device, _ = _enrolled(staff)
    client = browser()

    to_login = client.get("/admin/")
    assert to_login.status_code == 302
    login_page = client.get(to_login["Location"], follow=True)
    assert login_page.redirect_chain[-1][0].startswith("/accounts/login/?next=/admin/")
    step = _password(client, staff, next_url="/admin/")
    signed_in = client.post(step["Location"], {"code": code(device), "next": "/admin/"})

    assert signed_in["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_a_staff_session_without_the_code_is_sent_to_the_code_step(browser, production_admin):
    staff = _person(is_staff=True, is_superuser=True)
    device, _ = _enrolled(staff)
    client = browser(staff)  # signed in, no code shown in this session

    sent = client.get("/admin/", follow=True)

    assert sent.redirect_chain[-1][0].startswith("/accounts/login/code/")
    client.post("/accounts/login/code/", {"code": code(device)})
    assert client.get("/admin/").status_code == 200


def test_in_development_staff_need_no_device(browser, settings):
    settings.XROUTER = settings.XROUTER | {"STAFF_TOTP": False}
    staff = _person(is_staff=True, is_superuser=True)
    assert browser(staff).get("/admin/").status_code == 200


@pytest.mark.parametrize(("environment", "expected"), [("development", "False"), ("production", "True")])
def test_staff_totp_follows_the_environment(environment, expected):
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    env = {**os.environ, "XROUTER_ENV": environment, "DJANGO_SETTINGS_MODULE": "xrouter_project.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                                                "print(settings.XROUTER['STAFF_TOTP'])"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == expected


def test_the_admin_never_shows_a_secret_or_a_recovery_code(browser, settings):
    settings.XROUTER = settings.XROUTER | {"STAFF_TOTP": False}
    staff = _person(is_staff=True, is_superuser=True)
    user = _person()
    device, recovery = _enrolled(user)
    client = browser(staff)
    from django_otp.plugins.otp_static.models import StaticDevice

    pages = [client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/"),
             client.get(f"/admin/otp_static/staticdevice/{StaticDevice.objects.get(user=user).pk}/change/"),
             client.get("/admin/otp_totp/totpdevice/")]

    assert [p.status_code for p in pages] == [200, 200, 200]
    assert client.get(f"/admin/otp_totp/totpdevice/{device.pk}/qrcode/").status_code == 403
    for page in pages:
        body = page.content.decode()
        assert device.key not in body and base64.b32encode(device.bin_key).decode() not in body
        assert not any(code in body for code in recovery)


def test_a_signed_in_person_without_the_admin_is_refused_not_looped(browser, production_admin):
    assert browser(_person()).get("/admin/", follow=True).status_code == 403


def test_the_admins_login_form_never_skips_the_code_step(browser, settings):
    # Without STAFF_TOTP (development, staging), staff who turned two-factor login on still need their code.
    settings.XROUTER = settings.XROUTER | {"STAFF_TOTP": False}
    staff = _person(is_staff=True, is_superuser=True)
    _enrolled(staff)
    client = browser()

    client.post("/admin/login/?next=/admin/", {"username": staff.username, "password": PASSWORD, "next": "/admin/"})

    assert "_auth_user_id" not in client.session
    assert client.get("/keys/").status_code == 302  # the portal: not signed in either
