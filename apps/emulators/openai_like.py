"""OpenAI-compatible emulators in two flavours (/work/shared/providers/mts.md, tbank.md):

* ``mts``: MWS GPT, an OpenAI-compatible gateway. Key ``sk-demo-mts-key``. Errors in the OpenAI
  envelope ``{"error": {"message", "type", "param", "code"}}`` (Guess: MTS publishes none).
  ``QwQ-32B`` reasons in ``reasoning_content`` (served with a reasoning parser);
  ``deepseek-r1-distill-qwen-32b`` inline, ending in a lone ``</think>`` (its template opened the
  block in the prompt); ``bge-m3`` serves ``/v1/embeddings``.
* ``tbank``: vLLM serving T-Pro/T-Lite. Key ``sk-demo-tbank-key``; ``GET /health``. Errors in the
  older vLLM top-level shape ``{"object": "error", "message", "type", "param": null, "code": N}``
  (one shape chosen; newer vLLM nests it under "error"); a bad key gets vLLM's own
  ``{"error": "Unauthorized"}``. ``t-tech/T-pro-it-2.0`` thinks unless
  ``chat_template_kwargs.enable_thinking`` is false.

Settings: ``api_keys``, ``context_length`` (None = per model, 32768 mostly) and
``reasoning_field`` (None = per model; ``"reasoning"`` | ``"reasoning_content"`` | ``"inline"`` |
``"prompt_opened"`` for every model that thinks). Answers follow ``behaviour.py``; chat lives in ``openai_chat.py``.
"""

from __future__ import annotations

import base64
import struct
import time
from dataclasses import dataclass, field
from http import HTTPStatus

from aiohttp import web

from . import behaviour
from .responses import json_response, send_json
from .state import BODY, BODY_ERROR, REQUEST_ID, STATE_KEY, Dialect, build_app, new_state, set_usage


@dataclass(frozen=True)
class ModelSpec:
    id: str
    owned_by: str
    reasoning: str | None = None  # how it shows its thinking, None = it does not think
    switchable: bool = False  # thinking follows chat_template_kwargs.enable_thinking (default on)
    context_length: int = 32768
    embedding_dim: int | None = None
    openai_reasoning: bool = False  # a proxied OpenAI reasoning model (o-series, GPT-5): OpenAI's own rules


@dataclass(frozen=True)
class Flavour:
    name: str
    api_key: str
    models: dict[str, ModelSpec]
    tool_call_prefix: str
    vllm: bool  # error shapes and small envelope details follow vLLM
    extra_settings: dict = field(default_factory=dict)


def _models(*specs: ModelSpec) -> dict[str, ModelSpec]:
    return {s.id: s for s in specs}


FLAVOURS = {
    "mts": Flavour(
        name="mts",
        api_key="sk-demo-mts-key",
        models=_models(
            ModelSpec("mws-gpt-alpha", "mts"),
            ModelSpec("qwen2.5-72b-instruct", "mts"),
            ModelSpec("QwQ-32B", "mts", reasoning="reasoning_content"),
            # Its chat template opens <think> in the prompt: the output holds only </think> (vLLM #12999).
            ModelSpec("deepseek-r1-distill-qwen-32b", "mts", reasoning="prompt_opened"),
            ModelSpec("gpt-4o", "openai", context_length=128000),  # a "proxy" model
            ModelSpec("gpt-5-mini", "openai", context_length=400000, openai_reasoning=True),
            ModelSpec("bge-m3", "mts", context_length=8192, embedding_dim=1024),
        ),
        tool_call_prefix="call_",  # Guess: MTS tool-call id format is not documented
        vllm=False,
    ),
    "tbank": Flavour(
        name="tbank",
        api_key="sk-demo-tbank-key",
        models=_models(
            ModelSpec("t-tech/T-pro-it-2.0", "vllm", reasoning="reasoning", switchable=True),
            ModelSpec("t-tech/T-lite-it-2.1", "vllm"),
        ),
        tool_call_prefix="chatcmpl-tool-",
        vllm=True,
    ),
}

OPENAI_ERRORS = {  # Guess: status -> (type, code) as OpenAI itself answers
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    429: ("rate_limit_error", "rate_limit_exceeded"),
}


FLAVOUR_KEY = web.AppKey("emulator_flavour", Flavour)


class ApiError(Exception):
    def __init__(self, status: int, message: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param


def make_app(flavour: str = "mts", **options) -> web.Application:
    spec = FLAVOURS[flavour]
    defaults = {"api_keys": [spec.api_key], "context_length": None, "reasoning_field": None}
    state = new_state(flavour, defaults, options)
    dialect = Dialect(
        name=flavour,
        error_response=lambda request, status, message: error_response(spec, status, message),
        headers=lambda request: {"x-request-id": request[REQUEST_ID]},
        client_request_id_header="X-Request-Id",  # vLLM: vllm/entrypoints/openai/serving_engine.py `_base_request_id`
    )
    app = build_app(state, dialect)
    app[FLAVOUR_KEY] = spec
    from .openai_chat import chat_completions  # chat is big enough for its own module

    app.router.add_get("/v1/models", _authorized(list_models))
    app.router.add_post("/v1/chat/completions", _authorized(chat_completions))
    if any(m.embedding_dim for m in spec.models.values()):
        app.router.add_post("/v1/embeddings", _authorized(embeddings))
    if spec.vllm:
        app.router.add_get("/health", health)
    return app


def error_response(flavour: Flavour, status: int, message: str | None, param: str | None = None) -> web.Response:
    text = message or HTTPStatus(status).phrase
    if flavour.vllm:
        kind = {400: "BadRequestError", 404: "NotFoundError", 500: "InternalServerError"}.get(
            status, HTTPStatus(status).phrase.replace(" ", "").replace("-", "") + "Error"
        )
        return json_response({"object": "error", "message": text, "type": kind, "param": param, "code": status}, status)
    kind, code = OPENAI_ERRORS.get(status, ("server_error" if status >= 500 else "invalid_request_error", None))
    return json_response({"error": {"message": text, "type": kind, "param": param, "code": code}}, status)


def _authorized(handler):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        flavour = request.app[FLAVOUR_KEY]
        kind, _, key = request.headers.get("Authorization", "").partition(" ")
        if kind != "Bearer" or key.strip() not in request.app[STATE_KEY].config["api_keys"]:
            if flavour.vllm:
                return json_response({"error": "Unauthorized"}, 401)  # vLLM's --api-key middleware
            return error_response(flavour, 401, "Incorrect API key provided.")
        try:
            return await handler(request)
        except ApiError as exc:
            return error_response(flavour, exc.status, exc.message, exc.param)

    return wrapper


def request_body(request: web.Request) -> dict:
    if BODY_ERROR in request:
        raise ApiError(400, f"Invalid JSON body: {request[BODY_ERROR]}")
    if not isinstance(request.get(BODY), dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return request[BODY]


def find_model(request: web.Request, body: dict) -> ModelSpec:
    flavour = request.app[FLAVOUR_KEY]
    model_id = body.get("model")
    if model_id is None and flavour.vllm:
        return next(iter(flavour.models.values()))  # vLLM falls back to the served model
    if not isinstance(model_id, str) or not model_id:
        raise ApiError(400, "you must provide a model parameter", "model")
    if model_id not in flavour.models:
        raise ApiError(404, f"The model `{model_id}` does not exist.", "model")
    return flavour.models[model_id]


def context_length(request: web.Request, model: ModelSpec) -> int:
    configured = request.app[STATE_KEY].config["context_length"]
    return int(configured) if configured else model.context_length


async def list_models(request):
    flavour = request.app[FLAVOUR_KEY]
    created = int(time.time())
    data = []
    for spec in flavour.models.values():
        item = {"id": spec.id, "object": "model", "created": created, "owned_by": spec.owned_by}
        if flavour.vllm:
            item.update(root=spec.id, parent=None, max_model_len=context_length(request, spec))
        data.append(item)
    return await send_json(request, {"object": "list", "data": data})


async def health(request):
    return web.Response(status=200)  # vLLM answers an empty 200


async def embeddings(request):
    body = request_body(request)
    model = find_model(request, body)
    if not model.embedding_dim:
        raise ApiError(400, f"The model `{model.id}` does not support embeddings.", "model")
    inputs = body.get("input")
    inputs = [inputs] if isinstance(inputs, str) else inputs
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise ApiError(400, "input must be a non-empty string or array of strings", "input")
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise ApiError(400, "encoding_format must be 'float' or 'base64'", "encoding_format")
    data = []
    for index, text in enumerate(inputs):
        vector = behaviour.embedding_vector(text, model.embedding_dim, normalize=True)
        if encoding == "base64":  # what the openai SDK asks for by default
            vector = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")
        data.append({"object": "embedding", "index": index, "embedding": vector})
    tokens = sum(behaviour.count_tokens(t) for t in inputs)
    set_usage(request, tokens, 0)
    payload = {"object": "list", "data": data, "model": model.id, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    return await send_json(request, payload)
