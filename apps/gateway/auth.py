"""Bearer authentication for /v1 (in-process cache; no query in steady state) and the scope check.

Three shapes of credential are taken, told apart before any lookup: `xr-` API keys, `xro-` OAuth
access tokens (apps.oauth), and JWTs of configured identity providers (three base64url parts,
at most 8 KiB). Anything else is refused with 401 at once. All three are cached alike
(apps.keys.selectors) and come back as a KeyInfo whose `kind` says which it is.
"""

from apps.common.errors import ApiError
from apps.keys.selectors import KeyInfo, akey_info_for
from apps.oauth.external import ajwt_info_for, is_jwt_shaped
from apps.oauth.selectors import aoauth_token_info_for

from .admission import admit


def credential_kind(token: str) -> str | None:
    """"key", "oauth" or "jwt" by the token's shape alone; None: not a credential we take."""
    if token.startswith("xr-"):
        return "key"
    if token.startswith("xro-"):
        return "oauth"
    if is_jwt_shaped(token):
        return "jwt"
    return None


async def credential_info(token: str) -> KeyInfo | None:
    """The KeyInfo of a presented key or token; None when refused. ApiError 403 (a JWT's unknown
    organisation) or 503 (it must be looked up and the database cannot answer)."""
    kind = credential_kind(token)
    if kind == "key":
        return await akey_info_for(token)
    if kind == "oauth":
        return await aoauth_token_info_for(token)
    if kind == "jwt":
        return await ajwt_info_for(token)
    return None


async def authenticate(req, scope: str) -> KeyInfo:
    """The request's credential, which must hold `scope` (chat, embeddings, models:read); ApiError 401/403/503."""
    raw = req.headers.get(b"authorization")
    if not raw:
        raise ApiError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer xr-...'.",
            code="missing_api_key",
        )
    scheme, _, token = raw.decode("latin-1").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise ApiError(401, "Malformed Authorization header; expected 'Bearer <key>'.", code="invalid_api_key")
    info = await credential_info(token)
    if info is None:
        kind = credential_kind(token)
        if kind in ("oauth", "jwt"):
            shown = "access token provided"
        else:
            shown = f"API key provided: {token[:11] + '…' if kind == 'key' and len(token) > 11 else '(not an XRouter key)'}"
        raise ApiError(401, f"Incorrect, revoked or expired {shown}", code="invalid_api_key")
    admit(info, req.scope)
    require_scope(info, scope)
    return info


def require_scope(key: KeyInfo, scope: str) -> None:
    """403 naming the scope a credential lacks (/v1 endpoints here; the WebSocket consumer needs `chat` per request)."""
    if scope not in key.scopes:
        what = "API key" if key.kind == "key" else "access token"
        raise ApiError(403, f"This {what} lacks the scope '{scope}' that this endpoint needs.", code="missing_scope")
