"""Session-authenticated WebSockets: the portal's playground, signed in to the portal, bills a key.

The browser offers the subprotocols `xrouter.v1, xrouter.session.<key id>` (a key of the person's
own, able to chat) or `xrouter.session.playground` (their `playground` key, made or reused by
apps.keys.services.key_for_playground). The person comes from Django's session cookie.

Cookies go with every handshake a browser makes, whichever site asks for it, so a session-
authenticated handshake is refused unless its Origin is this site's own (cross-site WebSocket
hijacking): the Origin's host and port equal the handshake's Host and the host is one of
ALLOWED_HOSTS, or the Origin is one of CSRF_TRUSTED_ORIGINS (a proxy that rewrites Host), as
Django's CSRF check decides for forms.
"""

from importlib import import_module
from urllib.parse import urlsplit

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import aget_user
from django.core.exceptions import PermissionDenied
from django.http.cookie import parse_cookie
from django.http.request import split_domain_port, validate_host

from apps.keys.selectors import KeyInfo, akey_info_stored, playground_keys
from apps.keys.services import key_for_playground

SESSION_PROTOCOL = "xrouter.session."
PLAYGROUND = "playground"
MAX_COOKIE_HEADER = 8192  # bytes of Cookie header parsed; browsers send far less for one site


def offered_choice(scope) -> str | None:
    """The key choice of a session-authenticated handshake (`<key id>` or `playground`), or None."""
    for protocol in scope.get("subprotocols") or ():
        if protocol.startswith(SESSION_PROTOCOL):
            return protocol[len(SESSION_PROTOCOL):]
    return None


def origin_allowed(headers: dict) -> bool:
    """Is the handshake's Origin this site's own? (See the module docstring.)"""
    origin = headers.get(b"origin", b"").decode("latin-1").strip()
    if not origin or origin in settings.CSRF_TRUSTED_ORIGINS:
        return bool(origin)
    parts = urlsplit(origin)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
        return False
    host = headers.get(b"host", b"").decode("latin-1").strip().lower()
    if parts.netloc.lower() != host:
        return False
    domain, _port = split_domain_port(host)
    return bool(domain) and validate_host(domain, settings.ALLOWED_HOSTS)


class _Request:
    """What django.contrib.auth.aget_user reads of a request."""

    def __init__(self, session):
        self.session = session


async def session_user_id(headers: dict) -> int | None:
    """The id of the person the handshake's session cookie signs in, if it still does (checked again
    before every answer: signing out, or a password change, ends the playground's socket)."""
    user = await _user(headers)
    return user.pk if user is not None else None


async def _user(headers: dict):
    raw = headers.get(b"cookie", b"")[:MAX_COOKIE_HEADER].decode("latin-1")
    session_key = parse_cookie(raw).get(settings.SESSION_COOKIE_NAME)
    if not session_key:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    user = await aget_user(_Request(store))  # checks the session's password hash too, as Django's middleware does
    return user if user.is_authenticated and user.is_active else None


def _choose_key(user, choice: str):
    if choice == PLAYGROUND:
        return key_for_playground(user)
    if not (choice.isascii() and choice.isdigit() and len(choice) <= 18):  # a key id (a bigint at most)
        return None
    return next(iter(playground_keys(user, pk=int(choice))), None)


async def session_key(headers: dict, choice: str) -> tuple[KeyInfo | None, tuple[str, str] | None, str]:
    """(the key, its (prefix, hash), "") for a signed-in person's choice, or (None, None, why refused).

    Raises what the key store raises when it cannot be read (the caller closes with 1013)."""
    if not origin_allowed(headers):
        return None, None, "cross-site handshake refused: the Origin is not this site's"
    user = await _user(headers)
    if user is None:
        return None, None, "not signed in to the portal: sign in, then reconnect"
    try:
        key = await database_sync_to_async(_choose_key)(user, choice)
    except PermissionDenied as exc:
        return None, None, str(exc)[:120]
    if key is None:
        return None, None, "no such key of yours able to chat: pick another"
    info = await akey_info_stored(key.prefix, key.hashed_key)
    if info is None:
        return None, None, "that key is revoked or has expired: pick another"
    return info, (key.prefix, key.hashed_key), ""
