"""From a requested model name to an ordered list of targets, and running them with fallbacks.

Precedence: enabled rules by priority (matched against the requested name and the request's
traits) → operator aliases → an explicit `provider/model`. Key restrictions (allowed models,
by access.may_use) and residency apply on every path. The router is the only place that tries
again (adapters make one attempt each): retries per target with exponential backoff and jitter, fallback on
the failure classes the rule names, one deadline for the whole request, and a context-window
fallback to a larger model. What each failure class allows is failures.POLICY's to say.
"""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tenacity import wait_exponential_jitter

from apps.common import tracing
from apps.common.errors import ApiError
from apps.common.metrics import FALLBACKS, RETRIES
from apps.keys.selectors import KeyInfo
from apps.providers.adapters.base import LocalWait, ProviderAdapter, ProviderError, local_wait

from . import state
from .access import in_residency, may_use
from .catalog import Catalog, ModelEntry
from .failures import DEFAULT_FALLBACK_ON, POLICY, FailureClass, classify
from .rules import RequestContext, Rule

MAX_RETRY_WAIT = 2.0  # seconds; a longer Retry-After sends the request to the next target instead
backoff = wait_exponential_jitter(initial=0.1, max=MAX_RETRY_WAIT, jitter=0.1)


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
    fallback_on: frozenset = DEFAULT_FALLBACK_ON
    deadline: float | None = None  # monotonic time by which the whole request must finish
    cache_ttl: int | None = None
    context_fallback: bool = True
    prompt_tokens: int = 0
    attempts: list[str] = field(default_factory=list)  # the label of every attempt made, in order
    # Every failed attempt: (its index in `attempts`, target, ProviderError), billed by the caller on a
    # usage row of its own whatever the final outcome; the error's `spent` is what it still cost (an
    # n > 1 fan-out whose siblings answered before one failed).
    failed: list = field(default_factory=list)
    upstream_seconds: float | None = None  # the successful call's time with the provider (a stream: to its first event)
    policies: tuple = ()  # the matched rule's personal-data policy (apps.privacy applies it per attempt)

    def header(self, target: Target) -> str:
        return f"{self.rule or 'direct'};{target.label}"


@dataclass(slots=True)
class Why:
    """What plan_route decided and why, for the rule tester (apps/routing/selectors.py). Only a tester
    passes one: /v1 plans without it, so the reasons cost a request nothing."""

    rules: list = field(default_factory=list)  # (rule name, "matched" or why it did not)
    targets: list = field(default_factory=list)  # (target, why it was skipped or moved last)
    need_tokens: int = 0


def plan_route(catalog: Catalog, requested: str, key: KeyInfo, *, kind: str = "chat", ctx: RequestContext | None = None,
               why: Why | None = None) -> RoutePlan:
    """The targets for `requested`, best first; ApiError(403/404/503) when there are none.

    why: filled with the reasons behind the plan (the rule tester's; never on /v1)."""
    ctx = ctx or RequestContext(model=requested, key_prefix=key.prefix, organisation_id=key.organisation_id)
    if kind != "chat":
        rule = None
    elif why is None:
        rule = next((r for r in catalog.rules if r.matches(ctx)), None)
    else:
        rule = _match_explained(catalog.rules, ctx, why)
    if rule is not None:
        specs = [(t.model, t.weight, t.timeout) for t in rule.targets]
        plan = RoutePlan(requested=requested, targets=[], rule=rule.name, retries=rule.retries, fallback_on=rule.fallback_on,
                         cache_ttl=rule.cache_ttl, context_fallback=rule.context_fallback, prompt_tokens=ctx.prompt_tokens,
                         policies=rule.policies)
        if rule.deadline:
            plan.deadline = time.monotonic() + rule.deadline
    elif requested in catalog.aliases:
        specs = [(catalog.aliases[requested], 1.0, None)]
        plan = RoutePlan(requested=requested, targets=[], rule=f"alias:{requested}", prompt_tokens=ctx.prompt_tokens)
    else:
        specs = [(requested, 1.0, None)]
        plan = RoutePlan(requested=requested, targets=[], prompt_tokens=ctx.prompt_tokens)

    # The name that may grant targets is the rule that matched (not whatever the client asked for:
    # tags or a catch-all can route an allowed alias's name to another rule), else the requested name.
    grant = rule.name if rule is not None else requested
    allowed = []
    for spec in specs:
        if may_use(key, grant, spec[0], catalog.models):
            allowed.append(spec)
        elif why is not None:
            why.targets.append((spec[0], "access: the key's allowed models exclude it"))
    if not allowed:
        raise ApiError(403, f"This API key may not use the model '{requested}'.", param="model", code="model_not_allowed")

    candidates, weights, refused_residency = [], [], False
    for public_id, weight, timeout in allowed:
        entry = catalog.models.get(public_id)
        if entry is None or entry.kind != kind:
            if why is not None:
                why.targets.append((public_id, "disabled or unknown (no enabled model of an enabled provider)"
                                    if entry is None else f"a {entry.kind} model, not {kind}"))
            continue
        if not in_residency(key, entry.jurisdiction) or (rule and rule.residency and entry.jurisdiction != rule.residency):
            refused_residency = True
            if why is not None:
                where = key.residency if not in_residency(key, entry.jurisdiction) else rule.residency
                why.targets.append((public_id, f"residency: hosted in {entry.jurisdiction or '?'}, the request needs {where}"))
            continue
        candidates.append(Target(model=entry, adapter=catalog.adapter(entry.provider), timeout=timeout))
        weights.append(weight)
    if not candidates:
        if refused_residency:
            where = key.residency or rule.residency
            raise ApiError(403, f"No target for '{requested}' is hosted in {where}, which this request requires.",
                           param="model", code="residency_violation")
        noun = "embedding model" if kind == "embedding" else "model"
        raise ApiError(404, f"The {noun} '{requested}' does not exist or is not available.", param="model", code="model_not_found")

    ordered = _order(rule, candidates, weights)
    if why is None:
        healthy = [t for t in ordered if state.available(t.label, t.model.provider)]
    else:
        healthy = []
        for t in ordered:
            reason = state.why_unavailable(t.label, t.model.provider)
            if reason:
                why.targets.append((t.label, reason))
            else:
                healthy.append(t)
    if not healthy:
        raise ApiError(503, f"Every target for '{requested}' is unavailable (circuit open or failing health checks); "
                            "retry shortly.", code="no_healthy_target", headers={"retry-after": str(int(state.COOLDOWN))})
    plan.targets = _fit_context(healthy, ctx) if plan.context_fallback else healthy
    if why is not None:
        why.need_tokens = ctx.prompt_tokens + ctx.max_tokens
        small = [t for t in plan.targets if t.model.context_window and t.model.context_window < why.need_tokens]
        where = "tried after those that fit" if plan.context_fallback and len(small) < len(plan.targets) else "tried anyway"
        for t in small:
            why.targets.append((t.label, f"context window: {t.model.context_window} tokens < {why.need_tokens} needed, {where}"))
    return plan


def _match_explained(rules, ctx: RequestContext, why: Why) -> Rule | None:
    """The rule plan_route takes (the first that matches), noting why each rule before it did not match
    and that those after it were not reached."""
    found = None
    for rule in rules:
        if found is not None:
            why.rules.append((rule.name, f"not reached: {found.name} matched first"))
            continue
        reason = rule.mismatch(ctx)
        if reason:
            why.rules.append((rule.name, rule.describe_mismatch(reason, ctx)))
        else:
            found = rule
            why.rules.append((rule.name, "matched"))
    return found


def _order(rule: Rule | None, targets: list[Target], weights: list[float]) -> list[Target]:
    """The strategy picks the first target; the others stay behind it as fallbacks."""
    strategy = rule.strategy if rule else "fallback"
    if len(targets) == 1 or strategy == "fallback":
        return targets
    if strategy == "weighted":
        if sum(weights) <= 0:
            return targets
        first = random.choices(range(len(targets)), weights=weights)[0]  # nosec B311 # load spreading, no secret
        return [targets[first]] + targets[:first] + targets[first + 1:]
    if strategy == "round_robin":
        shift = state.next_round_robin(rule.name) % len(targets)
        return targets[shift:] + targets[:shift]
    if strategy == "latency":
        # Unmeasured targets go first, so every target gets measured.
        known = [state.state(t.label).latency for t in targets]
        keys = [x if x is not None else -1.0 for x in known]
        return [t for _, _, t in sorted(zip(keys, range(len(targets)), targets, strict=True))]
    if strategy == "least_busy":
        return sorted(targets, key=lambda t: state.state(t.label).in_flight)
    if strategy == "cheapest":
        return sorted(targets, key=lambda t: t.model.input_price + t.model.output_price)
    return targets


def _fit_context(targets: list[Target], ctx: RequestContext) -> list[Target]:
    """Targets whose known context window holds the prompt go first; too-small ones last."""
    need = ctx.prompt_tokens + ctx.max_tokens
    if not need or all(not t.model.context_window or t.model.context_window >= need for t in targets):
        return targets
    fits = [t for t in targets if not t.model.context_window or t.model.context_window >= need]
    return fits + [t for t in targets if t.model.context_window and t.model.context_window < need] if fits else targets


async def run_with_fallback(plan: RoutePlan, call: Callable[[Target], Awaitable], *, verdict_later: bool = False):
    """Try the plan's targets; returns (result, target) or raises the last ProviderError.

    verdict_later: a stream's success is known only at its end; the caller records it."""
    last: ProviderError | None = None
    skip_below_context: int | None = None
    for target in plan.targets:
        window = target.model.context_window
        if skip_below_context is not None and window is not None and window <= skip_below_context:
            continue  # a context-length failure: only larger models are worth trying
        if not state.reserve_probe(target.label):
            continue  # half-open and another request is probing it
        if last is not None:  # the previous target failed: this is a fallback
            FALLBACKS.labels(last.target.model.provider, classify(last).value).inc()
        for attempt in range(plan.retries + 1):
            st = state.state(target.label)
            timeout = _timeout(plan, target)
            if timeout is not None and timeout <= 0:
                raise last or _deadline_passed(target)
            plan.attempts.append(target.label)
            started = time.monotonic()
            wait = LocalWait()
            token = local_wait.set(wait)
            span = tracing.start_attempt(target.model.provider, target.model.name, len(plan.attempts) - 1) \
                if tracing.tracer is not None else None
            failure = "cancelled"
            try:
                st.in_flight += 1
                try:
                    coro = call(target)
                    result = await (asyncio.wait_for(coro, timeout) if timeout else coro)
                    failure = ""
                except ProviderError as exc:
                    failure = exc.kind
                    raise
                except TimeoutError:
                    failure = "timeout"
                    raise
                finally:
                    st.in_flight -= 1
                    local_wait.reset(token)
                    if span is not None:
                        tracing.end_attempt(span, failure)
                plan.upstream_seconds = time.monotonic() - started
                if not verdict_later:
                    state.record_success(target.label, plan.upstream_seconds)
                return result, target
            except TimeoutError as exc:
                if wait.waiting:  # the time went waiting for one of our own concurrency slots
                    last = ProviderError(f"{target.label}: no local concurrency slot within {timeout:.1f}s", status=429,
                                         kind="concurrency")
                else:
                    last = ProviderError(f"{target.label}: no answer within {timeout:.1f}s", status=504, kind="timeout")
                # What the cancelled call had already been charged (n > 1 siblings that answered) rides
                # on the cancellation that asyncio.wait_for turned into this TimeoutError.
                last.spent = getattr(exc.__cause__, "spent", None)
            except ProviderError as exc:
                last = exc
            except BaseException:
                # Cancelled (the client left, a WebSocket `cancel`, shutdown) or our own bug: nothing
                # was learnt about the provider, so a half-open probe goes back to the next request.
                state.release_probe(target.label)
                raise
            plan.failed.append((len(plan.attempts) - 1, target, last))
            last.target = target  # so the error is billed and counted against the target that failed
            klass = classify(last)
            policy = POLICY[klass]
            if policy.counts:
                state.record_failure(target.label)
            else:
                state.release_probe(target.label)
            if klass is FailureClass.CLIENT and last.kind == "context_length" and plan.context_fallback:
                skip_below_context = window or 0
                break  # a larger model may take it; this one never will
            if not policy.fall_back or klass not in plan.fallback_on or (plan.deadline and time.monotonic() >= plan.deadline):
                raise last
            if not policy.retry:
                break
            if attempt < plan.retries:
                pause = backoff(_RetryState(attempt + 1))
                if last.retry_after is not None:
                    if last.retry_after > MAX_RETRY_WAIT:
                        break  # the target asks for a long pause: another target serves sooner
                    pause = last.retry_after
                if plan.deadline and time.monotonic() + pause >= plan.deadline:
                    break
                RETRIES.labels(target.model.provider).inc()
                await asyncio.sleep(pause)
    if last is None:
        if skip_below_context is None:
            raise ProviderError(f"every target of '{plan.requested}' is being probed after failures; retry shortly",
                                status=503, kind="unavailable")
        raise ProviderError(f"no target of '{plan.requested}' could take this request", status=400, kind="context_length")
    raise last


def failed_target(plan: RoutePlan, exc: ProviderError) -> Target:
    """The target whose failure the client sees (the first one when none was called)."""
    return getattr(exc, "target", None) or plan.targets[0]


def _timeout(plan: RoutePlan, target: Target) -> float | None:
    """The time this attempt may take (≤ 0 once the request's deadline passed), None for no limit."""
    limits = [t for t in (target.timeout,) if t]
    if plan.deadline:
        limits.append(plan.deadline - time.monotonic())
    return min(limits) if limits else None


def _deadline_passed(target: Target) -> ProviderError:
    """Nobody's failure: the time went to earlier attempts, so it counts against no breaker."""
    error = ProviderError("the request's deadline passed", status=504, kind="timeout")
    error.target = target
    return error


class _RetryState:
    """The one attribute tenacity's wait strategies read."""

    __slots__ = ("attempt_number",)

    def __init__(self, attempt_number: int):
        self.attempt_number = attempt_number
