"""The OAuth cast: an organisation (initrode) whose owner olga signs in through the portal's login form,
a public PKCE application and a confidential client-credentials one, all committed (the server
process reads them), against the session gateway of tests/conftest.py (`manage.py serve`)."""

import re
import uuid
from dataclasses import dataclass
from html import unescape
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client

PASSWORD = "correct-horse-battery-staple-9"
REDIRECT_URI = "http://127.0.0.1:8765/callback"  # loopback http: allowed; never actually visited


@dataclass
class World:
    base: str
    organisation: object
    olga: object
    public_app: object
    server_app: object
    server_secret: str

    @property
    def token_url(self) -> str:
        return self.base + "/o/token/"


@pytest.fixture(scope="session")
def world(gateway, django_db_blocker) -> World:
    from apps.accounts.models import Organisation, User
    from apps.accounts.services import membership_add
    from apps.oauth.models import Application
    from apps.oauth.services import application_create

    suffix = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        organisation = Organisation.objects.create(name=f"initrode-{suffix}")
        olga = User.objects.create_user(f"olga-{suffix}", f"olga-{suffix}@example.com", PASSWORD)
        membership_add(organisation, olga, "owner")
        public_app, _ = application_create(user=olga, organisation=organisation, name="olga's CLI",
                                           client_type=Application.CLIENT_PUBLIC, redirect_uris=REDIRECT_URI)
        server_app, secret = application_create(user=olga, organisation=organisation, name="olga's batch job",
                                                client_type=Application.CLIENT_CONFIDENTIAL,
                                                authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    return World(gateway.base_url, organisation, olga, public_app, server_app, secret)


def signed_in(base: str, username: str) -> httpx.Client:
    """A browser-like client signed in through the portal's login form."""
    browser = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    page = browser.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    answer = browser.post("/accounts/login/", data={"csrfmiddlewaretoken": csrf, "username": username,
                                                    "password": PASSWORD, "next": "/"})
    assert answer.status_code == 302, answer.text[:500]
    return browser


def consent(browser: httpx.Client, authorization_url: str) -> httpx.Response:
    """Open the authorization URL as the signed-in person and press Authorize on the consent page;
    the answer is the redirect (or the refusal) the toolkit sends."""
    page = browser.get(authorization_url)
    if page.status_code != 200 or 'id="authorizationForm"' not in page.text:
        return page
    fields = {unescape(name): unescape(value) for name, value in
              re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page.text)}
    return browser.post("/o/authorize/", data={**fields, "allow": "Authorize"})


def pkce_client(world, **kwargs) -> OAuth2Client:
    return OAuth2Client(world.public_app.client_id, redirect_uri=REDIRECT_URI, scope="openid chat models:read",
                        code_challenge_method="S256", timeout=30, **kwargs)


def authorize(world, client: OAuth2Client, verifier: str) -> str:
    """The redirect URL carrying a fresh code, as a signed-in olga consents."""
    url, _state = client.create_authorization_url(world.base + "/o/authorize/", code_verifier=verifier)
    answer = consent(signed_in(world.base, world.olga.username), url)
    assert answer.status_code == 302, answer.text[:500]
    assert "code" in parse_qs(urlsplit(answer.headers["location"]).query), answer.headers["location"]
    return answer.headers["location"]


def pkce_tokens(world) -> dict:
    """A fresh token set (access, refresh, ID token) for olga through the whole flow."""
    client, verifier = pkce_client(world), generate_token(64)
    return client.fetch_token(world.token_url, authorization_response=authorize(world, client, verifier),
                              code_verifier=verifier)


def models_status(base_or_world, token: str) -> int:
    base = getattr(base_or_world, "base", base_or_world)
    return httpx.get(base + "/v1/models", headers={"authorization": f"Bearer {token}"}, timeout=30).status_code
