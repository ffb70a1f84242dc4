"""Bring your own identity provider: /v1 takes the JWT access tokens of XROUTER_JWT_ISSUERS, checked
against the issuer's JWKS (a stand-in IdP on loopback, tests/oauth/idp.py), with a gateway started
for it. Refusals: a bad signature, another issuer, another audience, an expired token, HS256 or none,
and an organisation XRouter does not know (403)."""

import hmac
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from tests.conftest import wait_for_usage
from tests.keys.support import gateway_process

from .idp import AUDIENCE, IdentityProvider, new_key


@pytest.fixture(scope="module")
def idp():
    provider = IdentityProvider().start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def jwt_gateway(gateway, idp):
    with gateway_process(XROUTER_JWT_ISSUERS=json.dumps([idp.config()])) as base:
        yield base


@pytest.fixture(scope="module")
def umbrella(django_db_setup, django_db_blocker):
    from apps.accounts.models import Organisation

    with django_db_blocker.unblock():
        return Organisation.objects.create(name=f"umbrella-{uuid.uuid4().hex[:6]}")


def status(base: str, token: str, path: str = "/v1/models") -> httpx.Response:
    return httpx.get(base + path, headers={"authorization": f"Bearer {token}"}, timeout=30)


def test_a_token_from_the_identity_provider_works_and_makes_its_user_on_first_use(jwt_gateway, idp, umbrella,
                                                                                 django_db_blocker):
    from openai import OpenAI

    from apps.accounts.models import Membership
    from apps.oauth.models import ExternalIdentity

    subject = f"alice-{uuid.uuid4().hex[:6]}"
    issued = httpx.post(idp.issuer + "/token", data={"sub": subject, "organisation": umbrella.name,
                                                     "role": "admin"}, timeout=30).json()
    client = OpenAI(base_url=jwt_gateway + "/v1", api_key=issued["access_token"], max_retries=0, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "Привет"}])
    assert raw.parse().choices[0].message.content == "Echo: Привет"

    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    with django_db_blocker.unblock():
        identity = ExternalIdentity.objects.select_related("user").get(issuer=idp.issuer, subject=subject)
        membership = Membership.objects.get(user=identity.user, organisation=umbrella)
    assert (record.principal, record.principal_id, record.user_id) == ("jwt", identity.user.id, identity.user.id)
    assert record.organisation_id == umbrella.id and record.api_key_id is None
    assert membership.role == "admin" and not identity.user.has_usable_password()
    # The second call is the same user, not another one.
    assert status(jwt_gateway, idp.token(subject, umbrella.name)).status_code == 200
    with django_db_blocker.unblock():
        assert ExternalIdentity.objects.filter(issuer=idp.issuer, subject=subject).count() == 1


def _compact(header: dict, payload: dict, sign) -> str:
    signing_input = b".".join(jwt.utils.base64url_encode(json.dumps(part).encode()) for part in (header, payload))
    return (signing_input + b"." + jwt.utils.base64url_encode(sign(signing_input))).decode()


@pytest.mark.parametrize("forge", [
    "bad signature", "another issuer", "another audience", "expired", "hs256 with the public key", "alg none",
    "no expiry",
])
def test_it_refuses_tokens_that_do_not_check_out(forge, jwt_gateway, idp, umbrella):
    now = int(time.time())
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "iat": now, "exp": now + 300, "xr_org": umbrella.name}
    if forge == "bad signature":
        token = idp.token("mallory", umbrella.name, key=new_key())  # the right kid, another key
    elif forge == "another issuer":
        token = jwt.encode({**claims, "iss": "https://evil.example"}, idp.key, algorithm="RS256", headers={"kid": idp.kid})
    elif forge == "another audience":
        token = jwt.encode({**claims, "aud": "someone-else"}, idp.key, algorithm="RS256", headers={"kid": idp.kid})
    elif forge == "expired":
        token = idp.token("mallory", umbrella.name, lifetime=-120)
    elif forge == "hs256 with the public key":  # the classic confusion: the public key as an HMAC secret
        public_pem = idp.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        token = _compact({"alg": "HS256", "kid": idp.kid}, claims, lambda data: hmac.new(public_pem, data, "sha256").digest())
    elif forge == "alg none":
        token = _compact({"alg": "none", "kid": idp.kid}, claims, lambda data: b"")
    else:
        token = jwt.encode({k: v for k, v in claims.items() if k != "exp"}, idp.key, algorithm="RS256",
                           headers={"kid": idp.kid})
    answer = status(jwt_gateway, token)
    assert answer.status_code == 401, answer.text
    assert answer.json()["error"]["code"] == "invalid_api_key"


def test_an_organisation_xrouter_does_not_know_gets_403(jwt_gateway, idp):
    answer = status(jwt_gateway, idp.token("carol", f"nonexistent-{uuid.uuid4().hex[:6]}"))
    assert answer.status_code == 403
    assert answer.json()["error"]["code"] == "unknown_organisation"


def test_a_billing_viewer_may_list_models_but_not_chat(jwt_gateway, idp, umbrella):
    token = idp.token(f"bill-{uuid.uuid4().hex[:6]}", umbrella.name, role="billing_viewer")
    assert status(jwt_gateway, token).status_code == 200
    chat = httpx.post(jwt_gateway + "/v1/chat/completions", headers={"authorization": f"Bearer {token}"},
                      json={"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "x"}]}, timeout=30)
    assert chat.status_code == 403 and chat.json()["error"]["code"] == "missing_scope"


def test_the_gateway_without_issuers_refuses_every_jwt(gateway, idp, umbrella):
    assert status(gateway.base_url, idp.token("dave", umbrella.name)).status_code == 401


def test_a_forged_header_of_odd_types_gets_401_not_500(jwt_gateway, idp):
    claims = {"iss": idp.issuer, "aud": AUDIENCE, "sub": "mallory", "exp": int(time.time()) + 300}
    token = _compact({"alg": ["RS256"], "kid": idp.kid}, claims, lambda data: b"x")
    answer = status(jwt_gateway, token)
    assert answer.status_code == 401, answer.text
