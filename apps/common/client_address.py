"""The client's address: the one resolver /v1, Django and the WebSocket use.

The direct peer is the client unless it is one of XROUTER_TRUSTED_PROXIES (CIDRs; none by default).
Behind a trusted proxy, `X-Forwarded-For` is read from the right (each proxy appends the address it
saw) and the first address that is not itself a trusted proxy is the client: entries left of it were
written by the client and prove nothing, so junk there changes nothing, and only the header's last
MAX_FORWARDED_CHARS characters and MAX_HOPS hops are read. A malformed entry where a trusted proxy
should have written one ends the walk: the farthest trusted hop read so far (or the peer) is the client.
"""

import ipaddress
import socket
from functools import cache

from django.conf import settings
from django.core.exceptions import ValidationError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
MAX_FORWARDED_CHARS = 2048  # a longer X-Forwarded-For is not read at all
MAX_HOPS = 32
MAX_ALLOWED_IPS = 100  # entries of one IP allow-list (a key's or an organisation's)


@cache
def trusted_proxies() -> tuple:
    return tuple(ipaddress.ip_network(cidr) for cidr in settings.XROUTER["TRUSTED_PROXIES"])


def parse_address(text: str) -> Address | None:
    """An address as peers and proxies write it: bare, `[v6]`, `[v6]:port` or `v4:port`; None if malformed.
    An IPv4-mapped IPv6 address is its IPv4 address, so one allow-list entry covers both spellings."""
    text = text.strip()
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or (end + 1 < len(text) and not text[end + 1:].startswith(":")):
            return None
        text = text[1:end]
    elif text.count(":") == 1:  # v4:port (a bare IPv6 address has at least two colons)
        text = text.partition(":")[0]
    try:  # inet_pton: the same strict forms as ipaddress (no "1.2.3", no leading zeros), about 10x faster
        return ipaddress.IPv4Address(socket.inet_pton(socket.AF_INET, text))
    except OSError:
        pass
    try:
        address = ipaddress.ip_address(text)  # IPv6, with a zone ("fe80::1%eth0") too
    except ValueError:
        return None
    if address.version == 6 and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: tuple) -> bool:
    return any(address in network for network in proxies)


def is_trusted_proxy(peer: str | None) -> bool:
    """Whether the direct peer is one of XROUTER_TRUSTED_PROXIES (whose forwarding headers are believed)."""
    address = parse_address(peer) if peer else None
    proxies = trusted_proxies()
    return address is not None and bool(proxies) and _trusted(address, proxies)


def client_address(peer: str | None, forwarded_for: str | None) -> Address | None:
    """The client's address from the direct peer's and the X-Forwarded-For header's (all its lines
    joined by commas); None when the peer is unknown (a Unix socket) or not an address."""
    address = parse_address(peer) if peer else None
    proxies = trusted_proxies()
    if address is None or not forwarded_for or not proxies or not _trusted(address, proxies):
        return address
    tail = forwarded_for[-MAX_FORWARDED_CHARS:]
    hops = tail.split(",")[1 if len(tail) < len(forwarded_for) else 0:]  # a hop cut through is not read
    client = address
    for text in reversed(hops[-MAX_HOPS:]):
        hop = parse_address(text)
        if hop is None:
            return client  # not what a proxy of ours wrote: nothing left of it can be believed
        if not _trusted(hop, proxies):
            return hop
        client = hop  # a proxy of ours: the client is farther left
    return client  # every hop read is a proxy of ours: the farthest one is the client


def scope_client_address(scope) -> Address | None:
    """client_address for an ASGI scope (/v1 and the WebSocket)."""
    client = scope.get("client")
    forwarded = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == b"x-forwarded-for"]
    return client_address(client[0] if client else None, ",".join(forwarded) if forwarded else None)


def parse_networks(value) -> tuple:
    """The networks of an IP allow-list (CIDRs; a bare address is a /32 or /128). ValidationError names a bad entry."""
    if not isinstance(value, list) or not all(isinstance(n, str) for n in value):
        raise ValidationError('allowed_ips is a list of CIDRs, e.g. ["203.0.113.0/24", "2001:db8::/32"].')
    if len(value) > MAX_ALLOWED_IPS:
        raise ValidationError(f"allowed_ips holds at most {MAX_ALLOWED_IPS} entries.")
    networks = []
    for entry in value:
        try:
            networks.append(ipaddress.ip_network(entry.strip()))
        except ValueError as exc:
            raise ValidationError(f"allowed_ips entry {entry!r} is not a CIDR ({exc}).") from None
    return tuple(networks)


def validate_allowed_ips(value) -> None:
    parse_networks(value)


def canonical_networks(value) -> list[str]:
    """An allow-list as stored: each network once, in its canonical form."""
    return list(dict.fromkeys(str(n) for n in parse_networks(value)))
