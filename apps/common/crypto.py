"""Secrets at rest: Fernet (AES-128-CBC + HMAC) through `cryptography`, keys from the environment.

MultiFernet takes a list of keys, newest first, so keys can be rotated without downtime: the new key goes
first, and `manage.py rotate_fernet_keys` re-encrypts what the old ones encrypted.
"""

import functools

import orjson
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models


@functools.cache
def fernet() -> MultiFernet:
    try:
        return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in settings.FERNET_KEYS])
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"XROUTER_FERNET_KEYS holds a malformed Fernet key ({exc})") from None


def encrypt_json(value: dict) -> str:
    return fernet().encrypt(orjson.dumps(value)).decode()


def decrypt_json(token: str) -> dict:
    if not token:
        return {}
    try:
        return orjson.loads(fernet().decrypt(token.encode()))
    except InvalidToken:
        raise ImproperlyConfigured("A stored credential cannot be decrypted with XROUTER_FERNET_KEYS") from None


class Undecryptable(dict):
    """Secrets stored under a key no longer configured: empty to every reader, and written back
    unchanged (the token may open again once the key is restored)."""

    def __init__(self, token: str):
        super().__init__()
        self.token = token


class EncryptedJSONField(models.TextField):
    """A dict stored as a Fernet token. The database never sees the plaintext.

    A token that no configured key opens reads as `Undecryptable`, so one lost key disables the
    rows it encrypted (their readers check for it) instead of failing every query of the table.
    """

    def from_db_value(self, value, expression, connection):
        if not value:
            return {}
        try:
            return decrypt_json(value)
        except ImproperlyConfigured:
            return Undecryptable(value)

    def to_python(self, value):
        if isinstance(value, dict):
            return value
        return decrypt_json(value) if value else {}

    def value_to_string(self, obj):
        """What dumpdata writes (backups, fixtures): the token, never the secrets; loaddata
        decrypts it through to_python."""
        return self.get_prep_value(self.value_from_object(obj))

    def get_prep_value(self, value):
        if isinstance(value, Undecryptable):
            return value.token
        if not value:
            return ""
        return encrypt_json(value)
