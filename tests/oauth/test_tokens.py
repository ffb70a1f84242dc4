"""Client credentials, revocation, introspection, OpenID Connect discovery and ID tokens, and an OAuth
access token on /v1 through the openai SDK, billed and recorded as an OAuth principal."""

import asyncio
import hashlib
import json

import httpx
import jwt
import pytest
from authlib.integrations.httpx_client import OAuth2Client
from websockets.asyncio.client import connect

from tests.conftest import wait_for_usage

from .conftest import models_status, pkce_tokens


def server_client(world) -> OAuth2Client:
    return OAuth2Client(world.server_app.client_id, world.server_secret, scope="chat models:read", timeout=30)


def test_a_confidential_server_application_gets_a_token_with_client_credentials(world):
    token = server_client(world).fetch_token(world.token_url, grant_type="client_credentials")
    assert token["access_token"].startswith("xro-") and "refresh_token" not in token
    assert set(token["scope"].split()) == {"chat", "models:read"}
    assert models_status(world, token["access_token"]) == 200


def test_client_credentials_need_the_secret(world):
    wrong = OAuth2Client(world.server_app.client_id, "not-the-secret", timeout=30)
    with pytest.raises(Exception) as refused:
        wrong.fetch_token(world.token_url, grant_type="client_credentials")
    assert "invalid_client" in str(refused.value)


def test_a_public_client_cannot_use_client_credentials(world):
    public = OAuth2Client(world.public_app.client_id, timeout=30, token_endpoint_auth_method="none")
    with pytest.raises(Exception) as refused:
        public.fetch_token(world.token_url, grant_type="client_credentials")
    assert "invalid_client" in str(refused.value) or "unauthorized_client" in str(refused.value)


def test_the_openai_sdk_calls_v1_with_an_oauth_access_token_and_the_usage_names_it(world, django_db_blocker):
    from openai import OpenAI

    from apps.oauth.models import AccessToken

    token = pkce_tokens(world)
    client = OpenAI(base_url=world.base + "/v1", api_key=token["access_token"], max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "Привет"}])
    assert raw.parse().choices[0].message.content == "Echo: Привет"
    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    with django_db_blocker.unblock():
        row = AccessToken.objects.get(token_checksum=hashlib.sha256(token["access_token"].encode()).hexdigest())
    assert (record.principal, record.principal_id, record.api_key_id) == ("oauth", row.id, None)
    assert (record.user_id, record.organisation_id) == (world.olga.id, world.organisation.id)
    assert record.prompt_tokens > 0


def test_a_token_without_the_scope_gets_403_naming_it(world):
    token = OAuth2Client(world.server_app.client_id, world.server_secret, scope="models:read", timeout=30).fetch_token(
        world.token_url, grant_type="client_credentials")
    answer = httpx.post(world.base + "/v1/chat/completions", headers={"authorization": f"Bearer {token['access_token']}"},
                        json={"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "missing_scope" and "'chat'" in answer.json()["error"]["message"]


def test_revoking_an_access_token_refuses_it_on_v1(world):
    client = server_client(world)
    token = client.fetch_token(world.token_url, grant_type="client_credentials")
    assert models_status(world, token["access_token"]) == 200  # cached now
    assert client.revoke_token(world.base + "/o/revoke_token/", token=token["access_token"],
                               token_type_hint="access_token").status_code == 200
    assert models_status(world, token["access_token"]) == 401


def test_introspection_says_whether_a_token_is_active(world):
    client = server_client(world)
    token = client.fetch_token(world.token_url, grant_type="client_credentials")
    active = client.introspect_token(world.base + "/o/introspect/", token=token["access_token"]).json()
    assert active["active"] is True and active["client_id"] == world.server_app.client_id
    assert set(active["scope"].split()) == {"chat", "models:read"}
    client.revoke_token(world.base + "/o/revoke_token/", token=token["access_token"])
    assert client.introspect_token(world.base + "/o/introspect/", token=token["access_token"]).json() == {"active": False}
    # Introspection is for clients: no credentials, no answer; and never with the token in a URL.
    assert httpx.post(world.base + "/o/introspect/", data={"token": token["access_token"]}, timeout=30).status_code in (401, 403)
    assert client.get(world.base + "/o/introspect/", params={"token": token["access_token"]}).status_code in (403, 405)


def test_a_client_cannot_introspect_another_organisations_token(world, django_db_blocker):
    from apps.accounts.models import Organisation, User
    from apps.accounts.services import membership_add
    from apps.oauth.models import Application
    from apps.oauth.services import application_create

    with django_db_blocker.unblock():
        other = Organisation.objects.create(name=f"vandelay-{world.organisation.id}-{id(world)}")
        art = User.objects.create_user(f"art-{other.id}")
        membership_add(other, art, "owner")
        spy, secret = application_create(user=art, organisation=other, name="spy", client_type=Application.CLIENT_CONFIDENTIAL,
                                          authorization_grant_type=Application.GRANT_CLIENT_CREDENTIALS)
    token = server_client(world).fetch_token(world.token_url, grant_type="client_credentials")["access_token"]
    snooping = OAuth2Client(spy.client_id, secret, timeout=30)
    assert snooping.introspect_token(world.base + "/o/introspect/", token=token).json() == {"active": False}
    assert server_client(world).introspect_token(world.base + "/o/introspect/", token=token).json()["active"] is True


def test_openid_connect_discovery_and_an_rs256_id_token_verified_with_the_jwks(world):
    discovery = httpx.get(world.base + "/o/.well-known/openid-configuration", timeout=30).json()
    assert discovery["issuer"] == world.base + "/o"
    assert discovery["response_types_supported"] == ["code"]
    assert "RS256" in discovery["id_token_signing_alg_values_supported"]
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    jwks = httpx.get(discovery["jwks_uri"], timeout=30).json()
    assert jwks["keys"] and all(k["kty"] == "RSA" and "d" not in k for k in jwks["keys"])  # public halves only

    token = pkce_tokens(world)
    header = jwt.get_unverified_header(token["id_token"])
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k.get("kid") == header.get("kid"))
    claims = jwt.decode(token["id_token"], key.key, algorithms=["RS256"], audience=world.public_app.client_id,
                        issuer=discovery["issuer"])
    assert header["alg"] == "RS256" and claims["sub"] == str(world.olga.id)
    with pytest.raises(jwt.InvalidSignatureError):  # and it is really checked: a changed claim breaks it
        head, body, signature = token["id_token"].split(".")
        forged = jwt.utils.base64url_encode(jwt.utils.base64url_decode(body).replace(b'"sub"', b'"sub" ')).decode()
        jwt.decode(f"{head}.{forged}.{signature}", key.key, algorithms=["RS256"], audience=world.public_app.client_id)


async def test_the_websocket_takes_an_oauth_access_token_and_closes_when_it_is_revoked(world):
    from tests.gateway.test_websocket import _close_code, _converse, _request, _ws_url

    client = server_client(world)
    token = (await asyncio.to_thread(client.fetch_token, world.token_url, grant_type="client_credentials"))["access_token"]
    frames = await _converse(world.base, token, _request(text="over ws"))
    assert frames[-1]["type"] == "done" and frames[-1]["usage"]["completion_tokens"] > 0
    async with connect(_ws_url(world.base), open_timeout=10, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert json.loads(await asyncio.wait_for(ws.recv(), 10)) == {"type": "pong"}
        await asyncio.to_thread(client.revoke_token, world.base + "/o/revoke_token/", token=token)
        assert (await _close_code(ws, timeout=10))[0] == 4401
