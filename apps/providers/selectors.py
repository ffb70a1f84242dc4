"""Reads of provider configuration, detached from the ORM for the hot path."""

import logging

from apps.common.crypto import Undecryptable

from .adapters.base import CredentialConfig, ProviderConfig
from .models import Provider, ProviderModel

log = logging.getLogger(__name__)


def provider_configs() -> dict[str, ProviderConfig]:
    """Every enabled provider with its decrypted credentials (one query for each table).

    A credential no configured key decrypts is left out (logged): the provider's other
    credentials, and every other provider, keep working. So is a provider whose extra headers none decrypts."""
    configs = {}
    for provider in Provider.objects.filter(enabled=True).prefetch_related("credentials", "models"):
        if isinstance(provider.extra_headers, Undecryptable):
            log.error("provider %s: its extra headers cannot be decrypted with XROUTER_FERNET_KEYS; it is skipped until "
                      "they are re-entered in the admin", provider.name)
            continue
        creds = tuple(
            CredentialConfig(name=c.name, secrets=dict(c.secrets), max_concurrency=c.max_concurrency, token_owner=c.token_owner,
                             requests_rate=c.requests_rate)
            for c in sorted(provider.credentials.all(), key=lambda c: c.name)
            if c.enabled and _readable(provider, c)
        )
        configs[provider.name] = ProviderConfig(
            name=provider.name,
            kind=provider.kind,
            base_url=provider.base_url.rstrip("/"),
            auth_url=provider.auth_url,
            credentials=creds,
            extra_headers=dict(provider.extra_headers or {}),
            options=dict(provider.options or {}),
            ca_bundle=provider.ca_bundle,
            verify_tls=provider.verify_tls,
            client_cert=provider.client_cert,
            client_key=provider.client_key,
            timeout=provider.timeout,
            jurisdiction=provider.jurisdiction,
            model_options={m.name: dict(m.options) for m in provider.models.all() if m.options},
            allowed_hosts=tuple(provider.allowed_hosts or ()),
        )
    return configs


def enabled_models():
    return ProviderModel.objects.filter(enabled=True, provider__enabled=True).select_related("provider")


def _readable(provider, credential) -> bool:
    if not isinstance(credential.secrets, Undecryptable):
        return True
    log.error("provider %s: credential %s cannot be decrypted with XROUTER_FERNET_KEYS (or the keys derived from "
              "DJANGO_SECRET_KEY and DJANGO_SECRET_KEY_FALLBACKS); it is skipped until its secret is re-entered "
              "in the admin", provider.name, credential.name)
    return False
