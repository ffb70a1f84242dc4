"""Writes on API keys. The plaintext key exists only in the return value of key_create."""

import hashlib
import secrets

from django.utils import timezone

from .models import ApiKey

KEY_PREFIX = "xr"


def hash_key(plaintext: str) -> str:
    # The secret part has 190+ bits of entropy, so a fast hash is enough (as GitHub and Stripe do);
    # a slow KDF would cost milliseconds on every cache miss for no gain.
    return hashlib.sha256(plaintext.encode()).hexdigest()


def key_create(*, user, name: str, organisation=None, allowed_models=None, residency="", expires_at=None):
    """Create a key; returns (ApiKey, plaintext). The plaintext is never stored or shown again."""
    prefix = secrets.token_hex(4)
    plaintext = f"{KEY_PREFIX}-{prefix}-{secrets.token_urlsafe(32)}"
    key = ApiKey.objects.create(
        user=user,
        organisation=organisation if organisation is not None else getattr(user, "organisation", None),
        name=name,
        prefix=prefix,
        hashed_key=hash_key(plaintext),
        allowed_models=list(allowed_models or []),
        residency=residency,
        expires_at=expires_at,
    )
    return key, plaintext


def key_revoke(key: ApiKey) -> None:
    key.revoked_at = timezone.now()
    key.save(update_fields=["revoked_at"])
