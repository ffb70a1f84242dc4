"""The client-address resolver: whom X-Forwarded-For is believed from, and what a bad header changes (nothing)."""

import ipaddress

import pytest

from apps.common import client_address as resolver
from apps.common.client_address import client_address, parse_address, scope_client_address


@pytest.fixture
def trusting(settings):
    """trusting("127.0.0.0/8", ...) → the resolver believes those proxies (none by default)."""

    def trust(*cidrs):
        settings.XROUTER = {**settings.XROUTER, "TRUSTED_PROXIES": list(cidrs)}
        resolver.trusted_proxies.cache_clear()

    yield trust
    resolver.trusted_proxies.cache_clear()


def ip(text):
    return ipaddress.ip_address(text)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_header_says(trusting):
    trusting()
    assert client_address("203.0.113.7", "198.51.100.1") == ip("203.0.113.7")


def test_an_untrusted_peer_cannot_claim_another_address(trusting):
    trusting("10.0.0.0/8")
    assert client_address("203.0.113.7", "10.1.1.1, 198.51.100.1") == ip("203.0.113.7")


def test_behind_a_trusted_proxy_the_right_most_untrusted_hop_is_the_client(trusting):
    trusting("10.0.0.0/8", "127.0.0.0/8")
    # The client wrote "1.2.3.4" itself; 198.51.100.9 is what our first proxy saw; 10.0.0.5 is our second proxy.
    assert client_address("127.0.0.1", "1.2.3.4, 198.51.100.9, 10.0.0.5") == ip("198.51.100.9")
    assert client_address("127.0.0.1", "198.51.100.9") == ip("198.51.100.9")


def test_when_every_hop_is_trusted_the_farthest_is_the_client(trusting):
    trusting("10.0.0.0/8")
    assert client_address("10.0.0.1", "10.9.9.9, 10.0.0.2") == ip("10.9.9.9")


@pytest.mark.parametrize("header", ["not-an-ip", "1.2.3.4,garbage", "[::1", "1.2.3.4:80:90", "999.1.1.1", "1." * 2000,
                                    "1.2.3.4, "])
def test_a_malformed_right_most_entry_is_ignored_and_the_peer_stands(trusting, header):
    trusting("127.0.0.0/8")
    assert client_address("127.0.0.1", header) == ip("127.0.0.1")


@pytest.mark.parametrize("header", ["garbage, 198.51.100.9", "1.2.3.4, , 198.51.100.9", "[::1, 198.51.100.9",
                                    ",".join(["1.2.3.4"] * 40) + ", 198.51.100.9", "1." * 2000 + ", 198.51.100.9"])
def test_junk_left_of_what_our_proxy_wrote_does_not_make_the_proxy_the_client(trusting, header):
    """Behind nginx ($proxy_add_x_forwarded_for) the client writes the left part and the proxy appends the
    address it saw. A malformed or oversized left part must not turn the client into the proxy, whose
    address the metrics allow-list, key allow-lists and the audit log would then see instead."""
    trusting("127.0.0.0/8")
    assert client_address("127.0.0.1", header) == ip("198.51.100.9")


def test_a_malformed_entry_behind_our_own_proxies_stops_at_the_farthest_of_them(trusting):
    trusting("10.0.0.0/8")
    assert client_address("10.0.0.1", "garbage, 10.9.9.9, 10.0.0.2") == ip("10.9.9.9")
    assert client_address("10.0.0.1", ",".join(["10.0.0.3"] * 40)) == ip("10.0.0.3")


def test_an_empty_header_or_no_peer(trusting):
    trusting("127.0.0.0/8")
    assert client_address("127.0.0.1", "") == ip("127.0.0.1")
    assert client_address(None, "1.2.3.4") is None
    assert client_address("", None) is None


def test_ipv6_peers_proxies_and_hops(trusting):
    trusting("::1/128", "fd00::/8")
    assert client_address("::1", "2001:db8::5, fd00::1") == ip("2001:db8::5")
    assert client_address("::1", "[2001:db8::7]:4711") == ip("2001:db8::7")
    assert client_address("2001:db8::9", "1.2.3.4") == ip("2001:db8::9")  # not a proxy of ours


def test_addresses_with_ports_and_ipv4_mapped_ipv6_are_normalised():
    assert parse_address("198.51.100.4:5555") == ip("198.51.100.4")
    assert parse_address(" [2001:db8::1] ") == ip("2001:db8::1")
    assert parse_address("::ffff:192.0.2.1") == ip("192.0.2.1")
    assert parse_address("fe80::1%eth0") is not None
    for bad in ("", "host.example", "[2001:db8::1]x", "1.2.3", "::ffff:999.1.1.1"):
        assert parse_address(bad) is None, bad


def test_an_asgi_scope_joins_repeated_forwarded_headers(trusting):
    trusting("127.0.0.0/8")
    scope = {"client": ("127.0.0.1", 5000),
             "headers": [(b"x-forwarded-for", b"1.2.3.4"), (b"host", b"x"), (b"x-forwarded-for", b"198.51.100.2")]}
    assert scope_client_address(scope) == ip("198.51.100.2")
    assert scope_client_address({"client": None, "headers": []}) is None


def test_django_requests_carry_the_resolved_address(trusting):
    trusting("127.0.0.0/8")
    from django.test import RequestFactory

    from apps.common.middleware import ClientAddressMiddleware

    seen = {}
    middleware = ClientAddressMiddleware(lambda request: seen.setdefault("address", request.client_address))
    middleware(RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="203.0.113.9"))
    assert seen["address"] == ip("203.0.113.9")


def test_malformed_trusted_proxies_stop_the_start():
    from tests.test_settings import run_check

    result = run_check(XROUTER_TRUSTED_PROXIES="10.0.0.0/8, not-a-network")
    assert result.returncode != 0 and "XROUTER_TRUSTED_PROXIES" in result.stderr
