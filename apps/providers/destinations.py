"""Where a provider's connections may go: server-side request forgery on provider URLs.

Two rules, checked on the address every new upstream connection is about to use (at connect time,
in `GuardedConnector`, so a name that resolves elsewhere after it was saved is still refused) and,
as far as no DNS is needed, when a provider is saved (the admin, `import_config`):

1. The address must be public (apps/common/fetch.py, the webhooks' rule), or inside a network the
   provider's `allowed_hosts` lists (a self-hosted vLLM on the operator's network), or inside
   XROUTER_FETCH_ALLOW — the one global exception list (tests, the demo and the benchmark set
   127.0.0.0/8; production leaves it empty). An address inside XROUTER_FETCH_ALLOW passes rule 2 too.
2. The host must be one the provider's kind may talk to: the provider's `allowed_hosts` (names,
   `*.suffix` wildcards, CIDRs) or, when it lists none, the kind's documented public hosts below.
   T-Bank and openai_compatible servers are self-hosted by nature, so they have no default list: any
   host name, as long as rule 1 holds.

Upstream redirects are never followed (transport.py), so a checked URL cannot hand the connection on.
Cost on /v1: one check per new connection (keep-alive reuses them; aiohttp caches DNS answers).
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from apps.common import fetch

log = logging.getLogger(__name__)

# The providers' documented public hosts (../shared/providers/*.md), API and token endpoints alike.
DEFAULT_HOSTS = {
    "gigachat": ("gigachat.devices.sberbank.ru", "ngw.devices.sberbank.ru", "api.giga.chat",
                 "gigachat-preview.devices.sberbank.ru"),
    "yandexgpt": ("llm.api.cloud.yandex.net", "iam.api.cloud.yandex.net", "operation.api.cloud.yandex.net",
                  "ai.api.cloud.yandex.net"),
    # Guess: gpt.mwsapis.ru (the per-project OpenAI path) serves the same API as api.gpt.mws.ru; both are MTS's.
    "mts": ("api.gpt.mws.ru", "gpt.mwsapis.ru"),
}
MAX_ENTRIES = 100


class RefusedDestination(OSError):
    """A connection the gateway will not open. An OSError, so aiohttp reports it as a failed connect
    (ClientConnectorError) and it never hangs; `public` is the message safe to show a /v1 client
    (the host, never the internal address)."""

    def __init__(self, message: str, public: str):
        super().__init__(message)
        self.public = public


@dataclass(frozen=True)
class Policy:
    kind: str
    names: frozenset[str]  # exact host names, lower case
    suffixes: tuple[str, ...]  # ".example.com" for "*.example.com"
    networks: tuple  # ip_network objects
    listed: bool  # whether the provider (not the kind's default) gave the list

    @property
    def restricts_names(self) -> bool:
        return bool(self.names or self.suffixes or (self.listed and self.networks))

    def describe(self) -> str:
        entries = sorted(self.names) + [f"*{s}" for s in self.suffixes] + [str(n) for n in self.networks]
        return ", ".join(entries)

    def host_allowed(self, host: str, addresses) -> bool:
        """Rule 2: the host by name, or every address inside one of the listed networks."""
        if not self.restricts_names:
            return True
        name = host.rstrip(".").lower()
        if name in self.names or any(name.endswith(s) for s in self.suffixes):
            return True
        return bool(addresses) and all(self._in_networks(a) for a in addresses)

    def _in_networks(self, address) -> bool:
        ip = ipaddress.ip_address(address)
        return any(ip.version == n.version and ip in n for n in self.networks)

    def unlisted(self, host: str) -> str:
        return (f"the host {host!r} is not among the hosts a {self.kind} provider may reach ({self.describe()}); "
                "list it in the provider's allowed_hosts")

    def problem(self, host: str, addresses) -> str | None:
        """Why a connection to `host` at `addresses` is refused (for the operator's log), or None."""
        exempt = fetch.allowed_networks()
        if addresses and all(any(ipaddress.ip_address(a) in n for n in exempt) for a in addresses):
            return None  # XROUTER_FETCH_ALLOW: the one global exception list
        if not self.host_allowed(host, addresses):
            return self.unlisted(host)
        refused = [a for a in addresses if not (fetch.check_address(a) or self._in_networks(a))]
        if refused or not addresses:
            return (f"the host {host!r} resolves to an address that is not public ({', '.join(refused)}) and not "
                    "inside the provider's allowed_hosts networks or XROUTER_FETCH_ALLOW")
        return None


def parse_entries(entries) -> tuple[frozenset, tuple, tuple]:
    """(names, suffixes, networks) of an allowed_hosts list; ValueError names a bad entry."""
    if not isinstance(entries, (list, tuple)) or not all(isinstance(e, str) for e in entries):
        raise ValueError("allowed_hosts must be a list of host names, *.domain wildcards or CIDRs")
    if len(entries) > MAX_ENTRIES:
        raise ValueError(f"allowed_hosts holds at most {MAX_ENTRIES} entries")
    names, suffixes, networks = set(), [], []
    for raw in entries:
        entry = raw.strip().lower().rstrip(".")
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except ValueError:
            pass  # not a network: a host name or a *.domain, checked below
        label = entry[2:] if entry.startswith("*.") else entry
        if not label or len(label) > 253 or not all(part and len(part) <= 63 and part.replace("-", "").isalnum()
                                                    for part in label.split(".")):
            raise ValueError(f"allowed_hosts: {raw!r} is neither a host name, a *.domain wildcard nor a CIDR")
        if entry.startswith("*."):
            suffixes.append("." + label)
        else:
            names.add(label)
    return frozenset(names), tuple(suffixes), tuple(networks)


@lru_cache(maxsize=256)
def _policy(kind: str, entries: tuple[str, ...]) -> Policy:
    listed = bool(entries)
    names, suffixes, networks = parse_entries(list(entries or DEFAULT_HOSTS.get(kind, ())))
    return Policy(kind, names, suffixes, networks, listed)


def policy(kind: str, allowed_hosts=()) -> Policy:
    if isinstance(allowed_hosts, str):  # a JSON string typed into the admin, not a list of entries
        raise ValueError("allowed_hosts must be a list of host names, *.domain wildcards or CIDRs")
    return _policy(kind, tuple(allowed_hosts or ()))


def url_problem(kind: str, allowed_hosts, url: str) -> str | None:
    """The save-time check of one provider URL (empty: the adapter's built-in endpoint, a default host).

    An address literal is checked whole (it cannot resolve elsewhere later); so is `localhost`. Any other
    name is checked against the host list only, without DNS (saving never waits on a resolver): where it
    resolves to is for connect time to judge."""
    if not url:
        return None
    try:
        rules = policy(kind, allowed_hosts)
    except ValueError as exc:
        return str(exc)
    host = urlsplit(url.strip()).hostname or ""
    if not host:
        return "the URL has no host"
    if host == "localhost":
        return rules.problem(host, ["127.0.0.1"])
    try:
        ipaddress.ip_address(host)
    except ValueError:
        # A name may still land inside a listed network: that is for connect time to see.
        return None if rules.host_allowed(host, ()) or rules.networks else rules.unlisted(host)
    return rules.problem(host, [host])


def provider_problem(kind: str, allowed_hosts, base_url: str, auth_url: str) -> dict[str, str]:
    """Field name → message for a provider about to be saved (empty when it may be)."""
    try:
        parse_entries(allowed_hosts or [])
    except ValueError as exc:
        return {"allowed_hosts": str(exc)}
    found = {}
    for field, url in (("base_url", base_url), ("auth_url", auth_url)):
        problem = url_problem(kind, allowed_hosts, url)
        if problem:
            found[field] = f"Refused: {problem}."
    return found


def guarded_connector(provider: str, rules: Policy, **kwargs):
    """An aiohttp TCPConnector that checks every address it is about to connect to (`rules`)."""
    import aiohttp

    class GuardedConnector(aiohttp.TCPConnector):
        # aiohttp resolves here (through its DNS cache and resolver; address literals without either)
        # just before it connects: the one place that sees every address a connection will use.
        async def _resolve_host(self, host, port, traces=None):
            hosts = await super()._resolve_host(host, port, traces=traces)
            addresses = list(dict.fromkeys(h["host"] for h in hosts))
            problem = rules.problem(host, addresses)
            if problem:
                log.warning("provider %s: connection refused: %s", provider, problem)
                raise RefusedDestination(problem, f"the gateway refuses to connect to {host!r} (not an allowed "
                                                  "destination for this provider)")
            return hosts

    return GuardedConnector(**kwargs)
