"""The production switch: XROUTER_ENV=production refuses the development defaults.

Registered as a system check without the deploy tag, so `check --deploy`, `manage.py serve` and
every other command report it; the ASGI app calls refuse_insecure_start() at startup, however it
is served. In development the defaults stay (a fresh clone runs with no environment) and one
WARNING per process start names each default in use.
"""

import logging

from django.conf import settings
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

log = logging.getLogger(__name__)
MIN_SECRET_KEY_LENGTH = 50


def insecure_settings() -> list[tuple[str, str, str]]:
    """(check id, setting, why) for each development default in use."""
    found = []
    if settings.SECRET_KEY == settings.DEFAULT_SECRET_KEY:
        found.append(("xrouter.E001", "DJANGO_SECRET_KEY", "is the public default"))
    elif len(settings.SECRET_KEY) < MIN_SECRET_KEY_LENGTH:
        found.append(("xrouter.E001", "DJANGO_SECRET_KEY", f"is shorter than {MIN_SECRET_KEY_LENGTH} characters"))
    # A fallback still verifies signatures (password-reset tokens, signed cookies): a public or
    # weak one lets anyone forge them, however strong the current key.
    weak = [i for i, old in enumerate(settings.SECRET_KEY_FALLBACKS, 1)
            if old == settings.DEFAULT_SECRET_KEY or len(old) < MIN_SECRET_KEY_LENGTH]
    if weak:
        found.append(("xrouter.E003", "DJANGO_SECRET_KEY_FALLBACKS",
                      f"holds the public default or a key shorter than {MIN_SECRET_KEY_LENGTH} characters "
                      f"(entry {', '.join(map(str, weak))})"))
    if not settings.FERNET_KEYS_CONFIGURED:
        found.append(("xrouter.E002", "XROUTER_FERNET_KEYS",
                      "is unset (credentials are encrypted with a key derived from DJANGO_SECRET_KEY)"))
    else:
        malformed = [i for i, key in enumerate(settings.FERNET_KEYS_CONFIGURED, 1) if not _is_fernet_key(key)]
        if malformed:
            found.append(("xrouter.E004", "XROUTER_FERNET_KEYS",
                          f"holds a malformed key (entry {', '.join(map(str, malformed))}; use Fernet.generate_key())"))
    from .signing import MIN_KEY_CHARS

    if not settings.BUS_HMAC_KEYS_CONFIGURED:
        found.append(("xrouter.E006", "XROUTER_BUS_HMAC_KEYS",
                      "is unset (bus events and usage records are signed with a key derived from DJANGO_SECRET_KEY)"))
    elif any(len(key) < MIN_KEY_CHARS for key in settings.BUS_HMAC_KEYS_CONFIGURED):
        found.append(("xrouter.E006", "XROUTER_BUS_HMAC_KEYS",
                      f"holds a key shorter than {MIN_KEY_CHARS} characters (use `openssl rand -hex 32`)"))
    if not settings.OAUTH2_PROVIDER["OIDC_RSA_PRIVATE_KEY"]:
        found.append(("xrouter.E005", "XROUTER_OIDC_RSA_KEY_FILE",
                      f"names no readable file ({settings.OIDC_RSA_KEY_FILE}): OpenID Connect ID tokens could not be "
                      "signed (generate one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`)"))
    return found


def _is_fernet_key(key: str) -> bool:
    from cryptography.fernet import Fernet

    try:
        Fernet(key)
    except (ValueError, TypeError):
        return False
    return True


@register(Tags.security)
def check_production_secrets(app_configs=None, **kwargs):
    if settings.XROUTER_ENV != "production":
        return []
    return [
        Error(f"{name} {why}; XROUTER_ENV=production refuses to start with it.",
              hint="Set it in the environment (or NAME_FILE); see the README, \"Production\".", id=check_id)
        for check_id, name, why in insecure_settings()
    ]


def warn_about_defaults() -> None:
    found = insecure_settings()
    if found:
        log.warning("development defaults in use (XROUTER_ENV=production refuses them): %s",
                    "; ".join(f"{name} {why}" for _, name, why in found))


def refuse_insecure_start() -> None:
    """At server start: raise in production on an insecure default; in development, say which are in use."""
    if settings.XROUTER_ENV == "production":
        errors = check_production_secrets()
        if errors:
            raise ImproperlyConfigured(" ".join(e.msg for e in errors))
    else:
        warn_about_defaults()
