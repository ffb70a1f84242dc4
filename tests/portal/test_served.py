"""The portal as a browser meets it: through the served gateway process (`manage.py serve`), real HTTP.

Sign in, create a key on the keys page, call /v1 with it through the openai SDK, find the call on the
usage page and in the CSV; English on request; the key revoked from the page is refused by /v1."""

import re
import time
import uuid

import httpx
import pytest
from openai import AuthenticationError, OpenAI

from tests.conftest import wait_for_usage

PASSWORD = "portal-e2e-password-42"


@pytest.fixture
def person(gateway, django_db_blocker):
    """A committed user who owns an organisation (the served process reads the same database)."""
    from apps.accounts.models import Organisation, User
    from apps.accounts.services import organisation_create_for
    from apps.keys.models import ApiKey

    name = f"portal-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        user = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
        organisation = organisation_create_for(user, name)
    yield user, organisation
    with django_db_blocker.unblock():
        ApiKey.objects.filter(user=user).delete()
        user.delete()
        Organisation.objects.filter(pk=organisation.pk).delete()


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)


def test_sign_in_create_a_key_call_v1_and_see_the_usage(gateway, person, django_db_blocker):
    user, organisation = person
    with httpx.Client(base_url=gateway.base_url, timeout=30) as browser:
        assert browser.get("/").headers["location"].startswith("/accounts/login/")
        login = browser.get("/accounts/login/")
        assert "Войти" in login.text  # Russian by default
        signed_in = browser.post("/accounts/login/", data={"csrfmiddlewaretoken": _csrf(login), "username": user.username,
                                                           "password": PASSWORD})
        assert signed_in.status_code == 302 and signed_in.headers["location"] == "/"

        keys = browser.get("/keys/")
        created = browser.post("/keys/", data={"csrfmiddlewaretoken": _csrf(keys), "name": "sdk",
                                               "organisation": organisation.pk, "scopes": ["chat", "models:read"]})
        plaintext = re.search(r'<pre class="secret" id="new-key">(xr-[^<]+)</pre>', created.text).group(1)
        assert created.headers["cache-control"] == "no-store"
        assert all(plaintext not in value for value in browser.cookies.values())

        client = OpenAI(base_url=gateway.v1, api_key=plaintext, max_retries=0, timeout=30)
        raw = client.chat.completions.with_raw_response.create(
            model="mts/mws-gpt-alpha", messages=[{"role": "user", "content": "hi"}])
        request_id = raw.headers["x-request-id"]
        record = wait_for_usage(django_db_blocker, request_id)
        assert record.organisation_id == organisation.pk

        assert request_id in browser.get("/usage/").text
        assert request_id in browser.get("/usage.csv").text
        browser.post("/i18n/setlang/", data={"csrfmiddlewaretoken": _csrf(keys), "language": "en", "next": "/usage/"})
        assert "Download CSV" in browser.get("/usage/").text

        keys = browser.get("/keys/")
        key_id = re.search(r'action="/keys/(\d+)/revoke/"', keys.text).group(1)
        assert browser.post(f"/keys/{key_id}/revoke/", data={"csrfmiddlewaretoken": _csrf(keys)}).status_code == 302
        deadline = time.monotonic() + 5  # every process hears of the revocation within a second
        while True:
            try:
                client.chat.completions.create(model="mts/mws-gpt-alpha", messages=[{"role": "user", "content": "hi"}])
            except AuthenticationError:
                break
            assert time.monotonic() < deadline, "the revoked key still works"
            time.sleep(0.2)
