"""The /v1 endpoints. Each coordinates: authenticate, validate, route, call, answer, account.
Rules live in routing, translation in the adapters, bookkeeping in accounting."""

import base64
import hashlib
import struct
import time
import uuid

from apps.common.errors import ApiError, from_provider_error
from apps.limits import services as limits
from apps.limits.estimate import chat_reservation, embeddings_reservation
from apps.privacy.guardrails import as_messages, guard_for
from apps.providers.adapters.base import ProviderError, Usage, session_id
from apps.routing.access import in_residency, may_use
from apps.routing.catalog import get_catalog
from apps.routing.router import failed_target, plan_route, run_with_fallback
from apps.routing.rules import RequestContext, parse_tags

from . import cache, metrics
from .accounting import (
    admit_target,
    attempt_start,
    bill_failed_attempts,
    bill_refusal,
    end_unfinished,
    estimate_tokens,
    prompt_chars,
    record_usage,
)
from .auth import authenticate
from .capabilities import chat_with_emulation, legacy_finish, to_legacy_message
from .http import send_json
from .schemas import parse_chat, parse_embeddings
from .streaming import SseSink, replay_stream, stream_chat


def response_headers(req, plan=None, target=None) -> dict:
    headers = {"x-request-id": req.request_id}
    if req.admission is not None:
        headers.update(req.admission.headers)
    if target is not None:
        headers["x-xrouter-provider"] = target.model.provider
        headers["x-xrouter-route"] = plan.header(target)
    return headers


def routing_context(req, key, body, catalog) -> RequestContext:
    """What routing rules may match on (the metadata field is read here and not sent upstream). The
    prompt's size is estimated with the requested model's learned ratio when it names a model or an
    alias (a rule's targets are not known yet: the default ratio then)."""
    metadata = body.pop("metadata", None)
    req.prompt_chars = prompt_chars(body)
    requested = body["model"]
    model = catalog.models.get(catalog.aliases.get(requested, requested))
    return RequestContext(
        model=body["model"],
        key_prefix=key.prefix,
        organisation_id=key.organisation_id,
        tags=parse_tags(req.header(b"x-xrouter-tags"), metadata),
        tools=bool(body.get("tools")),
        stream=bool(body.get("stream")),
        prompt_tokens=estimate_tokens(req.prompt_chars, model),
        max_tokens=body.get("max_tokens") or 0,
    )


async def chat_completions(req, send) -> None:
    key = await authenticate(req, "chat")
    await serve_chat(req, send, key, parse_chat(await req.body()))


async def serve_chat(req, send, key, body: dict, sink=None, shape=None, session: str = "") -> None:
    """A validated chat request from an HTTP client, under the client's X-Session-ID if it sent one, else
    `session` (the Responses API's prompt_cache_key) (chat completions, and the Responses API translated
    into chat: responses.py)."""
    session = req.header(b"x-session-id") or session
    if not session:
        await chat(req, send, key, body, sink, shape)
        return
    token = session_id.set(provider_session(key, session))
    try:
        await chat(req, send, key, body, sink, shape)
    finally:
        session_id.reset(token)


MAX_SESSION_ID = 128


def provider_session(key, value: str) -> str:
    """The client's X-Session-ID as the providers see it (GigaChat keys its prompt cache on it; README,
    "Using it from the openai SDK"): a UUID derived from the tenant and the value, so one tenant's id can
    never land on another's cache entries, and the client's own id never leaves the gateway."""
    if len(value) > MAX_SESSION_ID or not value.isascii() or not value.isprintable():
        raise ApiError(400, f"X-Session-ID must be at most {MAX_SESSION_ID} printable ASCII characters.",
                       param="X-Session-ID", code="invalid_value")
    digest = hashlib.sha256(f"{key.cache_scope}\0{value}".encode()).digest()
    return str(uuid.UUID(bytes=digest[:16]))


async def chat(req, send, key, body: dict, sink=None, shape=None) -> None:
    """A validated chat request, answered as JSON or streamed into `sink` (SSE by default; the
    WebSocket consumer passes its own, with `stream` set), with the same rules either way.
    `shape` turns the chat.completion payload into another API's answer (the Responses API's)."""
    legacy = body.pop("legacy_functions", False)
    catalog = await get_catalog()
    ctx = routing_context(req, key, body, catalog)
    plan = plan_route(catalog, body["model"], key, ctx=ctx)
    model = plan.targets[0].model
    # The guardrail pipeline (apps.privacy) only when the key, its organisation or the rule sets a policy:
    # with none (the default) this is the whole of its cost.
    guard = guard_for(key, plan, body, req.request_id) if key.policies or plan.policies else None
    if guard is not None:
        await guard.before()  # may refuse (a blocked term) before anything is reserved or called
    # One decision for every limit before any upstream call; settled on every path (usage adds up in accounting).
    req.admission = await limits.admit(key, plan, req.request_id, lambda: chat_reservation(body, model))
    try:
        await _answer_chat(req, send, key, body, sink, legacy, catalog, plan, shape, guard)
    finally:
        end_unfinished(req, key, plan, stream=bool(body.get("stream")))
        if req.admission is not None:  # with the fallback targets' admissions (accounting.admit_target)
            req.admission.settle()


async def _answer_chat(req, send, key, body: dict, sink, legacy: bool, catalog, plan, shape, guard=None) -> None:
    ttl = cache.ttl_for(body, plan) if guard is None or guard.cacheable else None
    cache_key = cache.cache_key(key, plan, body) if ttl else None
    if cache_key and not cache.bypass(req):
        hit = await cache.get(cache_key)
        if hit is not None:
            await answer_from_cache(req, send, key, plan, body, hit, legacy, catalog, sink, shape)
            return
    if body.get("stream"):
        await stream_chat(req, sink or SseSink(req, send), key, plan, body, legacy, cache_key=cache_key, cache_ttl=ttl,
                          guard=guard)
        return

    async def call(target):
        attempt_start(req, key, plan, target, plan.prompt_tokens)
        await admit_target(req, key, plan, target, lambda: chat_reservation(body, target.model))
        sent = body if guard is None else await guard.aupstream(target)  # per attempt: a fallback may cross a border
        result = await chat_with_emulation(target.adapter, sent, target.model.name)
        if ("content_filter" in plan.fallback_on and target is not plan.targets[-1]
                and any(c.get("finish_reason") == "content_filter" for c in result.choices)):
            raise ProviderError(f"{target.label}: the provider's content filter refused the answer", status=502,
                                kind="content_filter")
        return result

    try:
        result, target = await run_with_fallback(plan, call)
    except ProviderError as exc:
        metrics.UPSTREAM_ERRORS.labels(failed_target(plan, exc).model.provider, exc.kind).inc()
        bill_refusal(req, key, plan, exc)
        raise from_provider_error(exc) from None

    if guard is not None:
        answer = guard.answer(target)
        if answer is not None:
            guard.restore_choices(result.choices, answer)
        guard.after(target, "\n".join(c["message"].get("content") or "" for c in result.choices if c.get("message")))
    headers = response_headers(req, plan, target)
    if cache_key:
        headers["x-xrouter-cache"] = "miss"
        await cache.put(cache_key, cache.entry_for(result.choices, result.usage, target.model.public_id,
                                                   target.model.provider, plan.header(target)), ttl)
    choices = result.choices
    if legacy:
        choices = [legacy_choice(c) for c in choices]
    payload = {
        "id": "chatcmpl-" + req.request_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": target.model.public_id,
        "choices": choices,
        "usage": result.usage.to_openai(),
    }
    # Billed before the answer is sent: a send that fails must not lose what the provider charged.
    record_usage(req, key, endpoint="chat", requested=plan.requested, model=target.model, route=plan.rule,
                 usage=result.usage, provider_request_id=result.provider_request_id, upstream_seconds=plan.upstream_seconds,
                 attempt=len(plan.attempts) - 1)
    bill_failed_attempts(req, key, plan)
    await send_json(send, 200, shape(payload) if shape else payload, headers)


def legacy_choice(choice: dict) -> dict:
    message = to_legacy_message(dict(choice["message"]))
    return {**choice, "message": message, "finish_reason": legacy_finish(choice["finish_reason"])}


async def answer_from_cache(req, send, key, plan, body, hit, legacy, catalog, sink=None, shape=None) -> None:
    """A stored answer, as JSON or replayed as a stream; billed as a cache hit at zero cost."""
    usage = Usage(**hit["usage"])
    model = catalog.models.get(hit["model"])
    headers = {**response_headers(req), "x-xrouter-provider": hit["provider"], "x-xrouter-route": hit["route"],
               "x-xrouter-cache": "hit"}
    choices = [legacy_choice(c) for c in hit["choices"]] if legacy else hit["choices"]
    record_usage(req, key, endpoint="chat", requested=plan.requested, model=model, route=hit["route"], usage=usage,
                 status="cache_hit", stream=bool(body.get("stream")), cache_hit=True)
    if body.get("stream"):
        await replay_stream(req, sink or SseSink(req, send), headers, hit["model"], choices, usage, body)
    else:
        payload = {"id": "chatcmpl-" + req.request_id, "object": "chat.completion", "created": int(time.time()),
                   "model": hit["model"], "choices": choices, "usage": usage.to_openai()}
        await send_json(send, 200, shape(payload) if shape else payload, headers)


async def embeddings(req, send) -> None:
    key = await authenticate(req, "embeddings")
    body = parse_embeddings(await req.body())
    plan = plan_route(await get_catalog(), body["model"], key, kind="embedding")
    inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
    req.prompt_chars = sum(map(len, inputs))
    guard = guard_for(key, plan, as_messages(inputs), req.request_id) if key.policies or plan.policies else None
    if guard is not None:
        await guard.before()
    req.admission = await limits.admit(key, plan, req.request_id, lambda: embeddings_reservation(inputs))
    try:
        await _answer_embeddings(req, send, key, body, plan, inputs, guard)
    finally:
        end_unfinished(req, key, plan, endpoint="embeddings")
        if req.admission is not None:
            req.admission.settle()


async def _answer_embeddings(req, send, key, body: dict, plan, inputs: list, guard=None) -> None:

    async def call(target):
        if "dimensions" in body and not target.adapter.supports_dimensions:
            raise ApiError(400, f"Provider '{target.model.provider}' does not support 'dimensions'.", param="dimensions",
                           code="unsupported_parameter")
        attempt_start(req, key, plan, target, estimate_tokens(req.prompt_chars, target.model), endpoint="embeddings")
        await admit_target(req, key, plan, target, lambda: embeddings_reservation(inputs))
        sent = inputs if guard is None else [m["content"] for m in (await guard.aupstream(target))["messages"]]
        return await target.adapter.embeddings(sent, target.model.name, body)

    try:
        result, target = await run_with_fallback(plan, call)
    except ProviderError as exc:
        bill_refusal(req, key, plan, exc, endpoint="embeddings")
        raise from_provider_error(exc) from None

    as_base64 = body.get("encoding_format") == "base64"
    data = [
        {"object": "embedding", "index": i, "embedding": _b64(vector) if as_base64 else vector}
        for i, vector in enumerate(result.vectors)
    ]
    usage = result.usage
    if not usage.prompt_tokens:
        usage = Usage(prompt_tokens=estimate_tokens(req.prompt_chars, target.model), estimated=True)
    payload = {
        "object": "list",
        "data": data,
        "model": target.model.public_id,
        "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.prompt_tokens},
    }
    record_usage(req, key, endpoint="embeddings", requested=plan.requested, model=target.model, route=plan.rule,
                 usage=usage, provider_request_id=result.provider_request_id, upstream_seconds=plan.upstream_seconds,
                 attempt=len(plan.attempts) - 1)
    bill_failed_attempts(req, key, plan, endpoint="embeddings")
    await send_json(send, 200, payload, response_headers(req, plan, target))


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def _visible_models(catalog, key) -> list[dict]:
    """What the key may call, by the router's own check (access.may_use), so a listed model never 403s."""
    out = []
    for public_id, entry in catalog.models.items():
        if may_use(key, public_id, public_id, catalog.models) and in_residency(key, entry.jurisdiction):
            out.append({"id": public_id, "object": "model", "created": entry.created, "owned_by": entry.provider})
    for alias, target in catalog.aliases.items():
        entry = catalog.models.get(target)
        if entry and may_use(key, alias, target, catalog.models) and in_residency(key, entry.jurisdiction):
            out.append({"id": alias, "object": "model", "created": entry.created, "owned_by": "xrouter"})
    return out


async def list_models(req, send) -> None:
    key = await authenticate(req, "models:read")
    data = _visible_models(await get_catalog(), key)
    await send_json(send, 200, {"object": "list", "data": data}, {"x-request-id": req.request_id})


async def retrieve_model(req, send) -> None:
    key = await authenticate(req, "models:read")
    model_id = req.path[len("/v1/models/"):]
    for model in _visible_models(await get_catalog(), key):
        if model["id"] == model_id:
            await send_json(send, 200, model, {"x-request-id": req.request_id})
            return
    raise ApiError(404, f"The model '{model_id}' does not exist or you do not have access to it.", param="model",
                   code="model_not_found")
