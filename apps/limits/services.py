"""Admission for /v1: which limits apply to a request, one decision before the upstream call, and
settling after it.

`admit` finds the request's scopes (its key, the key's organisation, the model), and when none has a
limit returns None at once: no Redis call. Otherwise the request joins the process's next admission
batch: one EVALSHA decides every request waiting (apps/limits/limiter.py), each atomically — one
round trip for the request, one command for many under load, and never more than one admission
command in flight per process. Without REDIS_URL the in-process limiter decides. `Admission.settle`
runs on every path (a `finally` in the handler): the token counters move from the reservation to the
tokens billed (accounting.record_usage adds them up), the concurrency lease is given back. Settles
go out with the process's next call (its sender sends whatever waits, settles and admissions, in one
EVALSHA), never on a request's path. Leases still held are renewed by apps.common.leases.

Budgets (a key's, an organisation's monthly roubles) ride in the same call: the request reserves its
upper-bound cost — its token reservation priced at the highest input and output prices among its
route's targets (a fallback may cost more than the first choice), VAT included, in whole micro-roubles —
and settles to the cost its usage records carry. Over budget: 429 `insufficient_quota`, as OpenAI answers an
exhausted quota (its error-codes guide; LiteLLM's max-budget limiter also answers 429). A budget
counter lives in Redis for its month; when it is missing (the month is new, or Redis lost its data) the
script refuses with SEED and the counter is seeded from the database's month-to-date spend (usage rows,
`SET NX`, so the first seed of all processes wins), then the request is decided again. What the
seed misses: usage not yet written by the usage writer (seconds of traffic) and requests in flight during
a Redis restart. The database unreachable at that moment answers 503: money is not admitted blind.

Redis unreachable (an error, or no answer within XROUTER_LIMITS_TIMEOUT): XROUTER_LIMITS_FAIL=open
admits through an in-process limiter with every limit divided by XROUTER_EXPECTED_REPLICAS, closed
answers 503; either way Redis is not asked again for DOWN_PAUSE seconds, so no request waits on it.

A scope Redis refused on its request rate stays shut in this process until the refusal's retry time
(`_shut`): while it is, requests through it are refused here, without the round trip. That refuses only what
Redis would refuse too (or would have, before a restart that lost its counts) — a window's count of requests
only falls as its buckets age out, and the retry time is when enough of them will have — so a tenant flooding
far past its limit costs Redis nothing and the other tenants' admissions little (the battery's isolation
figure, bench/chaos/isolation.py).
"""

import asyncio
import datetime
import logging
import os
import time
from decimal import ROUND_CEILING, Decimal
from zoneinfo import ZoneInfo

from asgiref.sync import sync_to_async
from django.conf import settings

from apps.common import leases
from apps.common import redis as shared_redis
from apps.common.errors import ApiError
from apps.common.metrics import LIMIT_REFUSALS
from apps.common.rates import Limits
from apps.usage.pricing import cost_of

from .limiter import (
    CALENDAR,
    LEASE_MS,
    LIMITS,
    MONTH_TTL,
    NEVER,
    SEED,
    Decision,
    LocalLimiter,
    Scope,
    admit_args,
    parse_replies,
    settle_args,
)

log = logging.getLogger(__name__)
DOWN_PAUSE = 1.0  # after a failed admission call, Redis is not asked again for this long
MAX_SCOPES = 100_000  # built scopes kept (one per limited key, organisation and model)
SETTLE_DELAY = 0.005  # seconds a settle may wait to ride with an admission call
MAX_BATCH = 500  # admissions, and settles, per call: a script run stays short for Redis's other clients

_local = LocalLimiter()  # without REDIS_URL
_fallback = LocalLimiter(settings.XROUTER["EXPECTED_REPLICAS"])  # Redis unreachable, failing open
_REDIS = None  # Admission.backend for admissions Redis made
_scopes: dict = {}
_down_until = 0.0
_admits: list[tuple] = []  # (scopes, member, tokens, day, future) waiting for the sender
_pending: list["Admission"] = []  # settles waiting for the sender
_sender: asyncio.Task | None = None  # sends what waits (settles, admissions) in one call at a time
_settle_timer: tuple | None = None  # (loop, TimerHandle) while settles wait for a ride
MAX_SHUT = 10_000  # scopes remembered as shut
_shut: dict[bytes, float] = {}  # Scope.args[0] → the monotonic time it opens
_leased: dict[str, "Admission"] = {}  # in-process admissions holding concurrency leases, by member
_renewer: asyncio.Task | None = None


class Admission:
    """One admitted request: what it reserved, what it used (added up as usage is recorded) and how
    to give back the difference. `headers` are the x-ratelimit-* of its answer."""

    __slots__ = ("backend", "scopes", "member", "reserved", "used", "cost", "spent", "at", "day", "headers", "leased",
                 "settled", "credential", "model_id", "more")

    def __init__(self, backend, scopes, member, reserved, at, day, headers, leased, cost=None, credential="",
                 model_id=""):
        self.backend, self.scopes, self.member, self.reserved = backend, scopes, member, reserved
        self.at, self.day, self.headers, self.leased = at, day, headers, leased
        self.cost = cost  # micro-roubles reserved; None: no budget applies
        self.credential = credential  # the lease set of the first target's credential it holds a place in ('')
        self.model_id = model_id  # a fallback target's admission (admit_model): counts that model's usage only
        self.more: list[Admission] = []  # the fallback targets' admissions of the same request
        self.used = self.spent = 0
        self.settled = False

    def add(self, usage, model) -> None:
        """An attempt's billed usage (accounting.record_usage): tokens, and its cost when a budget applies."""
        for other in self.more:
            other.add(usage, model)
        if self.model_id and (model is None or model.public_id != self.model_id):
            return
        self.used += usage.prompt_tokens + usage.completion_tokens
        if self.cost is not None and model is not None:
            self.spent += micro_cost(usage, model)

    def admitted(self, model_id: str) -> bool:
        return self.model_id == model_id or any(other.model_id == model_id for other in self.more)

    def settle(self) -> None:
        """Once, on every path (success, error, disconnect, cancellation): tokens to what was used, lease back."""
        for other in self.more:
            other.settle()
        if self.settled:
            return
        self.settled = True
        delta = self.used - self.reserved
        if not (self.leased or delta or self.cost_delta or self.credential):
            return
        if self.backend is _REDIS:
            for lease_key in self.lease_keys():
                leases.drop(lease_key, self.member)
            if self.credential:
                leases.ungrant(self.credential, self.member)
            _pending.append(self)
            _settle_soon()
        else:
            _leased.pop(self.member, None)
            self.backend.settle(self.scopes, self.member, delta, self.at, self.day, self.cost_delta)

    @property
    def cost_delta(self) -> int:
        return self.spent - self.cost if self.cost is not None else 0

    def lease_keys(self) -> list[str]:
        return [s.prefix + ":c" for s in self.scopes if s.limits.concurrent]


def _scope(kind: str, ident, label: str, limits) -> Scope:
    found = _scopes.get((kind, ident, limits))
    if found is None:
        if len(_scopes) >= MAX_SCOPES:
            _scopes.clear()
        found = _scopes[(kind, ident, limits)] = Scope.build(
            f"{settings.XROUTER['REDIS_NAMESPACE']}:lim:{kind}:{ident}", label, limits, (kind, ident))
    return found


def scopes_for(key, model) -> tuple:
    """The limited scopes of a request by `key` to `model` (a catalog ModelEntry or None)."""
    scopes = ()
    if key.limits is not None:
        scopes += (_scope("k", key.limit_id or key.id, f"API key xr-{key.prefix}", key.limits),)
    if key.organisation_limits is not None and key.organisation_id:
        scopes += (_scope("o", key.organisation_id, "your organisation", key.organisation_limits),)
    return scopes + model_scopes(key, model) if model is not None else scopes


def model_scopes(key, model) -> tuple:
    """The limits on one model: its cap across all tenants, and the key's own on it (per key and model)."""
    scopes = ()
    if model.limits is not None:
        scopes += (_scope("m", model.public_id, f"model {model.public_id}", model.limits),)
    for public_id, limits in key.model_limits:
        if public_id == model.public_id:
            scopes += (_scope("km", f"{key.limit_id or key.id}:{public_id}", f"API key xr-{key.prefix} on model {public_id}", limits),)
    return scopes


async def admit(key, plan, member: str, reserve) -> Admission | None:
    """Admit one request, or raise ApiError 429 (limits, budgets) / 503 (Redis unreachable, failing closed).

    plan: the request's route (apps.routing.router.Plan: its targets' models, the first called first;
    None: no model). reserve: a function
    returning the request's upper bound as (prompt tokens, answer tokens), called only when a token
    limit or a budget applies. None when no limit applies (nothing to settle)."""
    scopes = scopes_for(key, plan.targets[0].model if plan is not None else None)
    if not scopes:
        return None
    tokens, cost = 0, None
    if any(s.limits.limits_tokens for s in scopes):
        prompt, answer = reserve()
        tokens = prompt + answer
        if any(s.limits.budget is not None for s in scopes):
            cost = upper_cost(prompt, answer, [t.model for t in plan.targets] if plan is not None else [])
    day = calendar()
    lease = _lease_of(plan)
    for _ in range(len(scopes) + 1):  # each budget counter needs seeding at most once
        backend, decision = await _decide(scopes, member, tokens, day, cost or 0, lease)
        if decision.admitted or decision.kind != SEED:
            break
        await _seed(backend, scopes[decision.scope], day)
    headers = _headers(decision)
    if not decision.admitted:
        raise _refusal(scopes[decision.scope], decision, tokens, headers, cost)
    leased = any(s.limits.concurrent for s in scopes)
    credential = lease[0] if decision.leased else ""
    admission = Admission(backend, scopes, member, tokens, decision.at, day, headers, leased, cost, credential)
    if credential:
        leases.grant(credential, member)
    if leased and backend is _REDIS:
        for lease_key in admission.lease_keys():
            leases.hold(lease_key, member)
    elif leased:
        _leased[member] = admission
        _start_renewer()
    return admission


async def admit_model(key, model, member: str, reserve) -> "Admission | None":
    """A fallback target's limits on its model (its cap across tenants, the key's own on it), decided when
    the router turns to it: `admit` decided the first target's before the call. None when none applies;
    a refusal raises ApiError 429 as `admit` does (the gateway makes it a `capacity` failure: the router
    goes on to the next target and no breaker counts it). `member` is the request's id and the model's,
    so the request's own concurrency leases stay apart."""
    scopes = model_scopes(key, model)
    if not scopes:
        return None
    tokens = sum(reserve()) if any(s.limits.limits_tokens for s in scopes) else 0
    day = calendar()
    backend, decision = await _decide(scopes, member, tokens, day, 0)
    headers = _headers(decision)
    if not decision.admitted:
        raise _refusal(scopes[decision.scope], decision, tokens, headers, None)
    leased = any(s.limits.concurrent for s in scopes)
    admission = Admission(backend, scopes, member, tokens, decision.at, day, headers, leased, model_id=model.public_id)
    if leased and backend is _REDIS:
        for lease_key in admission.lease_keys():
            leases.hold(lease_key, member)
    elif leased:
        _leased[member] = admission
        _start_renewer()
    return admission


async def take_call(key: str, rate) -> float:
    """One call from a shared rate that is not a tenant's (a provider account's, apps/providers/adapters):
    0 when taken, else the seconds until room frees up (nothing taken). The same script and windows as
    admission; with Redis unreachable, as the limits fail (XROUTER_LIMITS_FAIL: open = this process's share,
    closed = ApiError 503)."""
    scope = _scope("c", key, f"provider account {key}", Limits(requests=rate))
    member = os.urandom(6).hex()
    _, decision = await _decide((scope,), member, 0, calendar(), 0)
    if decision.admitted:
        return 0.0
    return (decision.retry_ms if decision.retry_ms > 0 else rate.seconds * 1000) / 1000  # < 0: a rate of 0


class _Unreachable(Exception):
    """Redis did not decide (down, refusing, or slower than XROUTER_LIMITS_TIMEOUT)."""


def shut_refusal(scopes, now: float) -> Decision | None:
    """The refusal for a request through a scope still shut (`_shut`), as Redis would have decided it (if another
    of its scopes would refuse it too, Redis might have named that one: a budget, a request too large); None when
    none is. No token headers: the refusal that shut the scope was another request's, perhaps another tenant's."""
    for i, scope in enumerate(scopes):
        opens = _shut.get(scope.args[0])
        if opens is None:
            continue
        if now >= opens:
            _shut.pop(scope.args[0], None)
            continue
        retry_ms = max(1, int((opens - now) * 1000) + 1)
        limit = scope.numbers[0]
        return Decision(False, scope=i, kind="requests", retry_ms=retry_ms, limit=limit, requests=(limit, 0, retry_ms))
    return None


def shut(scopes, decision: Decision, asked: float) -> None:
    """Remember a scope Redis refused on its request rate until the refusal's retry time, counted from
    `asked` (when the call left: the script's clock was read later) less the millisecond the script's clock
    rounds away, so this never outlasts Redis's own answer. (Both clocks are assumed to run alike: a step of
    Redis's wall clock is not seen here.)"""
    if decision.kind != "requests" or decision.retry_ms <= 1:
        return
    if len(_shut) >= MAX_SHUT:  # forgetting only costs the round trips it saved (no scan per insert when full)
        _shut.clear()
    _shut[scopes[decision.scope].args[0]] = asked + (decision.retry_ms - 1) / 1000


def _lease_of(plan) -> tuple:
    """The first target's capped credential (lease set, limit), or ("", 0)."""
    if plan is None or not plan.targets:
        return NO_LEASE
    slot = getattr(plan.targets[0], "adapter", None)
    found = slot.lease_slot() if slot is not None else None
    return found or NO_LEASE


NO_LEASE = ("", 0)


async def _decide(scopes, member, tokens, day, cost, lease=NO_LEASE):
    client = shared_redis.client()
    if client is None:
        return _local, _local.admit(scopes, member, tokens, day, cost=cost)
    if _shut:
        refused = shut_refusal(scopes, time.monotonic())
        if refused is not None:
            return _REDIS, refused
    if time.monotonic() >= _down_until:
        future = asyncio.get_running_loop().create_future()
        _admits.append((scopes, member, tokens, cost, lease, day, future))
        _start_sender()
        try:
            return _REDIS, await future
        except _Unreachable:
            pass
    if settings.XROUTER["LIMITS_FAIL"] == "closed":
        raise ApiError(503, "Rate limits cannot be checked right now (the limiter is unreachable); retry shortly.",
                       code="service_unavailable", headers={"retry-after": "1"})
    return _fallback, _fallback.admit(scopes, member, tokens, day, cost=cost)


# --- budgets: prices, and seeding a month's counter from the database ---
MILLION = Decimal(1_000_000)
THOUSAND = Decimal(1000)


def upper_cost(prompt: int, answer: int, models) -> int:
    """Micro-roubles a request may cost at most: its tokens at the highest prices of its targets
    (catalog prices: roubles per 1,000 tokens, VAT included, the ones in effect now), rounded up."""
    input_price = max((m.input_price for m in models), default=0)
    output_price = max((m.output_price for m in models), default=0)
    return int(((prompt * input_price + answer * output_price) * THOUSAND).to_integral_value(ROUND_CEILING))


def micro_cost(usage, model) -> int:
    """What a usage record of this usage costs (apps.usage.pricing.cost_of), in micro-roubles."""
    return int(cost_of({"prompt_tokens": usage.prompt_tokens, "cached_tokens": usage.cached_tokens,
                        "completion_tokens": usage.completion_tokens, "input_price": model.input_price,
                        "output_price": model.output_price, "cached_input_price": model.cached_input_price})
               * MILLION)


async def _seed(backend, scope: Scope, day: str) -> None:
    """Seed a budget counter with the month-to-date spend of its key or organisation (the usage rows)."""
    month = day[:6]
    try:
        spent = await sync_to_async(_spend_in_worker, thread_sensitive=False)(scope.owner, month)
    except Exception as exc:
        log.warning("budget: the month-to-date spend of %s could not be read (%s)", scope.label, type(exc).__name__)
        raise ApiError(503, "Budgets cannot be checked right now (the database is unreachable); retry shortly.",
                       code="service_unavailable", headers={"retry-after": "5"}) from None
    if backend is _REDIS:
        try:
            async with asyncio.timeout(settings.XROUTER["LIMITS_TIMEOUT"]):
                await shared_redis.client().set(f"{scope.budget_key}:{month}", spent, nx=True, ex=MONTH_TTL)
        except Exception as exc:
            log.warning("budget: the counter of %s could not be seeded (%s)", scope.label, type(exc).__name__)
            raise ApiError(503, "Budgets cannot be checked right now; retry shortly.", code="service_unavailable",
                           headers={"retry-after": "1"}) from None
    else:
        backend.seed(scope.budget_key, month, spent)


def _spend_in_worker(owner: tuple, month: str) -> int:
    from django.db import connections

    try:
        return month_to_date_spend(owner, month)
    finally:
        connections.close_all()  # this worker thread's own: a gateway holds no idle database connection


def month_to_date_spend(owner: tuple, month: str) -> int:
    """Micro-roubles billed this calendar month (TIME_ZONE) to an API key ("k", id) or organisation ("o", id)."""
    from django.db.models import Q, Sum

    from apps.usage.models import UsageRecord

    kind, ident = owner
    start = datetime.datetime(int(month[:4]), int(month[4:]), 1, tzinfo=ZoneInfo(settings.TIME_ZONE))
    rows = UsageRecord.objects.filter(created_at__gte=start)
    if kind == "k":  # the key and its rotated siblings (apps.keys: `lineage`)
        from apps.keys.models import ApiKey

        rows = rows.filter(api_key_id__in=ApiKey.objects.filter(Q(id=ident) | Q(lineage=ident)).values("id"))
    else:
        rows = rows.filter(organisation_id=ident)
    total = rows.aggregate(total=Sum("cost"))["total"] or Decimal(0)
    return int((total * MILLION).to_integral_value(ROUND_CEILING))


def _settle_soon() -> None:
    """Settles wait up to SETTLE_DELAY for an admission call to ride with (under load there is always
    one), then go on their own."""
    global _settle_timer
    loop = asyncio.get_running_loop()
    if _sender is not None and not _sender.done() and _sender.get_loop() is loop:
        return  # it takes them with its next call
    if _settle_timer is None or _settle_timer[0] is not loop:
        _settle_timer = (loop, loop.call_later(SETTLE_DELAY, _settle_due))


def _settle_due() -> None:
    global _settle_timer
    _settle_timer = None
    if _pending:
        _start_sender()


def _start_sender() -> None:
    global _sender
    loop = asyncio.get_running_loop()
    if _sender is None or _sender.done() or _sender.get_loop() is not loop:
        _sender = loop.create_task(_run_sender(), name="limits-sender")


async def _run_sender() -> None:
    """Send what waits as one batch; what arrived meanwhile goes in the next, until nothing waits."""
    while _admits or _pending:
        await _send_batch()


async def _send_batch() -> None:
    global _admits, _pending, _down_until
    if time.monotonic() < _down_until:  # what queued behind a failed call: not another wait on Redis
        for *_, future in _admits:
            if not future.done():
                future.set_exception(_Unreachable())
        _admits = []
    batch, _admits = _admits[:MAX_BATCH], _admits[MAX_BATCH:]
    settles, _pending = _pending[:MAX_BATCH], _pending[MAX_BATCH:]
    args = [batch[0][5] if batch else calendar(), LEASE_MS, len(settles)]
    for a in settles:
        args += settle_args(a.scopes, a.member, a.used - a.reserved, a.at, a.day, a.cost_delta, a.credential)
    for scopes, member, tokens, cost, lease, _, _ in batch:
        args += admit_args(scopes, member, tokens, cost, lease)
    asked = time.monotonic()
    try:
        async with asyncio.timeout(settings.XROUTER["LIMITS_TIMEOUT"]):
            decisions = parse_replies(await shared_redis.run_script(LIMITS, args))
    except Exception as exc:  # down, refusing, or slower than the timeout: the same for a request
        if settles:
            log.warning("rate limiter: %d settles could not reach Redis (%s); their leases expire within %d s",
                        len(settles), type(exc).__name__, LEASE_MS // 1000)
        if batch:
            if _down_until == 0.0 or time.monotonic() - _down_until > 60:
                log.warning("rate limiter: Redis unreachable (%s); failing %s for %.0f s at a time",
                            type(exc).__name__, settings.XROUTER["LIMITS_FAIL"], DOWN_PAUSE)
            _down_until = time.monotonic() + DOWN_PAUSE
            for *_, future in batch:
                if not future.done():
                    future.set_exception(_Unreachable())
        return
    for (scopes, member, tokens, cost, lease, day, future), decision in zip(batch, decisions, strict=True):
        if not decision.admitted:
            shut(scopes, decision, asked)
        if not future.done():
            future.set_result(decision)
        elif decision.admitted:  # its request was cancelled while waiting: give back what it took
            Admission(_REDIS, scopes, member, tokens, decision.at, day, {}, True, cost or None,
                      lease[0] if decision.leased else "").settle()


NAMES = {"requests": "requests per {period}", "tokens": "tokens per {period}", "concurrent": "concurrent requests",
         "day": "tokens per day", "month": "tokens per month"}


def _kind(scope: Scope) -> str:
    """The scope's kind for /metrics (bounded: never the key or the organisation itself)."""
    return KINDS.get(scope.owner[:1], "other")


KINDS = {("k",): "key", ("o",): "organisation", ("m",): "model", ("km",): "key_model"}


def _refusal(scope: Scope, decision, tokens: int, headers: dict, cost: int | None) -> ApiError:
    LIMIT_REFUSALS.labels(_kind(scope), decision.kind).inc()
    if decision.kind == SEED:  # still unseeded after seeding: Redis lost it again at once
        return ApiError(503, "Budgets cannot be checked right now; retry shortly.", code="service_unavailable",
                        headers={"retry-after": "1"})
    if decision.kind == "budget":
        renews = datetime.datetime.fromtimestamp(calendar_reset("month"), ZoneInfo(settings.TIME_ZONE))
        headers["retry-after"] = str(max(1, int(calendar_reset("month") - time.time())))
        return ApiError(429, f"The monthly budget of {scope.label} ({_roubles(decision.limit)} RUB, VAT included) "
                             f"does not cover this request (up to {_roubles(cost or 0)} RUB). It renews on "
                             f"{renews:%Y-%m-%d} ({settings.TIME_ZONE}); an administrator can raise it sooner.",
                        code="insufficient_quota", type_="insufficient_quota", headers=headers)
    limits = scope.limits
    rate = limits.requests if decision.kind == "requests" else limits.tokens
    what = NAMES[decision.kind].format(period=_period(rate.seconds) if rate else "")
    retry_ms = decision.retry_ms
    if retry_ms == CALENDAR:
        retry_ms = int((calendar_reset(decision.kind) - time.time()) * 1000)
    if retry_ms == NEVER:
        message = (f"Request too large for {scope.label} on {what}: limit {decision.limit}, requested {tokens}. "
                   "Send a shorter prompt or a smaller max_tokens.")
        retry_ms = rate.seconds * 1000 if rate else 60_000
    else:
        message = f"Rate limit reached for {scope.label} on {what}: limit {decision.limit}. Please try again in {_duration(retry_ms)}."
    headers["retry-after"] = str(max(1, -(-retry_ms // 1000)))
    return ApiError(429, message, code="rate_limit_exceeded", headers=headers)


def _roubles(micro: int) -> str:
    return f"{Decimal(micro) / MILLION:.2f}" if micro % 10_000 == 0 else f"{Decimal(micro) / MILLION:.6f}"


def _headers(decision) -> dict:
    headers = {}
    limit, remaining, reset = decision.requests
    if limit:
        headers["x-ratelimit-limit-requests"] = str(limit)
        headers["x-ratelimit-remaining-requests"] = str(remaining)
        headers["x-ratelimit-reset-requests"] = _duration(reset)
    limit, remaining, reset = decision.tokens
    if limit:
        headers["x-ratelimit-limit-tokens"] = str(limit)
        headers["x-ratelimit-remaining-tokens"] = str(remaining)
        headers["x-ratelimit-reset-tokens"] = _duration(reset)
    return headers


def _duration(ms: int) -> str:
    """OpenAI's spelling of a reset time: "20ms", "1s", "6m0s", "1h2m3s"."""
    if ms < 1000:
        return f"{max(0, ms)}ms"
    seconds = -(-ms // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{seconds}s"
    return f"{minutes}m{seconds}s" if minutes else f"{seconds}s"


def _period(seconds: int) -> str:
    return {1: "second", 60: "minute", 3600: "hour", 86400: "day"}.get(seconds, f"{seconds} seconds")


# --- the calendar (days and months of TIME_ZONE) ---
_calendar = (0.0, "", 0.0, 0.0)  # valid until (epoch), day, next day's start, next month's start


def calendar() -> str:
    """Today in TIME_ZONE ("20261129"; its first six characters name the month), recomputed once a day."""
    global _calendar
    now = time.time()
    if now >= _calendar[0]:
        zone = ZoneInfo(settings.TIME_ZONE)
        today = datetime.datetime.fromtimestamp(now, zone).date()
        tomorrow = datetime.datetime.combine(today + datetime.timedelta(days=1), datetime.time(), zone).timestamp()
        first = (today.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
        next_month = datetime.datetime.combine(first, datetime.time(), zone).timestamp()
        _calendar = (tomorrow, today.strftime("%Y%m%d"), tomorrow, next_month)
    return _calendar[1]


def calendar_reset(kind: str) -> float:
    calendar()
    return _calendar[2] if kind == "day" else _calendar[3]


# --- settling and renewing, off the request path ---
async def flush() -> None:
    """Send every queued settle (at shutdown). A batch Redis cannot take is dropped: its leases expire
    within LEASE_MS, its unused reservations stay counted (conservative) until their windows pass."""
    if _sender is not None and not _sender.done() and _sender.get_loop() is asyncio.get_running_loop():
        await asyncio.shield(_sender)
    while _pending and shared_redis.client() is not None:
        await _send_batch()


def _start_renewer() -> None:
    global _renewer
    loop = asyncio.get_running_loop()
    if _renewer is None or _renewer.done() or _renewer.get_loop() is not loop:
        _renewer = loop.create_task(_run_renewer(), name="limits-renewer")


async def _run_renewer() -> None:
    """Renew the in-process limiter's leases (Redis's are renewed by apps.common.leases)."""
    while _leased:
        await asyncio.sleep(leases.RENEW_EVERY)
        renew()


def renew() -> None:
    by_backend: dict = {}
    for admission in list(_leased.values()):
        pairs = by_backend.setdefault(id(admission.backend), (admission.backend, []))[1]
        pairs.extend((key, admission.member) for key in admission.lease_keys())
    for backend, pairs in by_backend.values():
        backend.renew(pairs)
