"""`POST /v1/xrouter/tokenize {model, messages, tools?}` → `{prompt_tokens, source}`: the prompt's size
as the provider's own tokenizer counts it (`source: "provider"`: GigaChat's POST /tokens/count, Yandex's
tokenizeCompletion; adapters' `count_tokens`), else the gateway's estimate (`source: "estimate"`: providers
without a tokenizer endpoint, or one that failed). For clients that size prompts before sending them;
the chat path never calls it (it would add a round trip to every request).

The key needs the `chat` scope: the count is routed like a chat request (the same model access, rules
and aliases) and calls the provider with the gateway's credential. It counts as a request under the
key's limits (request rate, concurrency), never as tokens, and leaves no usage row: tokenizer calls
are free."""

import logging

from apps.limits import services as limits
from apps.providers.adapters.base import ProviderError
from apps.routing.catalog import get_catalog
from apps.routing.router import plan_route

from .accounting import estimate_tokens
from .auth import authenticate
from .handlers import response_headers, routing_context
from .http import send_json
from .schemas import parse_tokenize

log = logging.getLogger(__name__)


async def tokenize(req, send) -> None:
    key = await authenticate(req, "chat")
    body = parse_tokenize(await req.body())
    catalog = await get_catalog()
    plan = plan_route(catalog, body["model"], key, ctx=routing_context(req, key, body, catalog))
    target = plan.targets[0]  # the model a chat request would be sent to first
    req.admission = await limits.admit(key, plan, req.request_id, lambda: (0, 0))
    try:
        tokens = await _provider_count(target, body)
    finally:
        if req.admission is not None:
            req.admission.settle()
    payload = {"object": "xrouter.tokenize", "model": target.model.public_id}
    if tokens is None:
        payload.update(prompt_tokens=estimate_tokens(req.prompt_chars, target.model), source="estimate")
    else:
        payload.update(prompt_tokens=tokens, source="provider")
    await send_json(send, 200, payload, response_headers(req, plan, target))


async def _provider_count(target, body: dict) -> int | None:
    """The provider's count, None when it has no tokenizer or it failed: a count is advice, so the
    estimate (marked as such) serves better than an error."""
    try:
        return await target.adapter.count_tokens(body, target.model.name)
    except ProviderError as exc:
        log.warning("provider token count failed; answering an estimate",
                    extra={"provider": target.model.provider, "kind": exc.kind, "status": exc.status})
        return None
