"""From a requested model name to an ordered list of targets, and running them with fallbacks.

Precedence: rules (the routing issue) → operator aliases → an explicit `provider/model`.
Key restrictions (allowed models) and residency apply on every path. The router is the only
place that tries again: adapters make one attempt each.
"""

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from apps.common.errors import ApiError
from apps.keys.selectors import KeyInfo
from apps.providers.adapters.base import ProviderAdapter, ProviderError
from apps.providers.adapters.registry import adapter_for

from .catalog import Catalog, ModelEntry


@dataclass(slots=True)
class Target:
    model: ModelEntry
    adapter: ProviderAdapter
    timeout: float | None = None

    @property
    def label(self) -> str:
        return self.model.public_id


@dataclass(slots=True)
class RoutePlan:
    requested: str
    targets: list[Target]
    rule: str = ""
    retries: int = 0
    deadline: float | None = None  # monotonic time by which the whole request must finish
    attempts: list[str] = field(default_factory=list)

    def header(self, target: Target) -> str:
        return f"{self.rule or 'direct'};{target.label}"


def plan_route(catalog: Catalog, requested: str, key: KeyInfo, *, kind: str = "chat") -> RoutePlan:
    """The targets for `requested`, best first; ApiError(404/403) when there are none."""
    target_ids = [catalog.aliases[requested]] if requested in catalog.aliases else [requested]
    rule = f"alias:{requested}" if requested in catalog.aliases else ""

    if not key.allows(requested) and not all(key.allows(t) for t in target_ids):
        raise ApiError(403, f"This API key may not use the model '{requested}'.", param="model", code="model_not_allowed")

    targets, refused_residency = [], False
    for public_id in target_ids:
        entry = catalog.models.get(public_id)
        if entry is None or entry.kind != kind:
            continue
        if key.residency and entry.jurisdiction != key.residency:
            refused_residency = True
            continue
        targets.append(Target(model=entry, adapter=adapter_for(catalog.providers[entry.provider])))
    if not targets:
        if refused_residency:
            raise ApiError(
                403,
                f"The model '{requested}' is hosted outside {key.residency}, which this API key requires.",
                param="model",
                code="residency_violation",
            )
        noun = "embedding model" if kind == "embedding" else "model"
        raise ApiError(404, f"The {noun} '{requested}' does not exist or is not available.", param="model", code="model_not_found")
    return RoutePlan(requested=requested, targets=targets, rule=rule)


async def run_with_fallback(plan: RoutePlan, call: Callable[[Target], Awaitable]):
    """Try each target in order; fall back on retryable failures. Returns (result, target)."""
    last: ProviderError | None = None
    for target in plan.targets:
        for attempt in range(plan.retries + 1):
            plan.attempts.append(target.label)
            try:
                remaining = plan.deadline - time.monotonic() if plan.deadline else None
                if remaining is not None and remaining <= 0:
                    raise ProviderError("the request's deadline passed", status=504, retryable=False, kind="timeout")
                timeout = min(filter(None, (target.timeout, remaining)), default=None)
                coro = call(target)
                result = await (asyncio.wait_for(coro, timeout) if timeout else coro)
                return result, target
            except asyncio.TimeoutError:
                last = ProviderError(f"{target.label}: no answer within {timeout:.1f}s", status=504, retryable=True, kind="timeout")
            except ProviderError as exc:
                last = exc
                if not exc.retryable:
                    raise
            if attempt < plan.retries:
                await asyncio.sleep(min(0.1 * 2**attempt, 2.0))
    raise last
