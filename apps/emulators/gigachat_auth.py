"""GigaChat credentials: the OAuth exchange (``POST /api/v2/oauth``), the legacy user/password
``POST /api/v1/token``, and the Bearer check every API call goes through."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
import uuid
from http import HTTPStatus

from aiohttp import web

from .responses import dumps
from .state import STATE_KEY

DEMO_AUTHORIZATION_KEY = base64.b64encode(b"demo-client:demo-secret").decode("ascii")
SCOPES = ("GIGACHAT_API_PERS", "GIGACHAT_API_B2B", "GIGACHAT_API_CORP")
JSON_UTF8 = "application/json; charset=utf-8"

API_MESSAGES = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment Required",
    403: "Permission denied",
    404: "No such model",
    413: "Payload too large",
    422: "Invalid params",
    429: "Too many requests",
    500: "Internal Server Error",
}


def api_error(status: int, message: str | None = None) -> web.Response:
    """The API hosts' error shape; the recorded 404 body ends with a newline, so all do."""
    text = message or API_MESSAGES.get(status) or HTTPStatus(status).phrase
    response = web.Response(status=status, body=dumps({"status": status, "message": text}) + b"\n")
    response.headers["Content-Type"] = JSON_UTF8
    return response


def oauth_error(status: int, code: int, message: str) -> web.Response:
    # The OAuth host has its own shape: {"code", "message"}.
    response = web.Response(status=status, body=dumps({"code": code, "message": message}))
    response.headers["Content-Type"] = JSON_UTF8
    return response


def is_uuid4(value: str | None) -> bool:
    try:
        return value is not None and uuid.UUID(value).version == 4
    except ValueError:
        return False


def _issue_token(state, **details) -> tuple[str, int]:
    # Real tokens are ~1.2 KB opaque JWEs starting with "eyJ"; length does not matter here.
    token = "eyJ" + secrets.token_urlsafe(48)
    expires = time.time() + float(state.config["token_lifetime_s"])
    state.tokens[token] = {"expires": expires, **details}
    return token, int(expires * 1000)


async def oauth(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    # Guess: the order of the checks (RqUID, then the key, then the scope) is not documented.
    if not is_uuid4(request.headers.get("RqUID")):
        # Guess: the 400 for a bad RqUID is undocumented; its code and text are ours.
        return oauth_error(400, 400, "RqUID header is missing or is not a valid uuid4")
    kind, _, key = request.headers.get("Authorization", "").partition(" ")
    key = key.strip()
    if kind != "Basic" or not _is_base64(key):
        return oauth_error(401, 4, "Can't decode 'Authorization' header")
    allowed_scopes = state.config["authorization_keys"].get(key)
    if allowed_scopes is None:
        return oauth_error(401, 6, "credentials doesn't match db data")
    form = await request.post()
    scope = (form.get("scope") or "").strip()
    if not scope:
        return oauth_error(400, 5, "scope is empty")
    if scope not in SCOPES:
        return oauth_error(400, 1, "scope data format invalid")
    if scope not in allowed_scopes:
        return oauth_error(400, 7, "scope from db not fully includes consumed scope")
    token, expires_at = _issue_token(state, scope=scope)
    return _json({"access_token": token, "expires_at": expires_at})


async def password_token(request: web.Request) -> web.Response:
    state = request.app[STATE_KEY]
    kind, _, encoded = request.headers.get("Authorization", "").partition(" ")
    try:
        user, _, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, binascii.Error):
        return api_error(401)
    if kind != "Basic" or state.config["users"].get(user) != password:
        return api_error(401)
    token, expires_at = _issue_token(state, user=user)
    # Guess: the unit of "exp" is disputed (docs show seconds); we send ms, as the SDK expects.
    return _json({"tok": token, "exp": expires_at})


def check_bearer(request: web.Request) -> web.Response | None:
    """None if the Bearer token is a live issued token, else the 401 to send."""
    state = request.app[STATE_KEY]
    kind, _, token = request.headers.get("Authorization", "").partition(" ")
    details = state.tokens.get(token.strip()) if kind == "Bearer" else None
    if details is None or details["expires"] <= time.time():
        return api_error(401)
    return None


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        return False
    return bool(value)


def _json(payload) -> web.Response:
    response = web.Response(body=dumps(payload))
    response.headers["Content-Type"] = JSON_UTF8
    return response
