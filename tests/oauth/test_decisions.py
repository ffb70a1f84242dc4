"""Fast unit tests of the OAuth decisions: no server, no database."""

import base64
import json

import pytest
from django.conf import settings
from oauthlib.common import Request
from oauthlib.oauth2.rfc6749 import errors

from apps.gateway.auth import credential_kind
from apps.keys.models import SCOPES
from apps.oauth.external import MAX_JWT_BYTES, scopes_of
from apps.oauth.models import redirect_uri_problem
from apps.oauth.tokens import ACCESS_TOKEN_SHAPE, new_access_token, new_refresh_token
from apps.oauth.validators import require_s256


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


JWT = f"{_b64({'alg': 'RS256', 'kid': 'k1'})}.{_b64({'sub': 'x', 'iss': 'https://idp'})}.c2lnbmF0dXJl"


@pytest.mark.parametrize("token, kind", [
    ("xr-0123abcd-" + "s" * 43, "key"),
    ("xr-garbage", "key"),  # refused by the key cache's own shape check, still without a lookup
    (new_access_token(), "oauth"),
    (JWT, "jwt"),
    ("a.b.c", "jwt"),
    (new_refresh_token(), None),  # a refresh token is for /o/token/ only
    ("sk-proj-0123456789", None),
    ("a.b", None),
    ("a.b.c.d", None),
    ("a.b+/.c", None),  # base64, not base64url
    ("a.b.c=", None),
    ("a" * MAX_JWT_BYTES + ".b.c", None),  # over 8 KiB
    ("", None),
    ("xro", None),
])
def test_the_pre_check_takes_three_shapes_and_refuses_everything_else(token, kind):
    assert credential_kind(token) == kind


def test_issued_tokens_have_their_recognisable_shapes():
    assert ACCESS_TOKEN_SHAPE.fullmatch(new_access_token())
    assert new_refresh_token().startswith("xrr-") and new_access_token() != new_access_token()


@pytest.mark.parametrize("uri", ["https://app.example.com/callback", "http://127.0.0.1/cb", "http://127.0.0.1:8765/cb",
                                 "http://[::1]:9000/cb", "http://localhost:3000/cb", "https://app.example.com:8443/cb?x=1"])
def test_it_accepts_https_and_loopback_http_redirect_uris(uri):
    assert redirect_uri_problem(uri) is None


@pytest.mark.parametrize("uri", ["http://app.example.com/cb", "http://10.0.0.1/cb", "http://127.0.0.1.example.com/cb",
                                 "ftp://example.com/cb", "myapp://callback", "https:///nohost", "http://[::1/cb"])
def test_it_refuses_other_redirect_uris(uri):
    assert redirect_uri_problem(uri)


def _authorization_request(**params) -> Request:
    request = Request("https://xrouter.example/o/authorize/")
    request.code_challenge = params.get("code_challenge")
    request.code_challenge_method = params.get("code_challenge_method")
    return request


def test_pkce_takes_s256_only():
    assert require_s256(_authorization_request(code_challenge="c" * 43, code_challenge_method="S256")) == {}
    with pytest.raises(errors.MissingCodeChallengeError):
        require_s256(_authorization_request())
    with pytest.raises(errors.UnsupportedCodeChallengeMethodError):
        require_s256(_authorization_request(code_challenge="c" * 43, code_challenge_method="plain"))
    with pytest.raises(errors.UnsupportedCodeChallengeMethodError):
        require_s256(_authorization_request(code_challenge="c" * 43))  # missing method means plain


def test_the_toolkit_settings_keep_the_promised_limits():
    oauth = settings.OAUTH2_PROVIDER
    assert set(oauth["SCOPES"]) == set(SCOPES) | {"openid"}
    assert oauth["ACCESS_TOKEN_EXPIRE_SECONDS"] <= 3600 and oauth["AUTHORIZATION_CODE_EXPIRE_SECONDS"] <= 60
    assert oauth["ROTATE_REFRESH_TOKEN"] and oauth["REFRESH_TOKEN_REUSE_PROTECTION"] and oauth["PKCE_REQUIRED"]
    assert oauth["COMPLIANT_BCP_RFC9700_TOKEN_STORAGE"]  # tokens hashed at rest
    assert "implicit" not in oauth["OAUTH2_GRANT_TYPES_SUPPORTED"] and "password" not in oauth["OAUTH2_GRANT_TYPES_SUPPORTED"]
    assert oauth["OIDC_RSA_PRIVATE_KEY"].startswith("-----BEGIN PRIVATE KEY-----")


def test_a_jwt_role_and_scope_claim_narrow_what_it_may_do():
    assert scopes_of("developer", {}) == {"chat", "embeddings", "models:read"}
    assert scopes_of("billing_viewer", {}) == {"models:read"}
    assert scopes_of("developer", {"scope": "chat openid"}) == {"chat"}
    assert scopes_of("owner", {"scp": ["embeddings", "keys:manage"]}) == {"embeddings"}


def test_oauth_tokens_never_reach_a_log_line():
    from xrouter_project.log_filters import strip_query

    access, refresh = new_access_token(), new_refresh_token()
    line = strip_query(f"revoking {access} and token={refresh}; Authorization: Bearer {JWT}")
    assert access not in line and refresh not in line and JWT not in line
    assert "xro-[redacted]" in line and "xrr-[redacted]" in line


async def test_a_token_of_no_known_shape_is_refused_without_a_lookup():
    """A lookup, even one that finds nothing, leaves the token in the negative cache: these never get there."""
    from hashlib import sha256

    from apps.gateway.auth import credential_info
    from apps.keys import selectors

    for token in ("sk-proj-0123456789abcdef", new_refresh_token(), "a.b", "x" * 9000):
        assert await credential_info(token) is None
        assert sha256(token.encode()).hexdigest() not in selectors._unknown
    assert not selectors._inflight


@pytest.mark.parametrize("alg", [["RS256"], {"RS256": 1}])
async def test_a_jwt_header_of_odd_types_is_refused_not_a_500(alg, settings, monkeypatch):
    """Anyone can forge the unsigned parts: a header whose `alg` is no string is refused (None), not raised."""
    from apps.oauth import external

    issuer = {"issuer": "https://id.example", "jwks_url": "https://id.example/jwks", "audience": "xrouter",
              "organisation_claim": "org", "role_claim": "role"}
    settings.XROUTER = settings.XROUTER | {"JWT_ISSUERS": [issuer]}
    monkeypatch.setattr(external, "_issuers", {})
    token = f"{_b64({'alg': alg, 'kid': 'k1'})}.{_b64({'iss': issuer['issuer'], 'sub': 'x'})}.c2lnbmF0dXJl"
    assert await external.verify(token) is None
