"""JWT access tokens of external identity providers on /v1 (XROUTER_JWT_ISSUERS).

A token is checked on the event loop against its issuer's JWKS: signature (asymmetric algorithms
only), issuer, audience, expiry. Keys are cached per issuer, fetched again after JWKS_TTL, and at
most every REFETCH_INTERVAL when a token names a key id we do not have (a key rotation; a stream of
made-up key ids costs one fetch per interval). A token that passes maps to a person on the lookup
thread: its organisation claim names an organisation (unknown: 403), the user is made on first use as a
member with the role claim's role (services.external_user_for); from then on the membership the portal keeps
decides (its role sets the scopes; no membership there: refused), and the result sits in the key cache until
the token expires.
"""

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field

import jwt
from django.conf import settings

from apps.accounts.models import Membership, Organisation
from apps.common.client_address import parse_networks
from apps.common.errors import ApiError
from apps.common.personal_data import policies_of
from apps.common.rates import Limits
from apps.keys.models import DEFAULT_SCOPES
from apps.keys.selectors import CacheEntry, KeyInfo, alookup

from .services import external_user_for

log = logging.getLogger(__name__)

JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
MAX_JWT_BYTES = 8192
ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"})
JWKS_TTL = 3600.0
REFETCH_INTERVAL = 30.0
FETCH_TIMEOUT = 3.0
MAX_JWKS_BYTES = 64 * 1024
MAX_KEYS = 32  # per issuer
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf/iat
# What each role may do on /v1; a `scope` claim narrows it further.
ROLE_SCOPES = {Membership.Role.BILLING_VIEWER: frozenset({"models:read"})}


def is_jwt_shaped(token: str) -> bool:
    return len(token) <= MAX_JWT_BYTES and JWT_SHAPE.fullmatch(token) is not None


@dataclass
class _Issuer:
    config: dict
    keys: dict = field(default_factory=dict)  # kid → jwt.PyJWK
    fetched: float = float("-inf")
    fetching: asyncio.Future | None = None

    async def key(self, kid: str | None):
        age = time.monotonic() - self.fetched
        if age > JWKS_TTL or (kid not in self.keys and age > REFETCH_INTERVAL):
            await self._refresh()
        if kid is None:
            return next(iter(self.keys.values())) if len(self.keys) == 1 else None
        return self.keys.get(kid)

    async def _refresh(self) -> None:
        if self.fetching is None:
            self.fetching = asyncio.ensure_future(self._fetch())
            self.fetching.add_done_callback(lambda _: setattr(self, "fetching", None))
        await asyncio.shield(self.fetching)

    async def _fetch(self) -> None:
        import aiohttp

        url = self.config["jwks_url"]
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT)) as session:
                async with session.get(url, allow_redirects=False) as response:
                    response.raise_for_status()
                    body = b""
                    async for chunk in response.content.iter_chunked(16384):
                        body += chunk
                        if len(body) > MAX_JWKS_BYTES:
                            raise ValueError(f"JWKS larger than {MAX_JWKS_BYTES} bytes")
            keys = {}
            for jwk in jwt.PyJWKSet.from_json(body.decode()).keys[:MAX_KEYS]:
                if jwk.key_id and jwk.public_key_use in (None, "sig"):
                    keys[jwk.key_id] = jwk
            self.keys = keys
        except Exception:  # the IdP is down or answers nonsense: keep the keys we had
            log.warning("JWKS fetch failed; keeping %d cached keys", len(self.keys), extra={"jwks_url": url},
                        exc_info=True)
        finally:
            self.fetched = time.monotonic()


_issuers: dict[str, _Issuer] = {}


def _issuer(name) -> _Issuer | None:
    if not _issuers:
        _issuers.update({c["issuer"]: _Issuer(c) for c in settings.XROUTER["JWT_ISSUERS"]})
    return _issuers.get(name) if isinstance(name, str) else None


async def verify(token: str) -> tuple[dict, dict] | None:
    """(issuer config, claims) of a valid token of a configured issuer, else None."""
    try:
        header = jwt.get_unverified_header(token)
        unverified = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    issuer, alg = _issuer(unverified.get("iss")), header.get("alg")
    if issuer is None or not isinstance(alg, str) or alg not in ALGORITHMS:  # forged parts may hold any JSON
        return None
    key = await issuer.key(header.get("kid"))
    if key is None:  # PyJWT refuses a key of the wrong type for the header's algorithm below
        return None
    config = issuer.config
    try:
        claims = jwt.decode(token, key.key, algorithms=[alg], audience=config["audience"],
                            issuer=config["issuer"], leeway=LEEWAY, options={"require": ["exp", "iss", "aud", "sub"]})
    except jwt.PyJWTError:
        return None
    if not isinstance(claims.get("sub"), str) or not claims["sub"] or len(claims["sub"]) > 255:
        return None
    return config, claims


def scopes_of(role: str, claims: dict) -> frozenset:
    scopes = ROLE_SCOPES.get(role, frozenset(DEFAULT_SCOPES))
    granted = claims.get("scope", claims.get("scp"))
    if isinstance(granted, str):
        scopes &= frozenset(granted.split())
    elif isinstance(granted, list):
        scopes &= frozenset(s for s in granted if isinstance(s, str))
    return scopes


def _load(verified: tuple[dict, dict], hashed: str) -> CacheEntry:
    config, claims = verified
    named = claims.get(config["organisation_claim"])
    organisation = Organisation.objects.filter(name=named).first() if isinstance(named, str) else None
    if organisation is None:
        raise ApiError(403, "The token's organisation is not known to XRouter.", code="unknown_organisation")
    claimed = claims.get(config["role_claim"])
    user = external_user_for(config["issuer"], claims["sub"], organisation,
                             claimed if claimed in Membership.Role.values else Membership.Role.DEVELOPER)
    # The membership's role, as the portal keeps it (the claim made it on first use); none: refused.
    role = Membership.objects.filter(user=user, organisation=organisation).values_list("role", flat=True).first()
    organisations = [o for o in (organisation, user.organisation) if o is not None]
    active = role is not None and user.is_active and all(o.is_active for o in organisations)
    info = KeyInfo(
        id=user.id,
        prefix="",
        name=f"{claims['sub']} at {config['issuer']}"[:100],
        user_id=user.id,
        organisation_id=organisation.id,
        allowed_models=tuple(organisation.allowed_models or ()),
        residency=organisation.residency,
        expires_at=float(claims["exp"]),
        scopes=scopes_of(role, claims),
        kind="jwt",
        organisation_networks=parse_networks(organisation.allowed_ips or []),
        organisation_limits=Limits.of(organisation),  # its organisation's limits and budget (apps.limits)
        policies=policies_of(organisation),  # its organisation's personal-data policy (apps.privacy)
    ) if active else None
    return CacheEntry(info, ("jwt", user.id), user.id, tuple(o.id for o in organisations), time.monotonic())


async def ajwt_info_for(token: str) -> KeyInfo | None:
    """The KeyInfo of a valid external JWT, None when refused (401); ApiError(403) for an unknown organisation."""
    if len(token) > MAX_JWT_BYTES:
        return None
    return await alookup(token, JWT_SHAPE, _load, verify=verify)
