"""Issue 8 review of item 19: what XROUTER_ENV=production still let through.

- DJANGO_SECRET_KEY_FALLBACKS holding the public default (what an operator who moves a
  development install to production keeps "so sessions survive"): Django still accepts
  signatures under it (password-reset tokens, signed cookies): anyone can forge them.
- A malformed XROUTER_FERNET_KEYS passed the check: the server started, every credential read
  as undecryptable (silently disabled) and every admin save of a secret answered 500.
"""

import pytest
from cryptography.fernet import Fernet

from tests.config.test_production_switch import STRONG_KEY, run


@pytest.fixture
def production(settings):
    settings.XROUTER_ENV = "production"
    settings.SECRET_KEY = STRONG_KEY
    settings.SECRET_KEY_FALLBACKS = []
    settings.FERNET_KEYS_CONFIGURED = [Fernet.generate_key().decode()]
    settings.BUS_HMAC_KEYS_CONFIGURED = ["b" * 64]
    return settings


def _errors():
    from apps.common.checks import check_production_secrets

    return [e.msg for e in check_production_secrets()]


@pytest.mark.parametrize("fallback", ["dev-only-insecure-secret-key-change-me-in-production", "short-old-key"])
def test_production_refuses_a_weak_or_public_secret_key_fallback(production, fallback):
    assert _errors() == []
    production.SECRET_KEY_FALLBACKS = [STRONG_KEY[::-1], fallback]
    errors = _errors()
    assert errors and all("DJANGO_SECRET_KEY_FALLBACKS" in e for e in errors), errors
    assert fallback not in " ".join(errors)  # a check never prints a secret


def test_production_refuses_malformed_fernet_keys(production):
    production.FERNET_KEYS_CONFIGURED = [Fernet.generate_key().decode(), "not-a-fernet-key"]
    errors = _errors()
    assert errors and "XROUTER_FERNET_KEYS" in errors[0], errors
    assert "not-a-fernet-key" not in errors[0]


def test_check_deploy_fails_with_the_public_default_as_a_fallback():
    result = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", DJANGO_SECRET_KEY=STRONG_KEY,
                 XROUTER_FERNET_KEYS=Fernet.generate_key().decode(),
                 DJANGO_SECRET_KEY_FALLBACKS="dev-only-insecure-secret-key-change-me-in-production")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY_FALLBACKS" in result.stderr, result.stderr
