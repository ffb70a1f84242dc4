"""OAuth access tokens on the /v1 hot path: the key cache of apps.keys.selectors, with a loader of ours.

A token is found by the SHA-256 of its plaintext (the toolkit's `token_checksum`, the only form
stored). It works like an API key of its user, made in its application's organisation: that
organisation's policy (allowed models, residency) bounds it, its scopes are the token's.
Client-credentials tokens have no user: they act for the person who registered the application, while that
person may hold keys in its organisation (keys.models.holds_keys_in: a leaver or a billing viewer holds the
secret still, and their keys there are refused too).
"""

import re
import time
from hashlib import sha256

from django.utils import timezone

from apps.accounts.models import Membership
from apps.common.client_address import parse_networks
from apps.common.personal_data import policies_of
from apps.common.rates import Limits
from apps.keys.models import SCOPES, holds_keys_in
from apps.keys.selectors import CacheEntry, KeyInfo, alookup

from .models import AccessToken
from .tokens import ACCESS_TOKEN_SHAPE

_SCOPES = frozenset(SCOPES)


def _load(match: re.Match | None, hashed: str) -> CacheEntry | None:
    row = (AccessToken.objects.select_related("user__organisation", "application__organisation",
                                              "application__user__organisation")
           .filter(token_checksum=hashed).first())
    if row is None or row.application is None:
        return None
    application = row.application
    user = row.user or application.user
    if user is None:
        return None
    organisations = [o for o in (application.organisation, user.organisation) if o is not None]
    active = row.expires > timezone.now() and user.is_active and all(o.is_active for o in organisations)
    if active and row.user is None:  # client credentials: the registrant's rights in the application's organisation
        role = (Membership.objects.filter(user=user, organisation_id=application.organisation_id)
                .values_list("role", flat=True).first())
        active = holds_keys_in(application.organisation_id, role, user.organisation_id)
    policy = application.organisation
    info = KeyInfo(
        id=row.id,
        prefix="",
        name=application.name or application.client_id,
        user_id=user.id,
        organisation_id=policy.id,
        allowed_models=tuple(policy.allowed_models or ()),
        residency=policy.residency,
        expires_at=row.expires.timestamp(),
        scopes=frozenset(row.scope.split()) & _SCOPES,
        kind="oauth",
        organisation_networks=parse_networks(policy.allowed_ips or []),
        organisation_limits=Limits.of(policy),  # its organisation's limits and budget (apps.limits)
        policies=policies_of(policy),  # its organisation's personal-data policy (apps.privacy)
    ) if active else None
    return CacheEntry(info, ("oauth", row.id), user.id, tuple(o.id for o in organisations), time.monotonic())


def oauth_token_info_for(plaintext: str) -> KeyInfo | None:
    """Synchronous, uncached lookup in the caller's thread (the management API)."""
    if ACCESS_TOKEN_SHAPE.fullmatch(plaintext) is None:
        return None
    entry = _load(None, sha256(plaintext.encode()).hexdigest())
    info = entry.info if entry else None
    return info if info is not None and info.expires_at > time.time() else None


async def aoauth_token_info_for(plaintext: str) -> KeyInfo | None:
    """The KeyInfo of an `xro-` access token, or None when unknown, revoked, expired or refused.
    Raises ApiError(503) when it must be looked up and the database cannot answer."""
    return await alookup(plaintext, ACCESS_TOKEN_SHAPE, _load)
