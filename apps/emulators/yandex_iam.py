"""Yandex Cloud credentials: ``POST /iam/v1/tokens`` (service-account JWT or Passport OAuth token
→ IAM token) and resolving ``Authorization: Api-Key ...`` / ``Bearer t1....`` to a principal.

Service accounts are registered through the control API::

    POST /_emulator/config
    {"service_accounts": {"<key id>": {"service_account_id": "aje...", "public_key": "<PEM>",
                                       "folder_id": "b1gdemofolder",        # folder_id optional
                                       "folders": ["b1gotherfolder"]}}}     # more folders it holds the role in
"""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import jwt
from aiohttp import web

from .responses import json_response, send_json
from .state import BODY, BODY_ERROR, STATE_KEY

IAM_AUDIENCE = "https://iam.api.cloud.yandex.net/iam/v1/tokens"


@dataclass
class Principal:
    kind: str  # "api_key" | "service_account" | "user"
    folder_id: str | None  # None for a user account: it may reach many folders
    subject: str
    folders: tuple = ()  # other folders where a service account holds ai.languageModels.user


class AuthError(Exception):
    """A refusal, carrying the HTTP status, the gRPC code and the message."""

    def __init__(self, status: int, grpc_code: int, message: str):
        super().__init__(message)
        self.status, self.grpc_code, self.message = status, grpc_code, message


def authenticate(request: web.Request) -> Principal:
    state = request.app[STATE_KEY]
    kind, _, credential = request.headers.get("Authorization", "").partition(" ")
    credential = credential.strip()
    if kind == "Api-Key":
        folder = state.config["api_keys"].get(credential)
        if folder is None:
            # Guess: seen in one third-party log only ([L]).
            raise AuthError(401, 16, f"Unknown api key '{credential}'")
        return Principal("api_key", folder, credential)
    if kind == "Bearer":
        details = state.tokens.get(credential)
        if details is not None and details["expires"] > time.time():
            return Principal(details["kind"], details["folder_id"], details["subject"], tuple(details.get("folders") or ()))
    # Guess: wording of the invalid/missing-token refusal ([L]).
    raise AuthError(401, 16, "The token is invalid")


def gateway_parse_error(message: str) -> web.Response:
    """What the REST gateway answers when it cannot decode the body, before any service runs."""
    return json_response({"error": message, "code": 3, "message": message, "details": []}, 400)


def unary_error(status: int, grpc_code: int, message: str) -> web.Response:
    return json_response({"code": grpc_code, "message": message, "details": []}, status)


async def create_iam_token(request: web.Request) -> web.StreamResponse:
    state = request.app[STATE_KEY]
    if BODY_ERROR in request or not isinstance(request.get(BODY), dict):
        return gateway_parse_error(request.get(BODY_ERROR) or "request body must be a JSON object")
    body = request[BODY]
    unknown = set(body) - {"jwt", "yandexPassportOauthToken"}
    if unknown:
        return gateway_parse_error(f'proto: (line 1:2): unknown field "{sorted(unknown)[0]}"')
    try:
        if "jwt" in body:
            principal = _principal_from_jwt(state, body["jwt"])
        elif "yandexPassportOauthToken" in body:
            principal = _principal_from_passport(state, body["yandexPassportOauthToken"])
        else:
            raise AuthError(400, 3, "one of jwt or yandexPassportOauthToken is required")  # Guess: wording
    except AuthError as exc:
        return unary_error(exc.status, exc.grpc_code, exc.message)
    token = "t1." + _b64(secrets.token_bytes(48)) + "." + _b64(secrets.token_bytes(64))[:86]
    expires = time.time() + float(state.config["iam_token_lifetime_s"])
    state.tokens[token] = {
        "expires": expires,
        "kind": principal.kind,
        "folder_id": principal.folder_id,
        "subject": principal.subject,
        "folders": principal.folders,
    }
    return await send_json(request, {"iamToken": token, "expiresAt": rfc3339(expires)})


def _principal_from_jwt(state, token) -> Principal:
    # Guess: every refusal text below is ours; real ones were not captured.
    if not isinstance(token, str):
        raise AuthError(400, 3, "jwt must be a string")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise AuthError(400, 3, f"Invalid JWT: {exc}") from None
    if header.get("alg") != "PS256":
        raise AuthError(400, 3, f"Invalid JWT: unsupported algorithm '{header.get('alg')}', PS256 expected")
    account = state.config["service_accounts"].get(header.get("kid"))
    if account is None:
        raise AuthError(401, 16, f"Unknown key id '{header.get('kid')}'")
    try:
        claims = jwt.decode(
            token,
            account["public_key"],
            algorithms=["PS256"],
            audience=IAM_AUDIENCE,
            options={"require": ["iss", "aud", "iat", "exp"]},
        )
    except jwt.PyJWTError as exc:
        raise AuthError(401, 16, f"Invalid JWT: {exc}") from None
    if claims["iss"] != account["service_account_id"]:
        raise AuthError(401, 16, "Invalid JWT: iss does not match the key's service account")
    if claims["exp"] - claims["iat"] > int(state.config["jwt_max_lifetime_s"]):
        raise AuthError(400, 3, "Invalid JWT: lifetime exceeds 1 hour")
    return Principal("service_account", account.get("folder_id") or state.config["default_folder"], claims["iss"],
                     tuple(account.get("folders") or ()))


def _principal_from_passport(state, oauth_token) -> Principal:
    if oauth_token not in state.config["oauth_tokens"]:
        raise AuthError(401, 16, "The OAuth token is invalid")  # Guess: wording
    return Principal("user", None, oauth_token)


def rfc3339(epoch: float) -> str:
    # proto3 JSON Timestamp with nanoseconds, as in CreateIamTokenResponse.expiresAt.
    moment = datetime.fromtimestamp(epoch, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond * 1000:09d}Z"


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")
