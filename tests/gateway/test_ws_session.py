"""The playground's session-authenticated WebSocket (apps/gateway/ws_session.py) on the real server
process: the portal's session cookie picks the person, the subprotocol the key to bill (one of
theirs, or the hour-long `playground` key, reused while valid); a foreign Origin, a foreign key
and a missing session are refused. Plus fast unit tests of the Origin decision."""

import asyncio
import datetime
import uuid

import pytest
from django.test import Client, override_settings
from django.utils import timezone
from websockets.asyncio.client import connect

from apps.gateway.ws_session import origin_allowed
from tests.conftest import wait_for_usage
from tests.gateway.test_websocket import _close_code, _request, _text, _until_end, _ws_url


@pytest.fixture
def member(committed_db):
    """A person signed in to the portal (their session cookie) who owns an organisation of their own."""
    from apps.accounts.models import Membership, Organisation, User

    suffix = uuid.uuid4().hex[:8]
    organisation = Organisation.objects.create(name=f"playground-{suffix}")
    user = User.objects.create_user(f"pg-{suffix}", f"pg-{suffix}@example.com", "pw-" + suffix,
                                    organisation=organisation)
    Membership.objects.create(user=user, organisation=organisation, role=Membership.Role.OWNER)
    client = Client()
    client.force_login(user)
    return user, client.cookies["sessionid"].value


def _session_headers(base_url: str, session: str, origin: str | None = None) -> dict:
    headers = {"Cookie": f"sessionid={session}"}
    origin = base_url if origin is None else origin
    return headers | ({"Origin": origin} if origin else {})


async def _session_chat(base_url, session, choice, origin=None, text="over ws [long]"):
    async with connect(_ws_url(base_url), open_timeout=10,
                       additional_headers=_session_headers(base_url, session, origin),
                       subprotocols=["xrouter.v1", f"xrouter.session.{choice}"]) as ws:
        assert ws.subprotocol == "xrouter.v1"
        await ws.send(_request(text=text))
        return await _until_end(ws)


async def _refusal(base_url, headers, choice="playground") -> tuple[int, str]:
    async with connect(_ws_url(base_url), open_timeout=10, additional_headers=headers,
                       subprotocols=["xrouter.v1", f"xrouter.session.{choice}"]) as ws:
        return await _close_code(ws)


def test_a_signed_in_person_chats_on_a_playground_key_that_is_made_once_and_billed(gateway, django_db_blocker, member):
    from apps.emulators.behaviour import LONG_ANSWER
    from apps.keys.models import ApiKey

    user, session = member
    frames = asyncio.run(_session_chat(gateway.base_url, session, "playground"))
    again = asyncio.run(_session_chat(gateway.base_url, session, "playground", text="again"))

    assert frames[-1]["type"] == "done" and again[-1]["type"] == "done"
    assert _text(frames) == LONG_ANSWER
    with django_db_blocker.unblock():
        keys = list(ApiKey.objects.filter(user=user))
    assert [k.name for k in keys] == ["playground"]  # the second socket reused it
    key = keys[0]
    lifetime = key.expires_at - timezone.now()
    assert datetime.timedelta(minutes=55) < lifetime <= datetime.timedelta(hours=1)
    assert key.scopes == ["chat"] and key.organisation_id == user.organisation_id
    record = wait_for_usage(django_db_blocker, frames[-1]["id"].removeprefix("chatcmpl-"))
    assert record.key_prefix == key.prefix and record.organisation_id == user.organisation_id


def test_a_playground_key_about_to_expire_is_replaced(gateway, django_db_blocker, member):
    from apps.keys.models import ApiKey
    from apps.keys.services import key_create

    user, session = member
    with django_db_blocker.unblock():
        old, _ = key_create(user=user, name="playground", scopes=["chat"],
                            expires_at=timezone.now() + datetime.timedelta(minutes=2))

    frames = asyncio.run(_session_chat(gateway.base_url, session, "playground"))

    assert frames[-1]["type"] == "done"
    with django_db_blocker.unblock():
        fresh = ApiKey.objects.filter(user=user, name="playground").exclude(pk=old.pk).get()
    record = wait_for_usage(django_db_blocker, frames[-1]["id"].removeprefix("chatcmpl-"))
    assert record.key_prefix == fresh.prefix


def test_it_bills_a_key_the_person_picked(gateway, django_db_blocker, member):
    from apps.keys.services import key_create

    user, session = member
    with django_db_blocker.unblock():
        key, _ = key_create(user=user, name="picked")

    frames = asyncio.run(_session_chat(gateway.base_url, session, key.pk))

    assert frames[-1]["type"] == "done"
    assert wait_for_usage(django_db_blocker, frames[-1]["id"].removeprefix("chatcmpl-")).key_prefix == key.prefix


def test_signing_out_ends_the_socket_at_its_next_request(gateway, django_db_blocker, member):
    from importlib import import_module

    from django.conf import settings
    from django.db import connections

    _, session = member

    def sign_out():
        import_module(settings.SESSION_ENGINE).SessionStore(session).delete()
        connections.close_all()  # this worker thread's: an open one would keep the test database from being dropped

    async def go():
        async with connect(_ws_url(gateway.base_url), open_timeout=10,
                           additional_headers=_session_headers(gateway.base_url, session),
                           subprotocols=["xrouter.v1", "xrouter.session.playground"]) as ws:
            await ws.send(_request(text="before"))
            first = await _until_end(ws)
            with django_db_blocker.unblock():
                await asyncio.to_thread(sign_out)
            await ws.send(_request(text="after"))
            return first, await _close_code(ws)

    first, closed = asyncio.run(go())

    assert first[-1]["type"] == "done"
    assert closed == (4401, "signed out of the portal: sign in, then reconnect")


def test_another_persons_key_a_revoked_key_and_a_key_unable_to_chat_are_refused(gateway, django_db_blocker, member):
    from apps.keys.services import key_create, key_revoke

    user, session = member
    with django_db_blocker.unblock():
        other = type(user).objects.create_user(f"other-{uuid.uuid4().hex[:8]}", organisation=user.organisation)
        foreign, _ = key_create(user=other, name="not-yours", issued_by=None)
        revoked, _ = key_create(user=user, name="revoked")
        key_revoke(revoked)
        mute, _ = key_create(user=user, name="no-chat", scopes=["models:read"])
    headers = _session_headers(gateway.base_url, session)

    for key in (foreign, revoked, mute):
        code, reason = asyncio.run(_refusal(gateway.base_url, headers, key.pk))
        assert (code, reason) == (4401, "no such key of yours able to chat: pick another")
    for junk in ("1e3", "-1", "9" * 40):
        code, reason = asyncio.run(_refusal(gateway.base_url, headers, junk))
        assert (code, reason) == (4401, "no such key of yours able to chat: pick another")


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "", "http://127.0.0.1:1"])
def test_a_cross_site_handshake_is_refused_before_the_session_is_read(gateway, django_db_blocker, member, origin):
    from apps.keys.models import ApiKey

    user, session = member
    headers = {"Cookie": f"sessionid={session}"} | ({"Origin": origin} if origin else {})

    code, reason = asyncio.run(_refusal(gateway.base_url, headers))

    assert (code, reason) == (4401, "cross-site handshake refused: the Origin is not this site's")
    with django_db_blocker.unblock():
        assert not ApiKey.objects.filter(user=user).exists()  # no playground key was made for the attacker


def test_without_a_session_the_socket_is_refused(gateway, committed_db):
    for cookie in ("", "sessionid=not-a-session", "sessionid="):
        headers = {"Origin": gateway.base_url} | ({"Cookie": cookie} if cookie else {})
        code, reason = asyncio.run(_refusal(gateway.base_url, headers))
        assert (code, reason) == (4401, "not signed in to the portal: sign in, then reconnect")


def test_the_session_subprotocol_needs_the_protocol_one(gateway, member):
    _, session = member

    async def go():
        async with connect(_ws_url(gateway.base_url), open_timeout=10,
                           additional_headers=_session_headers(gateway.base_url, session),
                           subprotocols=["xrouter.session.playground"]) as ws:
            return await _close_code(ws)

    code, reason = asyncio.run(go())
    assert code == 4401 and "xrouter.v1" in reason


# --- The Origin decision, without a server ---

def _headers(origin, host="portal.example:8000"):
    return {b"host": host.encode(), **({b"origin": origin.encode()} if origin is not None else {})}


@override_settings(ALLOWED_HOSTS=["portal.example"], CSRF_TRUSTED_ORIGINS=["https://xrouter.bank.example"])
@pytest.mark.parametrize("origin, host, allowed", [
    ("http://portal.example:8000", "portal.example:8000", True),
    ("https://portal.example:8000", "portal.example:8000", True),
    ("http://PORTAL.example:8000", "portal.example:8000", True),
    ("https://xrouter.bank.example", "internal:8000", True),  # a proxy rewriting Host, trusted by name
    ("http://portal.example", "portal.example:8000", False),  # another port is another origin
    ("http://evil.example:8000", "portal.example:8000", False),
    ("http://evil.example", "evil.example", False),  # DNS rebinding: same origin, but not an allowed host
    ("http://portal.example:8000/path", "portal.example:8000", False),
    ("ws://portal.example:8000", "portal.example:8000", False),
    ("null", "portal.example:8000", False),
    ("", "portal.example:8000", False),
    (None, "portal.example:8000", False),
])
def test_only_this_sites_own_origin_is_allowed(origin, host, allowed):
    assert origin_allowed(_headers(origin, host)) is allowed


@override_settings(ALLOWED_HOSTS=["*"])
def test_a_wildcard_allowed_hosts_still_needs_the_same_origin():
    assert origin_allowed(_headers("http://a.example", "a.example"))
    assert not origin_allowed(_headers("http://evil.example", "a.example"))

