"""Provider adapters, one module per provider kind, loaded lazily by `adapter_class(kind)`.

A provider module is imported the first time its kind is used (the Yandex one pulls in
PyJWT, for instance), then the class is cached, as healthchecks' `Channel.transport` does.
"""

from __future__ import annotations

import functools

from django.utils.module_loading import import_string

REGISTRY = {
    "gigachat": "apps.providers.adapters.gigachat.GigaChatAdapter",
    "yandexgpt": "apps.providers.adapters.yandexgpt.YandexGPTAdapter",
    "mts": "apps.providers.adapters.openai_compat.MTSAdapter",
    "tbank": "apps.providers.adapters.openai_compat.TBankAdapter",
    "openai_compatible": "apps.providers.adapters.openai_compat.OpenAICompatibleAdapter",
}


@functools.cache
def adapter_class(kind: str):
    """The ProviderAdapter subclass for a provider kind; KeyError for an unknown kind."""
    try:
        path = REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown provider kind {kind!r}; known: {', '.join(sorted(REGISTRY))}") from None
    return import_string(path)
