"""Provider adapters, loaded lazily by kind."""

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
    return import_string(REGISTRY[kind])
