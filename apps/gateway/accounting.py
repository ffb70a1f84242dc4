"""What each request leaves behind: a usage record (queued, never written inline) and metrics."""

import time

from apps.providers.adapters.base import Usage
from apps.usage import buffer

from . import metrics


def estimate_tokens(text_chars: int) -> int:
    """A rough count for when the provider reports none (about 4 characters a token)."""
    return (text_chars + 3) // 4


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
) -> None:
    now = time.monotonic()
    usage = usage or Usage()
    if req.admission is not None and not cache_hit:
        req.admission.add(usage, model)  # what the limits and budgets settle to
    buffer.record(
        {
            # A failed attempt billed beside the request's own row gets an id of its own (`<id>.<n>`).
            "request_id": f"{req.request_id}.{attempt}" if attempt else req.request_id,
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
            "input_price": str(model.input_price) if model else "0",
            "output_price": str(model.output_price) if model else "0",
            "cached_input_price": str(model.cached_input_price) if model else "0",
            "latency_ms": round((now - req.started) * 1000, 3),
            "ttft_ms": round((ttft - req.started) * 1000, 3) if ttft else None,
            "status": status,
            "http_status": http_status,
            "error_type": error_type,
            "cache_hit": cache_hit,
            "ts": time.time(),
        }
    )
    provider = model.provider if model else ""
    metrics.REQUESTS.labels(endpoint, provider, str(http_status)).inc()
    metrics.LATENCY.labels(endpoint).observe(now - req.started)
