"""What the security tests share: the environment an operator sets for XROUTER_ENV=production."""

import secrets
from pathlib import Path

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa


def production_env(directory: Path, **extra) -> dict[str, str]:
    """A complete production environment (strong secrets, a Fernet key, the ID-token signing key in `directory`)."""
    key_file = directory / "oidc-rsa-key.pem"
    if not key_file.exists():
        key_file.write_bytes(rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return {"XROUTER_ENV": "production", "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
            "XROUTER_FERNET_KEYS": Fernet.generate_key().decode(), "XROUTER_OIDC_RSA_KEY_FILE": str(key_file),
            "XROUTER_BUS_HMAC_KEYS": secrets.token_hex(32), **extra}
