"""Signatures on what XRouter's processes tell each other through Redis: bus events and usage records.

Whoever can write to Redis could otherwise forge billing rows or disable providers through the bus.
Every bus message and every usage stream entry carries an HMAC-SHA256 of its raw bytes under the first
key of XROUTER_BUS_HMAC_KEYS; a receiver accepts a signature made with any key of the list, so keys
rotate without downtime (add the new key second everywhere, then move it first, then drop the old one).
Without the setting (development only: production refuses to start) the key is derived from
DJANGO_SECRET_KEY, as the Fernet key is, so signing is always on.

Cost: one HMAC per bus message and per stream entry (a flush's slice of up to 500 usage records), from
a keyed state prepared once and copied: ≈ 2 µs for an entry of one record on this machine (≈ 0.75 µs a
record in a full entry), where `hmac.digest` sets the key up again each time (≈ 3 µs). Nothing per request.

No Django at import: the lean usage writer uses this module too.
"""

import hashlib
import hmac
import os

SIGNATURE_BYTES = 32
MIN_KEY_CHARS = 32


def derive_key(secret: str) -> str:
    """The development key made from a Django secret key (hex, so it travels like a configured one)."""
    return hashlib.sha256(b"xrouter bus hmac v1\x00" + secret.encode()).hexdigest()


class Signer:
    """Signs with the first key; verifies with any."""

    __slots__ = ("_macs",)

    def __init__(self, keys):
        keys = [k.encode() if isinstance(k, str) else bytes(k) for k in keys if k]
        if not keys:
            raise ValueError("no HMAC key")
        self._macs = tuple(hmac.new(key, digestmod=hashlib.sha256) for key in keys)

    @staticmethod
    def _mac(keyed, raw: bytes) -> bytes:
        mac = keyed.copy()
        mac.update(raw)
        return mac.digest()

    def sign(self, raw: bytes) -> bytes:
        return self._mac(self._macs[0], raw)

    def verify(self, raw, signature) -> bool:
        if not isinstance(raw, bytes) or not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
            return False
        return any(hmac.compare_digest(self._mac(keyed, raw), signature) for keyed in self._macs)

    # Bus messages are one blob: the signature, then the message.
    def seal(self, raw: bytes) -> bytes:
        return self.sign(raw) + raw

    def open(self, sealed) -> bytes | None:
        """The message inside `sealed`, or None when its signature is missing or wrong."""
        if not isinstance(sealed, bytes) or len(sealed) <= SIGNATURE_BYTES:
            return None
        raw = sealed[SIGNATURE_BYTES:]
        return raw if self.verify(raw, sealed[:SIGNATURE_BYTES]) else None


def _secret(environ, name: str) -> str:
    path = environ.get(f"{name}_FILE")
    if path:
        with open(path) as f:
            return f.read().strip()
    return environ.get(name, "")


def keys_from_environ(environ=os.environ) -> list[str]:
    """The keys a process without Django settings uses (the lean writer): XROUTER_BUS_HMAC_KEYS (or
    _FILE), else derived from DJANGO_SECRET_KEY and its fallbacks. `serve` passes its keys to the writer
    it starts, so only a writer run on its own needs one of the two."""
    configured = [k.strip() for k in _secret(environ, "XROUTER_BUS_HMAC_KEYS").split(",") if k.strip()]
    if configured:
        return configured
    secret = _secret(environ, "DJANGO_SECRET_KEY")
    if not secret:
        raise ValueError("set XROUTER_BUS_HMAC_KEYS (or DJANGO_SECRET_KEY, from which development derives it)")
    fallbacks = [k.strip() for k in environ.get("DJANGO_SECRET_KEY_FALLBACKS", "").split(",") if k.strip()]
    return [derive_key(secret), *(derive_key(old) for old in fallbacks)]


_signer = None


def signer() -> Signer:
    """This process's signer, from settings.BUS_HMAC_KEYS (Django processes)."""
    global _signer
    if _signer is None:
        from django.conf import settings

        _signer = Signer(settings.BUS_HMAC_KEYS)
    return _signer


def usage_entry(payload: bytes, sign: Signer | None = None) -> dict:
    """The fields of one usage stream entry: the records (`b`) and their signature (`s`)."""
    return {"b": payload, "s": (sign or signer()).sign(payload)}
