"""What each request leaves behind: a usage record per upstream attempt (queued, never written
inline) and metrics.

The durability contract (README, "Usage records and the durability contract"): `attempt_start`
appends the attempt's start record to this process's journal (apps/usage/journal.py: one os.write,
no fsync) before the adapter sends anything, and sets the id the provider receives in its request-id header, `<request id>.<attempt>`;
`record_usage` queues the attempt's end record, which carries every field (so the writer needs the
start only if this process dies first). Every started attempt ends exactly once: by record_usage,
or by `end_unfinished` on the request's way out (a cancellation).
"""

import time

from apps.common import tracing
from apps.common.errors import ApiError
from apps.limits import services as limits
from apps.providers.adapters.base import UPSTREAM_REQUEST_ID, ProviderError, Usage
from apps.routing.rules import estimate_tokens  # noqa: F401 (handlers and streaming take it from here; its home is the rules')
from apps.usage import buffer, journal

from . import metrics

CHAIN_MAX = 255  # UsageRecord.fallback_chain


class Attempt:
    """One upstream attempt of a request: what its end record needs from its start."""

    __slots__ = ("n", "ts", "started", "gen", "model", "chain", "prompt_tokens", "ended")

    def __init__(self, n: int, ts: float, started: float, gen, model, chain: str, prompt_tokens: int):
        self.n, self.ts, self.started, self.gen, self.model, self.chain = n, ts, started, gen, model, chain
        self.prompt_tokens = prompt_tokens
        self.ended = False


def attempt_start(req, key, plan, target, prompt_tokens: int, endpoint: str = "chat", stream: bool = False) -> None:
    """Before an attempt is sent: its start record, durable in the journal, and its upstream id.
    The router has just listed it in plan.attempts, so its number is that list's last index."""
    n = len(plan.attempts) - 1
    ts = time.time()
    model = target.model
    chain = ",".join(plan.attempts[:n])[:CHAIN_MAX] if n else ""
    gen = journal.start([
        req.request_id, n, ts, key.kind if key else "", key.id if key else None,
        key.id if key and key.kind == "key" else None, key.prefix if key else "", key.user_id if key else None,
        key.organisation_id if key else None, endpoint, model.provider, model.name, plan.requested[:200], plan.rule,
        stream, prompt_tokens, str(model.input_price), str(model.output_price), str(model.cached_input_price), chain,
    ])
    req.attempts.append(Attempt(n, ts, time.monotonic(), gen, model, chain, prompt_tokens))
    UPSTREAM_REQUEST_ID.set(f"{req.request_id}.{n}")


async def admit_target(req, key, plan, target, reserve) -> None:
    """Before a fallback target's attempt: its model's limits and the key's on it (apps.limits.admit_model),
    which the admission before the first call could not know it would need. A refusal is a `capacity`
    failure of this target (ProviderError kind "model_limit"): the router tries the next one."""
    model = target.model
    if model.public_id == plan.targets[0].model.public_id or (model.limits is None and not key.model_limits):
        return
    if req.admission is not None and req.admission.admitted(model.public_id):
        return  # a retry on the same target
    try:
        admission = await limits.admit_model(key, model, f"{req.request_id}:{model.public_id}", reserve)
    except ApiError as exc:
        if exc.status != 429:
            raise
        retry = exc.headers.get("retry-after")
        raise ProviderError(f"{target.label}: {exc.message}", status=429, kind="model_limit",
                            retry_after=float(retry) if retry else None) from None
    if admission is None:
        return
    if req.admission is None:
        req.admission = admission
    else:
        req.admission.more.append(admission)


def prompt_chars(body: dict) -> int:
    total = 0
    for message in body.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content)
    return total


def record_usage(
    req,
    key,
    *,
    endpoint: str,
    requested: str,
    model=None,
    route: str = "",
    usage: Usage | None = None,
    status: str = "ok",
    http_status: int = 200,
    stream: bool = False,
    ttft: float | None = None,
    error_type: str = "",
    provider_request_id: str = "",
    attempt: int = 0,
    cache_hit: bool = False,
    upstream_seconds: float | None = None,
    final: bool = True,
) -> None:
    """Queue the end record of attempt `attempt` (0 for a request that made none: a cache hit, or
    one refused before any upstream call). Its created_at is the attempt's start, as in its start record.
    `final`: the attempt whose outcome the client got; only it counts as a request in the metrics
    (every attempt's tokens and cost count)."""
    now = time.monotonic()
    usage = usage or Usage()
    if req.admission is not None and not cache_hit:
        req.admission.add(usage, model)  # what the limits and budgets settle to
    started, ts, chain = req.started, time.time(), ""
    made = next((a for a in req.attempts if a.n == attempt), None)  # a few at most
    if made is not None:
        started, ts, chain = made.started, made.ts, made.chain
        made.ended = True
        if made.gen is not None:
            made.gen.open -= 1
            made.gen = None
    buffer.record(
        {
            "request_id": req.request_id,
            "attempt": attempt,
            "fallback_chain": chain,
            "provider_request_id": provider_request_id or "",
            "api_key_id": key.id if key and key.kind == "key" else None,
            "principal": key.kind if key else "",
            "principal_id": key.id if key else None,
            "key_prefix": key.prefix if key else "",
            "user_id": key.user_id if key else None,
            "organisation_id": key.organisation_id if key else None,
            "endpoint": endpoint,
            "provider": model.provider if model else "",
            "model": model.name if model else "",
            "requested_model": requested,  # every field is cut to its column by buffer.record
            "route": route,
            "stream": stream,
            "prompt_tokens": usage.prompt_tokens,
            "completion_tokens": usage.completion_tokens,
            "cached_tokens": usage.cached_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
            "estimated": usage.estimated,
            "prompt_chars": getattr(req, "prompt_chars", 0),  # set by the handler that sized the prompt
            "input_price": str(model.input_price) if model else "0",
            "output_price": str(model.output_price) if model else "0",
            "cached_input_price": str(model.cached_input_price) if model else "0",
            "latency_ms": round((now - started) * 1000, 3),
            "ttft_ms": round((ttft - started) * 1000, 3) if ttft else None,
            "status": status,
            "http_status": http_status,
            "error_type": error_type,
            "cache_hit": cache_hit,
            "ts": ts,
        }
    )
    provider, name = (model.provider, model.name) if model else ("", "")
    if final and req.span is not None:
        tracing.describe(req.span, operation=endpoint, requested=requested, provider=provider, model=name, route=route,
                         usage=usage, http_status=http_status, status=status, stream=stream,
                         ttft_ms=round((ttft - req.started) * 1000, 3) if ttft else None, error_type=error_type)
    if final:
        metrics.REQUESTS.labels(endpoint, provider, name, route, str(http_status)).inc()
        metrics.LATENCY.labels(endpoint).observe(now - req.started)
        if metrics.REQUESTS_BY_KEY is not None and key is not None:
            metrics.REQUESTS_BY_KEY.labels(key.prefix, str(http_status)).inc()
    if cache_hit:
        metrics.CACHE_HITS.labels(endpoint).inc()
    elif model is not None:
        if usage.prompt_tokens:
            metrics.TOKENS.labels(provider, name, "in").inc(usage.prompt_tokens)
        if usage.completion_tokens:
            metrics.TOKENS.labels(provider, name, "out").inc(usage.completion_tokens)
        cost = (usage.prompt_tokens * float(model.input_price) + usage.completion_tokens * float(model.output_price)) / 1000
        if cost:
            metrics.COST.labels(provider, name).inc(cost)
    if ttft and final:
        metrics.TTFT.labels(provider).observe(ttft - req.started)
    if upstream_seconds is not None and status == "ok" and final:
        # The provider's share: the whole call, or for a stream the wait for its first event.
        metrics.OVERHEAD.observe(max(0.0, (ttft or now) - req.started - upstream_seconds))


# Failures after the provider had the request — it answered 2xx with a body we could not use, or we
# stopped waiting for its answer — not an error status of its own: it may charge for the attempt.
ACCEPTED_KINDS = frozenset({"timeout", "bad_response", "empty_stream", "malformed_stream", "stream_failed",
                            "stream_interrupted", "truncated"})


def failed_attempt_usage(req, n: int, error: ProviderError) -> Usage | None:
    """What failed attempt `n` cost: what the provider reported (`spent`), else for an attempt the
    provider had (ACCEPTED_KINDS) the prompt as estimated at its start, marked estimated, like a
    cancelled attempt (end_unfinished); else nothing."""
    spent = getattr(error, "spent", None)
    if spent is not None or error.provider_status is not None or error.kind not in ACCEPTED_KINDS:
        return spent
    made = next((a for a in req.attempts if a.n == n), None)
    return Usage(prompt_tokens=made.prompt_tokens, estimated=True) if made is not None else None


def bill_failed_attempts(req, key, plan, endpoint: str = "chat", stream: bool = False, last_final: bool = False) -> None:
    """A row for each failed attempt (at its own target's price, with what it still cost);
    `last_final`: the last one is what the client got (the request failed)."""
    for i, (n, target, error) in enumerate(plan.failed, start=1):
        record_usage(req, key, endpoint=endpoint, requested=plan.requested, model=target.model, route=plan.rule,
                     usage=failed_attempt_usage(req, n, error), status="error", http_status=error.status,
                     error_type=error.kind, attempt=n, stream=stream, final=last_final and i == len(plan.failed))


def bill_refusal(req, key, plan, exc, endpoint: str = "chat", stream: bool = False) -> None:
    """The rows of a request that failed: its failed attempts, or (none was made: every target
    probing, the deadline gone) one row for the refusal itself."""
    if plan.failed:
        bill_failed_attempts(req, key, plan, endpoint, stream, last_final=True)
        return
    target = getattr(exc, "target", None) or plan.targets[0]
    record_usage(req, key, endpoint=endpoint, requested=plan.requested, model=target.model, route=plan.rule,
                 status="error", http_status=exc.status, error_type=exc.kind, stream=stream)


def end_unfinished(req, key, plan, status: str = "cancelled", endpoint: str = "chat", stream: bool = False) -> None:
    """On the request's way out: every attempt started and not yet ended (the request was
    cancelled mid-call) gets its end record, the prompt estimated as at its start."""
    for made in req.attempts:
        if not made.ended:
            record_usage(req, key, endpoint=endpoint, requested=plan.requested, model=made.model, route=plan.rule,
                         usage=Usage(prompt_tokens=made.prompt_tokens, estimated=True), status=status,
                         attempt=made.n, stream=stream)
