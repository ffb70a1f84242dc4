"""The authorization code flow with PKCE, driven by a real OAuth client (Authlib) against a running server,
and its refusals: no challenge, `plain`, a wrong verifier, a reused code, a redirect URI that does not match,
and a refresh token presented twice (the whole family is revoked)."""

from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.common.security import generate_token
from authlib.integrations.base_client.errors import OAuthError

from .conftest import REDIRECT_URI, authorize, models_status, pkce_client, signed_in


def test_the_full_pkce_flow_gives_hashed_xro_tokens_that_work_on_v1(world, django_db_blocker):
    from apps.oauth.models import AccessToken, RefreshToken

    client, verifier = pkce_client(world), generate_token(64)
    token = client.fetch_token(world.token_url, authorization_response=authorize(world, client, verifier),
                               code_verifier=verifier)
    assert token["access_token"].startswith("xro-") and token["refresh_token"].startswith("xrr-")
    assert token["token_type"] == "Bearer" and 0 < token["expires_in"] <= 3600
    assert set(token["scope"].split()) == {"openid", "chat", "models:read"}
    assert "id_token" in token
    assert models_status(world, token["access_token"]) == 200
    with django_db_blocker.unblock():  # stored hashed: the plaintext is nowhere in the database
        assert not AccessToken.objects.filter(token=token["access_token"]).exists()
        assert not AccessToken.objects.exclude(token="").filter(application=world.public_app).exists()
        assert not RefreshToken.objects.exclude(token="").filter(application=world.public_app).exists()


def test_it_refuses_an_authorization_request_without_a_code_challenge(world):
    url = (f"{world.base}/o/authorize/?response_type=code&client_id={world.public_app.client_id}"
           f"&redirect_uri={REDIRECT_URI}&scope=chat&state=s1")
    answer = signed_in(world.base, world.olga.username).get(url)
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["location"]).query)["error"] == ["invalid_request"]
    assert "code=" not in answer.headers["location"]


@pytest.mark.parametrize("method", ["plain", None])
def test_it_refuses_the_plain_challenge_method(world, method):
    url = (f"{world.base}/o/authorize/?response_type=code&client_id={world.public_app.client_id}"
           f"&redirect_uri={REDIRECT_URI}&scope=chat&state=s2&code_challenge={'v' * 50}")
    if method:
        url += f"&code_challenge_method={method}"
    answer = signed_in(world.base, world.olga.username).get(url)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and "S256" in query["error_description"][0]


def test_it_refuses_a_wrong_verifier(world):
    client = pkce_client(world)
    redirect = authorize(world, client, generate_token(64))
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(world.token_url, authorization_response=redirect, code_verifier=generate_token(64))
    assert refused.value.error == "invalid_grant"


def test_a_code_works_once(world):
    client, verifier = pkce_client(world), generate_token(64)
    redirect = authorize(world, client, verifier)
    first = client.fetch_token(world.token_url, authorization_response=redirect, code_verifier=verifier)
    assert first["access_token"].startswith("xro-")
    with pytest.raises(OAuthError) as refused:
        pkce_client(world).fetch_token(world.token_url, authorization_response=redirect, code_verifier=verifier)
    assert refused.value.error == "invalid_grant"


def test_it_refuses_a_redirect_uri_that_was_not_registered(world):
    client = pkce_client(world)
    client.redirect_uri = "http://127.0.0.1:8765/elsewhere"
    url, _ = client.create_authorization_url(world.base + "/o/authorize/", code_verifier=generate_token(64))
    answer = signed_in(world.base, world.olga.username).get(url)
    # Never redirected to an unregistered URI: the error is shown here, and no code is made.
    assert answer.status_code == 400 and "location" not in answer.headers


def test_the_token_request_must_repeat_the_redirect_uri(world):
    client, verifier = pkce_client(world), generate_token(64)
    redirect = authorize(world, client, verifier)
    client.redirect_uri = "http://127.0.0.1:8765/elsewhere"
    with pytest.raises(OAuthError) as refused:
        client.fetch_token(world.token_url, authorization_response=redirect, code_verifier=verifier)
    assert refused.value.error in ("invalid_request", "invalid_grant")


def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(world):
    client, verifier = pkce_client(world), generate_token(64)
    first = client.fetch_token(world.token_url, authorization_response=authorize(world, client, verifier),
                               code_verifier=verifier)
    second = client.refresh_token(world.token_url, refresh_token=first["refresh_token"])
    assert second["refresh_token"] != first["refresh_token"] and second["access_token"] != first["access_token"]
    assert models_status(world, second["access_token"]) == 200

    with pytest.raises(OAuthError) as refused:  # the rotated-out token again: someone copied it
        client.refresh_token(world.token_url, refresh_token=first["refresh_token"])
    assert refused.value.error == "invalid_grant"
    with pytest.raises(OAuthError):  # the family is revoked: the legitimate holder's newer token too
        client.refresh_token(world.token_url, refresh_token=second["refresh_token"])
    assert models_status(world, second["access_token"]) == 401
    assert models_status(world, first["access_token"]) == 401


def test_the_consent_page_is_the_portal_s_in_russian(world):
    url, _ = pkce_client(world).create_authorization_url(world.base + "/o/authorize/", code_verifier=generate_token(64))
    page = signed_in(world.base, world.olga.username).get(url)
    assert page.status_code == 200 and 'lang="ru"' in page.text
    assert "Разрешить доступ приложению olga" in page.text and "Общаться с моделями" in page.text
    assert world.organisation.name in page.text  # who pays is said before consenting
