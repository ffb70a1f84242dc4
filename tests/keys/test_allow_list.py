"""A key's IP allow-list: CIDR matching (unit), where it is checked (/v1 over HTTP and WebSocket, the
management API), with the client address taken from X-Forwarded-For only behind a trusted proxy; and
last_used_at, written in batches by a real gateway process."""

import asyncio
import ipaddress
import time
import uuid

import httpx
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIClient
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from apps.accounts.models import User
from apps.common import client_address as resolver
from apps.keys.models import ApiKey, parse_networks
from apps.keys.selectors import KeyInfo, key_info_for
from apps.keys.services import key_create

from .support import gateway_process

ALLOWED = "203.0.113.0/24"


def info(*cidrs) -> KeyInfo:
    return KeyInfo(id=1, prefix="00000000", name="k", user_id=1, organisation_id=None, allowed_models=(),
                   residency="", expires_at=None, networks=parse_networks(list(cidrs)))


def ip(text):
    return ipaddress.ip_address(text)


# --- Decisions (no server, no database) ---

def test_an_empty_allow_list_allows_any_address_even_an_unknown_one():
    assert info().address_refusal(ip("198.51.100.1")) is None and info().address_refusal(None) is None


def test_cidr_matching_for_ipv4_and_ipv6_never_across_versions():
    key = info(ALLOWED, "2001:db8::/32", "192.0.2.7")
    assert key.address_refusal(ip("203.0.113.200")) is None
    assert key.address_refusal(ip("192.0.2.7")) is None
    assert key.address_refusal(ip("2001:db8:ffff::1")) is None
    assert key.address_refusal(ip("203.0.114.1"))
    assert key.address_refusal(ip("192.0.2.8"))
    assert key.address_refusal(ip("2001:db9::1"))
    assert key.address_refusal(ip("::ffff:203.0.113.1"))  # the resolver turns mapped addresses into IPv4
    assert key.address_refusal(None)  # an allow-list refuses an address it cannot know


@pytest.mark.parametrize("bad", [["10.0.0.1/8"], ["not-an-ip"], ["10.0.0.0/33"], "10.0.0.0/8", [7], ["1.2.3.4"] * 101])
def test_malformed_allow_lists_are_refused_naming_the_entry(bad):
    with pytest.raises(ValidationError):
        parse_networks(bad)


# --- Issuing ---

@pytest.mark.django_db
def test_keys_store_one_spelling_per_network_and_a_child_stays_within_its_parent(alice):
    parent, _ = key_create(user=alice, name="p", scopes=["chat", "keys:manage"],
                           allowed_ips=[" 2001:DB8::/32", ALLOWED, ALLOWED, "192.0.2.7"])
    assert parent.allowed_ips == ["2001:db8::/32", ALLOWED, "192.0.2.7/32"]
    assert key_create(user=alice, name="inherits", parent=parent)[0].allowed_ips == parent.allowed_ips
    narrower, _ = key_create(user=alice, name="narrower", parent=parent, allowed_ips=["203.0.113.128/25"])
    assert narrower.allowed_ips == ["203.0.113.128/25"]
    for wider in (["198.51.100.0/24"], ["203.0.0.0/16"], []):
        with pytest.raises(PermissionDenied, match="allowed_ips"):
            key_create(user=alice, name="wider", parent=parent, allowed_ips=wider)
    with pytest.raises(ValidationError):
        key_create(user=alice, name="bad", allowed_ips=["203.0.113.5/24"])


# --- The management API (Django: request.client_address) ---

@pytest.mark.django_db
def test_the_management_api_refuses_a_key_from_outside_its_allow_list_with_403(alice, settings):
    _, plaintext = key_create(user=alice, name="office", scopes=["keys:manage"], allowed_ips=[ALLOWED])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    refused = api.get("/api/v1/keys/", REMOTE_ADDR="198.51.100.1")
    assert refused.status_code == 403
    assert "198.51.100.1" in refused.json()["error"]["message"] and "allow-list" in refused.json()["error"]["message"]
    assert api.get("/api/v1/keys/", REMOTE_ADDR="203.0.113.9").status_code == 200
    # Not behind a trusted proxy: a forwarded header proves nothing.
    assert api.get("/api/v1/keys/", REMOTE_ADDR="198.51.100.1", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    settings.XROUTER = {**settings.XROUTER, "TRUSTED_PROXIES": ["10.0.0.0/8"]}
    resolver.trusted_proxies.cache_clear()
    try:
        assert api.get("/api/v1/keys/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 200
        assert api.get("/api/v1/keys/", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="garbage").status_code == 403
    finally:
        resolver.trusted_proxies.cache_clear()


# --- A real gateway behind a "proxy" on loopback (XROUTER_TRUSTED_PROXIES=127.0.0.0/8) ---

@pytest.fixture(scope="module")
def proxied_gateway(gateway):
    """A gateway process that believes X-Forwarded-For from loopback and writes last_used_at every 0.2 s."""
    with gateway_process(XROUTER_TRUSTED_PROXIES="127.0.0.0/8", XROUTER_LAST_USED_INTERVAL="0.2") as base:
        yield base


@pytest.fixture
def fenced(django_db_blocker):
    """fenced(*cidrs) → (ApiKey, plaintext) of a committed key with that allow-list (the gateway reads it)."""

    def make(*cidrs):
        with django_db_blocker.unblock():
            user, _ = User.objects.get_or_create(username=f"fenced-{uuid.uuid4().hex[:6]}")
            return key_create(user=user, name="fenced", allowed_ips=list(cidrs))

    return make


def models(base: str, plaintext: str, forwarded: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {plaintext}"}
    if forwarded is not None:
        headers["x-forwarded-for"] = forwarded
    return httpx.get(base + "/v1/models", headers=headers, timeout=10)


def test_v1_refuses_an_address_outside_the_allow_list_with_an_openai_403(proxied_gateway, fenced):
    _, plaintext = fenced(ALLOWED)
    refused = models(proxied_gateway, plaintext)  # the peer, 127.0.0.1, is the client
    assert refused.status_code == 403
    error = refused.json()["error"]
    assert error["code"] == "ip_not_allowed" and error["type"] == "permission_error" and "127.0.0.1" in error["message"]
    assert models(proxied_gateway, plaintext, "203.0.113.50").status_code == 200
    # The right-most address our proxy did not write is the client: what the client wrote itself is ignored.
    assert models(proxied_gateway, plaintext, "203.0.113.50, 198.51.100.1").status_code == 403
    assert models(proxied_gateway, plaintext, "198.51.100.1, 203.0.113.50").status_code == 200
    assert models(proxied_gateway, plaintext, "203.0.113.50, junk").status_code == 403  # malformed: the peer stands


def test_v1_matches_ipv6_clients_and_keys_without_a_list_work_from_anywhere(proxied_gateway, fenced):
    _, v6 = fenced("2001:db8::/32")
    assert models(proxied_gateway, v6, "2001:db8::77").status_code == 200
    assert models(proxied_gateway, v6, "[2001:db8::78]:4444").status_code == 200
    assert models(proxied_gateway, v6, "2001:db9::1").status_code == 403
    _, open_key = fenced()
    assert models(proxied_gateway, open_key, "198.51.100.1").status_code == 200


def test_the_main_gateway_trusts_no_proxy_by_default(gateway, fenced):
    _, plaintext = fenced(ALLOWED)
    assert models(gateway.base_url, plaintext, "203.0.113.50").status_code == 403


async def _ws_outcome(base: str, plaintext: str, forwarded: str | None):
    """(close code, reason) when refused, or the last frame of a short chat."""
    headers = {"Authorization": f"Bearer {plaintext}", **({"X-Forwarded-For": forwarded} if forwarded else {})}
    url = base.replace("http://", "ws://") + "/v1/realtime/chat"
    async with connect(url, additional_headers=headers, open_timeout=10) as ws:
        try:
            await ws.send('{"type": "request", "model": "gigachat/GigaChat-2", "messages": [{"role": "user", "content": "hi"}]}')
            while True:
                frame = await asyncio.wait_for(ws.recv(), 15)
                if '"type":"done"' in frame.replace(" ", "") or '"type":"error"' in frame.replace(" ", ""):
                    return frame
        except ConnectionClosed as exc:
            return (exc.rcvd.code, exc.rcvd.reason) if exc.rcvd else (1006, "")


def test_the_websocket_refuses_an_address_outside_the_allow_list_with_4403(proxied_gateway, fenced):
    _, plaintext = fenced(ALLOWED)
    code, reason = asyncio.run(_ws_outcome(proxied_gateway, plaintext, None))
    assert code == 4403 and "allow-list" in reason
    assert asyncio.run(_ws_outcome(proxied_gateway, plaintext, "203.0.113.1, 198.51.100.1"))[0] == 4403
    done = asyncio.run(_ws_outcome(proxied_gateway, plaintext, "203.0.113.1"))
    assert '"done"' in done, done


def test_last_used_at_is_written_in_batches_by_the_gateway(proxied_gateway, fenced, django_db_blocker):
    refused_key, refused = fenced(ALLOWED)
    assert models(proxied_gateway, refused).status_code == 403  # a refused request is no use of the key
    key, plaintext = fenced()
    assert key.last_used_at is None
    for _ in range(3):
        assert models(proxied_gateway, plaintext).status_code == 200
    deadline = time.monotonic() + 15  # a hang guard: the process writes every 0.2 s
    with django_db_blocker.unblock():
        while key.last_used_at is None and time.monotonic() < deadline:
            time.sleep(0.1)
            key.refresh_from_db()
        refused_key.refresh_from_db()
    assert key.last_used_at is not None, "the gateway never wrote last_used_at"
    assert refused_key.last_used_at is None  # it would have been in the same batch or an earlier one


# --- Where people set it: the portal and the admin ---

@pytest.mark.django_db
def test_the_portal_sets_an_allow_list_and_says_in_russian_which_entry_is_wrong(alice, acme, browser):
    client = browser(alice)
    form = {"name": "office", "organisation": acme.pk, "scopes": ["chat"]}
    page = client.post("/keys/", form | {"allowed_ips": "203.0.113.0/24, 2001:db8::1"})
    key = ApiKey.objects.get(pk=page.context["created"].pk)
    assert key.allowed_ips == [ALLOWED, "2001:db8::1/128"]
    assert "203.0.113.0/24, 2001:db8::1/128" in client.get("/keys/").content.decode()
    refused = client.post("/keys/", form | {"name": "bad", "allowed_ips": "203.0.113.0/24, офис"})
    assert "«офис» — не IP-адрес и не сеть (CIDR)." in refused.content.decode()
    assert not ApiKey.objects.filter(name="bad").exists()


@pytest.mark.django_db
def test_the_admin_edits_an_allow_list_through_the_service_and_refuses_a_bad_one(client, alice):
    key, plaintext = key_create(user=alice, name="edited")
    root = User.objects.create_superuser(f"root-{uuid.uuid4().hex[:6]}", "root@example.com", "pw")
    client.force_login(root)
    form = {"user": alice.id, "organisation": key.organisation_id, "name": "edited", "scopes": key.scopes,
            "allowed_models": "[]", "residency": "", "expires_at": ""}
    assert client.post(f"/admin/keys/apikey/{key.id}/change/", form | {"allowed_ips": '["198.51.100.7"]'}).status_code == 302
    key.refresh_from_db()
    assert key.allowed_ips == ["198.51.100.7/32"]
    assert key_info_for(plaintext).networks == (ipaddress.ip_network("198.51.100.7/32"),)
    bad = client.post(f"/admin/keys/apikey/{key.id}/change/", form | {"allowed_ips": '["198.51.100.7/8"]'})
    assert bad.status_code == 200 and "not a CIDR" in bad.content.decode()
    # As a browser posts it: the field's initial value rides along in a hidden input (its default is callable).
    cleared = form | {"allowed_ips": "", "initial-allowed_ips": '["198.51.100.7/32"]'}
    assert client.post(f"/admin/keys/apikey/{key.id}/change/", cleared).status_code == 302
    key.refresh_from_db()
    assert key.allowed_ips == []
