"""Outbound requests to URLs that tenants enter (webhooks): only to public addresses.

Provider connections follow the same address rule at connect time (apps/providers/destinations.py).

`resolve_public(url)` checks the URL (https; plain http only to an address XROUTER_FETCH_ALLOW lists),
resolves its host and refuses loopback, private, link-local, multicast, reserved and unspecified
addresses unless one of the XROUTER_FETCH_ALLOW networks (CIDRs) holds them. The caller then connects
to the address it was given, not to the name again, so a DNS answer that changes between the check and
the connection (rebinding) cannot send the request inside.
"""

import ipaddress
import socket
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlsplit

from django.conf import settings

MAX_URL = 500


class UnsafeURL(ValueError):
    """A URL we will not fetch; the message says why (safe to show to whoever entered it)."""


@dataclass(frozen=True)
class Target:
    url: str  # the URL with the host replaced by the checked address
    host: str  # the original host name: the TLS server name
    address: str
    host_header: str  # the original host[:port], for the Host header


@cache
def _allowed(networks: tuple[str, ...]):
    return tuple(ipaddress.ip_network(n.strip(), strict=False) for n in networks if n.strip())


def allowed_networks():
    return _allowed(tuple(getattr(settings, "XROUTER_FETCH_ALLOW", ())))


SITE_LOCAL = ipaddress.ip_network("fec0::/10")  # deprecated, yet routed inside some networks; is_global says yes
# IPv6 prefixes whose last 32 bits are an IPv4 address a translator or the kernel may reach: NAT64's
# well-known prefix (RFC 6052), IPv4-translated (SIIT, RFC 2765) and IPv4-compatible (::/96, deprecated).
EMBEDDING_V4 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::ffff:0:0:0/96", "::/96"))


def _is_public(address) -> bool:
    return address.is_global and not address.is_multicast and address not in SITE_LOCAL


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (mapped, 6to4, NAT64, SIIT, compatible), if any."""
    if ip.ipv4_mapped or ip.sixtofour:
        return ip.ipv4_mapped or ip.sixtofour
    if any(ip in network for network in EMBEDDING_V4):
        return ipaddress.IPv4Address(ip.packed[-4:])
    return None


def check_address(address: str) -> bool:
    """Whether we may connect to this IP address (public, or inside an XROUTER_FETCH_ALLOW network). An
    IPv6 address that embeds an IPv4 one is judged as that IPv4 address."""
    ip = ipaddress.ip_address(address)
    judged = (_embedded_v4(ip) or ip) if isinstance(ip, ipaddress.IPv6Address) else ip
    return any(a in network for a in {ip, judged} for network in allowed_networks()) or _is_public(judged)


def check_url(url: str) -> None:
    """The static checks (no DNS): a form can call this to refuse a bad URL at once."""
    if not url or len(url) > MAX_URL:
        raise UnsafeURL(f"a URL of at most {MAX_URL} characters is required")
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http"):
        raise UnsafeURL("the URL must start with https://")
    if not parts.hostname:
        raise UnsafeURL("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeURL("the URL must not carry a user name or password")
    try:
        _ = parts.port
    except ValueError:
        raise UnsafeURL("the URL's port is not a number from 0 to 65535") from None


def resolve_public(url: str) -> Target:
    """The address to connect to for `url`, checked; UnsafeURL otherwise."""
    check_url(url)
    parts = urlsplit(url)
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise UnsafeURL(f"the host {host!r} does not resolve") from None
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    # Every address must pass: a name that also resolves inside must not be used at all.
    refused = [a for a in addresses if not check_address(a)]
    if refused or not addresses:
        raise UnsafeURL(f"the host {host!r} resolves to an address that is not public ({', '.join(refused)})")
    address = addresses[0]
    if parts.scheme == "http" and not any(ipaddress.ip_address(address) in n for n in allowed_networks()):
        raise UnsafeURL("the URL must start with https:// (plain http only to networks XROUTER_FETCH_ALLOW lists)")
    literal = f"[{address}]" if ":" in address else address
    netloc = f"{literal}:{parts.port}" if parts.port else literal
    return Target(url=parts._replace(netloc=netloc).geturl(), host=host, address=address, host_header=parts.netloc)


FETCH_TIMEOUT = 5.0  # seconds for a whole fetch (a slot, DNS, connect, headers, body)
FETCH_SLOTS = 4  # fetches of one process at once: bounds the executor threads and the bodies held
_semaphores: dict = {}  # event loop → its semaphore


def _slots():
    import asyncio

    loop = asyncio.get_running_loop()
    found = _semaphores.get(loop)
    if found is None:
        _semaphores.clear()  # a process has one loop for its life; tests start others
        found = _semaphores[loop] = asyncio.Semaphore(FETCH_SLOTS)
    return found


async def fetch_public(url: str, max_bytes: int) -> tuple[bytes, str]:
    """GET `url` from a public address (resolve_public: its DNS answer checked, then the address itself
    connected to, the name kept for TLS and the Host header), no redirects, within FETCH_TIMEOUT, at most
    `max_bytes`: (body, its Content-Type). UnsafeURL for a URL we will not fetch, or one that did not
    answer 200 with a body of that size in time (the message is safe to show to whoever sent the URL)."""
    import asyncio

    import aiohttp

    loop = asyncio.get_running_loop()
    try:
        # One deadline for all of it, the wait for a slot and the DNS answer included: a name whose servers
        # answer slowly (a client's choice) holds neither the request nor, past FETCH_SLOTS at once, the
        # executor's threads that every other lookup of this process shares.
        async with asyncio.timeout(FETCH_TIMEOUT), _slots():
            # getaddrinfo blocks: the default executor runs it, as aiohttp's own resolver does.
            target = await loop.run_in_executor(None, resolve_public, url)
            ssl_name = target.host if urlsplit(url).scheme == "https" else None
            async with aiohttp.ClientSession(auto_decompress=False) as session, \
                    session.get(target.url, headers={"Host": target.host_header}, allow_redirects=False,
                                server_hostname=ssl_name) as response:
                if response.status != 200:
                    raise UnsafeURL(f"the URL answered HTTP {response.status}, not 200")
                if response.content_length is not None and response.content_length > max_bytes:
                    raise UnsafeURL(f"the URL's body is larger than {max_bytes} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > max_bytes:
                        raise UnsafeURL(f"the URL's body is larger than {max_bytes} bytes")
                return bytes(body), response.content_type
    except TimeoutError:
        raise UnsafeURL(f"the URL did not answer within {FETCH_TIMEOUT:.0f} s") from None
    except aiohttp.ClientError as exc:
        raise UnsafeURL(f"the URL could not be fetched ({type(exc).__name__})") from None
