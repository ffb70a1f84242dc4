"""One live adapter per provider, rebuilt only when the provider's configuration changes."""

import asyncio
import logging

from . import adapter_class
from .base import ProviderAdapter, ProviderConfig

log = logging.getLogger(__name__)
_live: dict[str, ProviderAdapter] = {}
RETIRE_AFTER = 900.0  # seconds: streams still using a replaced adapter finish on its session


def adapter_for(config: ProviderConfig) -> ProviderAdapter:
    current = _live.get(config.name)
    if current is not None and current.config == config:
        return current
    adapter = adapter_class(config.kind)(config)
    _live[config.name] = adapter
    if current is not None:
        _retire(current)
    return adapter


def _retire(adapter: ProviderAdapter) -> None:
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    loop.call_later(RETIRE_AFTER, lambda: loop.create_task(adapter.close()))


async def close_all() -> None:
    for adapter in list(_live.values()):
        await adapter.close()
    _live.clear()
