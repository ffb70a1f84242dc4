"""Bearer-key authentication for /v1 (in-process cache; no query in steady state) and the scope check."""

from apps.common.errors import ApiError
from apps.keys.selectors import KeyInfo, akey_info_for

from .admission import admit


async def authenticate(req, scope: str) -> KeyInfo:
    """The request's key, which must hold `scope` (chat, embeddings, models:read); ApiError 401/403/503."""
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
    info = await akey_info_for(token)
    if info is None:
        shown = token[:11] + "…" if token.startswith("xr-") and len(token) > 11 else "(not an XRouter key)"
        raise ApiError(401, f"Incorrect, revoked or expired API key provided: {shown}", code="invalid_api_key")
    admit(info, req.scope)
    require_scope(info, scope)
    return info


def require_scope(key: KeyInfo, scope: str) -> None:
    """403 naming the scope a key lacks (/v1 endpoints here; the WebSocket consumer needs `chat` per request)."""
    if scope not in key.scopes:
        raise ApiError(403, f"This API key lacks the scope '{scope}' that this endpoint needs.", code="missing_scope")
