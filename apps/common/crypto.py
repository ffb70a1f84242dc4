"""Secrets at rest: Fernet (AES-128-CBC + HMAC) through `cryptography`, keys from the environment.

MultiFernet takes a list of keys, newest first, so keys can be rotated without a migration.
"""

import functools

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@functools.cache
def _fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in settings.FERNET_KEYS])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"XROUTER_FERNET_KEYS holds a malformed Fernet key ({exc})") from None


def encrypt_json(value: dict) -> str:
    return _fernet().encrypt(orjson.dumps(value)).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return orjson.loads(_fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured("A stored credential cannot be decrypted with XROUTER_FERNET_KEYS") from None


class EncryptedJSONField(models.TextField):
    """A dict stored as a Fernet token. The database never sees the plaintext."""

    def from_db_value(self, value, expression, connection):
        return decrypt_json(value) if value else {}

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        return decrypt_json(value) if value else {}

    def get_prep_value(self, value):
        if not value:
            return ""
        return encrypt_json(value)
