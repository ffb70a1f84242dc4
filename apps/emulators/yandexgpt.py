"""YandexGPT emulator: the native Foundation Models REST API (/work/shared/providers/yandexgpt.md).

Adapters use ``base_url = <origin>`` and ``auth_url = <origin>/iam/v1/tokens``.
Defaults: API key ``demo-yandex-api-key`` for folder ``b1gdemofolder``; Passport OAuth token
``y0_demo-oauth-token`` (a user account, any folder); no service accounts until registered
(see ``yandex_iam.py``). Answers follow ``behaviour.py``; streams are NDJSON with cumulative text.

Choices where the docs leave us free (marked ``Guess`` below): a ``modelUri`` folder other than
the caller's folder → 403 / grpcCode 7; an unknown model → 404 / grpcCode 5; unknown fields
(top level, ``completionOptions``, messages) are rejected by the "gateway" with the parse-error
shape. Not emulated: completionAsync, operations, the OpenAI-compatible ``/v1``.
"""

from __future__ import annotations

import re
import secrets
import time
import zlib
from http import HTTPStatus

from aiohttp import web

from . import behaviour
from .responses import dumps, json_response, send_json, send_stream
from .state import BODY, BODY_ERROR, FAULT, REQUEST_ID, STATE_KEY, Dialect, build_app, new_state, set_usage
from .yandex_iam import AuthError, authenticate, create_iam_token, gateway_parse_error, unary_error

COMPLETION_PATH = "/foundationModels/v1/completion"
EMBEDDING_PATH = "/foundationModels/v1/textEmbedding"
TOKENIZE_PATH = "/foundationModels/v1/tokenize"
TOKENIZE_COMPLETION_PATH = "/foundationModels/v1/tokenizeCompletion"
MODEL_VERSIONS = {"yandexgpt": "09.02.2025", "yandexgpt-lite": "22.05.2025", "llama": "25.03.2025", "llama-lite": "25.03.2025"}
BRANCHES = {"latest", "rc", "deprecated"}
EMBEDDING_MODELS = {"text-search-doc", "text-search-query"}
GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 499: 1, 500: 13, 501: 12, 503: 14, 504: 4}
DEFAULT_MESSAGES = {
    429: "ai.textGenerationCompletionSessionsCount.count gauge quota limit exceed: allowed 10 requests",
}
REQUEST_FIELDS = {
    "modelUri",
    "completionOptions",
    "messages",
    "tools",
    "jsonObject",
    "jsonSchema",
    "parallelToolCalls",
    "toolChoice",
}
OPTION_FIELDS = {"stream", "temperature", "maxTokens", "reasoningOptions"}
MESSAGE_FIELDS = {"role", "text", "toolCallList", "toolResultList"}
FINAL_STATUS = {
    "stop": "ALTERNATIVE_STATUS_FINAL",
    "length": "ALTERNATIVE_STATUS_TRUNCATED_FINAL",
    "tool_calls": "ALTERNATIVE_STATUS_TOOL_CALLS",
    "content_filter": "ALTERNATIVE_STATUS_CONTENT_FILTER",
}

DEFAULTS = {
    "api_keys": {"demo-yandex-api-key": "b1gdemofolder"},
    "service_accounts": {},
    "oauth_tokens": {"y0_demo-oauth-token": None},
    "default_folder": "b1gdemofolder",
    "iam_token_lifetime_s": 12 * 3600,
    "jwt_max_lifetime_s": 3600,
    "context_length": 32000,
    "embedding_dim": 256,
    # Embeddings: 10 requests/s per cloud by default (../shared/providers/yandexgpt.md §7 and §9, [M] docs
    # yandexgpt-limits.md); counted here per folder, over the last second. 0 turns the quota off.
    "embedding_rps": 10,
}



class Refused(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def make_app(**options) -> web.Application:
    state = new_state("yandexgpt", DEFAULTS, options)
    dialect = Dialect(
        name="yandexgpt",
        error_response=error_response,
        token_paths=frozenset({"/iam/v1/tokens"}),
        model_of=lambda body: body.get("modelUri") if isinstance(body.get("modelUri"), str) else None,
        stream_of=lambda body: (
            isinstance(body.get("completionOptions"), dict) and body["completionOptions"].get("stream") is True
        ),
        headers=_headers,
        # The SDK's correlation header, echoed back (../shared/providers/yandexgpt.md §2: sdk `_client.py`).
        client_request_id_header="x-client-request-id",
    )
    app = build_app(state, dialect)
    app.router.add_post("/iam/v1/tokens", create_iam_token)
    app.router.add_post(COMPLETION_PATH, completion)
    app.router.add_post(EMBEDDING_PATH, text_embedding)
    app.router.add_post(TOKENIZE_PATH, tokenize)
    app.router.add_post(TOKENIZE_COMPLETION_PATH, tokenize_completion)
    return app


def error_response(request: web.Request, status: int, message: str | None) -> web.Response:
    """Completion is a server-streaming RPC behind the gateway: its errors come wrapped in "error";
    unary RPCs (embeddings, IAM) answer a bare google.rpc.Status."""
    text = message or DEFAULT_MESSAGES.get(status) or HTTPStatus(status).phrase
    grpc_code = GRPC_CODES.get(status, 2)
    if request.path != COMPLETION_PATH:
        return unary_error(status, grpc_code, text)
    error = {"grpcCode": grpc_code, "httpCode": status, "message": text, "httpStatus": HTTPStatus(status).phrase, "details": []}
    return json_response({"error": error}, status)


def _headers(request: web.Request) -> dict:
    # Guess: [L] that the native REST endpoint sends the same headers as /v1.
    headers = {"x-request-id": request[REQUEST_ID], "x-server-trace-id": secrets.token_hex(8)}
    if request.headers.get("x-client-request-id"):
        headers["x-client-request-id"] = request.headers["x-client-request-id"]
    return headers


def _decoded_body(request: web.Request, allowed: set[str]) -> dict | web.Response:
    if BODY_ERROR in request:
        return gateway_parse_error(request[BODY_ERROR])
    body = request.get(BODY)
    if not isinstance(body, dict):
        return gateway_parse_error("request body must be a JSON object")
    unknown = _unknown_field(body, allowed)
    if unknown:
        # Guess: a strict proto3 JSON parser's wording; the docs only infer the 400.
        return gateway_parse_error(f'proto: (line 1:2): unknown field "{unknown}"')
    return body


def _unknown_field(body: dict, allowed: set[str]) -> str | None:
    extra = sorted(set(body) - allowed)
    if extra:
        return extra[0]
    options = body.get("completionOptions")
    if isinstance(options, dict) and set(options) - OPTION_FIELDS:
        return sorted(set(options) - OPTION_FIELDS)[0]
    for message in body.get("messages") or []:
        if isinstance(message, dict) and set(message) - MESSAGE_FIELDS:
            return sorted(set(message) - MESSAGE_FIELDS)[0]
    return None


def _authorize(request: web.Request, uri: str, scheme: str, models: set[str]) -> tuple[str, str]:
    """Check the caller against the folder in ``uri``; returns (folder, model)."""
    principal = authenticate(request)
    header_folder = request.headers.get("x-folder-id")
    # With a service account's key or token the docs say not to send x-folder-id; one that differs
    # from the account's folder is refused (Yandex's authentication docs; yandexgpt.md §2).
    if header_folder and principal.folder_id and header_folder != principal.folder_id:
        raise Refused(
            400, f"Specified folder ID '{header_folder}' does not match with service account folder ID '{principal.folder_id}'"
        )
    # A fine-tuned model is <base>/<version>@<suffix> (yandexgpt.md §3, Yandex's fine-tuning docs).
    # Guess: any lower-case alphanumeric suffix names an existing fine-tune of that base model.
    match = re.fullmatch(rf"{scheme}://([^/]+)/([^/@]+)(?:/([^/@]+)(?:@([a-z0-9]+))?)?", uri or "")
    if not match:
        raise Refused(400, f"invalid model uri '{uri}'")  # Guess: wording
    folder, model, branch, _fine_tune = match.groups()
    if model not in models or (branch and branch not in BRANCHES):
        raise Refused(404, f"model '{uri}' is not found")  # Guess: wording and status ([L])
    # The modelUri's folder must be one where the caller holds ai.languageModels.user (yandexgpt.md
    # §2, [M] docs): a service account's own folder, or another it was granted the role in.
    if principal.folder_id and folder != principal.folder_id and folder not in principal.folders:
        raise Refused(403, f"Permission to [resource-manager.folder {folder}] denied")  # Guess: our choice, 403
    return folder, model


async def completion(request: web.Request) -> web.StreamResponse:
    body = _decoded_body(request, REQUEST_FIELDS)
    if isinstance(body, web.Response):
        return body
    try:
        folder, model = _authorize(request, body.get("modelUri"), "gpt", set(MODEL_VERSIONS))
        return await _complete(request, body, folder, model)
    except AuthError as exc:
        return error_response(request, exc.status, exc.message)
    except Refused as exc:
        return error_response(request, exc.status, exc.message)


def _session_error(request: web.Request, folder: str, message: str) -> Refused:
    prefix = (
        f"Error in session internal_id={secrets.token_hex(16)}&request_id={request[REQUEST_ID]}"
        f"&client_request_id={request.headers.get('x-client-request-id', '')}&folder_id={folder}"
    )
    return Refused(400, f"{prefix}: {message}")


def _conversation(request, body: dict, folder: str) -> tuple[behaviour.Conversation, list[str]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _session_error(request, folder, "messages must not be empty")  # Guess: wording
    texts, users = [], []
    for message in messages:
        if not isinstance(message, dict):
            raise _session_error(request, folder, "message must be an object")
        role = message.get("role")
        if role not in ("system", "user", "assistant"):
            raise _session_error(request, folder, f"invalid message role '{role}'")
        present = [k for k in ("text", "toolCallList", "toolResultList") if k in message]
        if len(present) != 1:
            raise _session_error(request, folder, "exactly one of text, toolCallList, toolResultList is required")
        texts.append(message["text"] if present == ["text"] else dumps(message[present[0]]).decode("utf-8"))
        if role == "user" and present == ["text"]:
            users.append(message["text"])
    last = messages[-1]
    results = None
    if "toolResultList" in last:
        # Results carry no call ids: the model pairs them with its calls by name and order
        # (yandexgpt.md §4.3), so the answer lists them in the order they came.
        results = [r.get("functionResult", {}).get("content", "") for r in last["toolResultList"].get("toolResults", [])]
    options = body.get("completionOptions") or {}
    max_tokens = options.get("maxTokens")
    if max_tokens is not None:
        try:
            max_tokens = int(max_tokens)  # an Int64Value: a string on the wire, a number tolerated
            if max_tokens <= 0:  # not an assert: python -O would drop the check
                raise ValueError(max_tokens)
        except (ValueError, TypeError):
            raise _session_error(request, folder, "maxTokens must be greater than zero") from None
    temperature = options.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 1):
        raise _session_error(request, folder, "temperature must be in range [0, 1]")  # Guess: wording
    choice = body.get("toolChoice") or {}
    functions = [t["function"] for t in body.get("tools") or [] if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    mode = {"NONE": "none", "REQUIRED": "required"}.get(choice.get("mode"), "auto")
    forced = choice.get("functionName")
    response_format = None
    if body.get("jsonObject"):
        response_format = {"type": "json_object"}
    elif isinstance(body.get("jsonSchema"), dict):
        response_format = {"type": "json_schema", "schema": body["jsonSchema"].get("schema")}
    reasoning = (options.get("reasoningOptions") or {}).get("mode") == "ENABLED_HIDDEN"
    conv = behaviour.Conversation(
        last_user_text=users[-1] if users else "",
        last_is_user=last.get("role") == "user" and "text" in last,
        tool_results=results,
        functions=functions,
        tool_choice="required" if forced else mode,
        forced_function=forced,
        max_tokens=max_tokens,
        response_format=response_format,
        think=reasoning,
    )
    return conv, texts


async def _complete(request: web.Request, body: dict, folder: str, model: str) -> web.StreamResponse:
    conv, texts = _conversation(request, body, folder)
    prompt_tokens = behaviour.message_tokens(texts)
    limit = int(request.app[STATE_KEY].config["context_length"])
    if prompt_tokens > limit:
        raise _session_error(request, folder, f"Number of input tokens must be no more than {limit}, got {prompt_tokens}")
    reply = behaviour.decide_reply(conv)
    set_usage(request, prompt_tokens, reply.completion_tokens)
    version = MODEL_VERSIONS[model]
    status = FINAL_STATUS[reply.finish_reason]
    stream = (body.get("completionOptions") or {}).get("stream") is True
    if reply.is_tool_call:
        call = {"functionCall": {"name": reply.tool_name, "arguments": reply.tool_args}}
        message = {"role": "assistant", "toolCallList": {"toolCalls": [call]}}
        line = _result(message, status, prompt_tokens, reply.completion_tokens, reply, version)
        if stream:  # tool calls arrive whole, in one line
            return await _send_lines(request, [line])
        return await send_json(request, line, trailing_newline=True)
    if not stream:
        message = {"role": "assistant", "text": reply.text}
        payload = _result(message, status, prompt_tokens, reply.completion_tokens, reply, version)
        return await send_json(request, payload, trailing_newline=True)
    if reply.finish_reason == "content_filter":
        return await _send_lines(request, _filtered_lines(conv, reply, prompt_tokens, version))
    return await _send_lines(request, _cumulative_lines(request, reply, status, prompt_tokens, version))


def _filtered_lines(conv, reply, prompt_tokens: int, version: str) -> list[dict]:
    """A stream the content filter stops: the answer grows as usual, then the last line
    (CONTENT_FILTER) carries the canned refusal, which replaces the text so far instead of
    extending it (yandex-cloud-ml-sdk, its LangChain integration's _astream: on CONTENT_FILTER
    the whole text is the delta). # Guess: the filter fires half-way through the answer."""
    answer = behaviour.chunk_text(behaviour.answer_text(conv.last_user_text))
    lines, text = [], ""
    for chunk in answer[: max(1, len(answer) // 2)]:
        text += chunk
        message = {"role": "assistant", "text": text}
        lines.append(_result(message, "ALTERNATIVE_STATUS_PARTIAL", prompt_tokens, behaviour.count_tokens(text), reply, version))
    final = {"role": "assistant", "text": reply.text}
    lines.append(_result(final, FINAL_STATUS["content_filter"], prompt_tokens, reply.completion_tokens, reply, version))
    return lines


def _cumulative_lines(request, reply, final_status: str, prompt_tokens: int, version: str) -> list[dict]:
    fault = request.get(FAULT)
    revise_at = fault.revise_at_chunk if fault else None
    chunks = behaviour.chunk_text(reply.text) or [""]
    lines, text = [], ""
    for index, chunk in enumerate(chunks):
        text += chunk
        shown = ("(revised) " + text) if revise_at is not None and index >= revise_at else text
        last = index == len(chunks) - 1
        completion = reply.reasoning_tokens + behaviour.count_tokens(text)
        message = {"role": "assistant", "text": shown.rstrip() if last else shown}
        status = final_status if last else "ALTERNATIVE_STATUS_PARTIAL"
        lines.append(_result(message, status, prompt_tokens, completion, reply, version))
    return lines


def _result(message: dict, status: str, prompt: int, completion: int, reply, version: str) -> dict:
    details = {"reasoningTokens": str(reply.reasoning_tokens)} if reply.reasoning_tokens else {}
    usage = {
        "inputTextTokens": str(prompt),
        "completionTokens": str(completion),
        "totalTokens": str(prompt + completion),
        "completionTokensDetails": details,
    }
    return {"result": {"alternatives": [{"message": message, "status": status}], "usage": usage, "modelVersion": version}}


async def _send_lines(request: web.Request, lines: list[dict]) -> web.StreamResponse:
    # Guess: [L] the exact Content-Type of the NDJSON stream; application/json is most likely.
    events = [dumps(line) + b"\n" for line in lines]
    return await send_stream(
        request, events, content_type="application/json", malformed=b'{"result":{"alternatives":[{"message":{"role":"assis\n'
    )


async def text_embedding(request: web.Request) -> web.StreamResponse:
    body = _decoded_body(request, {"modelUri", "text", "dim"})
    if isinstance(body, web.Response):
        return body
    try:
        folder, _ = _authorize(request, body.get("modelUri"), "emb", EMBEDDING_MODELS)
    except (AuthError, Refused) as exc:
        return unary_error(exc.status, GRPC_CODES.get(exc.status, 2), exc.message)
    quota = int(request.app[STATE_KEY].config.get("embedding_rps") or 0)
    calls = request.app[STATE_KEY].sessions.setdefault("embedding_calls", {})  # folder → its calls' times
    if quota and not _within_quota(calls, folder, quota):
        # The documented rate-quota refusal (§8: RESOURCE_EXHAUSTED, "... rate quota limit exceed: allowed N
        # requests"); Guess: the quota's name for embeddings, by analogy with the completion one.
        return unary_error(429, 8, f"ai.textEmbeddingRequestsPerSecond.rate rate quota limit exceed: allowed {quota} requests")
    text = body.get("text")
    dim = int(request.app[STATE_KEY].config["embedding_dim"])
    # Guess: wordings of these three refusals.
    if not isinstance(text, str) or not text:
        return unary_error(400, 3, "text must not be empty")
    if body.get("dim") is not None and str(body["dim"]) != str(dim):
        return unary_error(400, 3, f"dim {body['dim']} is not supported by this model")
    tokens = behaviour.count_tokens(text)
    if tokens > 2000:
        return unary_error(400, 3, f"Number of input tokens must be no more than 2000, got {tokens}")
    set_usage(request, tokens, 0)
    payload = {"embedding": behaviour.embedding_vector(text, dim), "numTokens": str(tokens), "modelVersion": "06.12.2023"}
    return await send_json(request, payload)


def _within_quota(calls: dict, folder: str, quota: int) -> bool:
    """Count one call of `folder` unless `quota` calls came within the last second."""
    now = time.monotonic()
    recent = [t for t in calls.get(folder, ()) if now - t < 1.0]
    if len(recent) >= quota:
        calls[folder] = recent
        return False
    recent.append(now)
    calls[folder] = recent
    if len(calls) > 10_000:  # folders are the caller's to name: keep the table bounded
        calls.clear()
    return True


def _token(piece: str, special: bool = False) -> dict:
    # Guess: ids are ours (a stable hash per piece); real ones are the model's vocabulary ids.
    return {"id": str(zlib.crc32(piece.encode("utf-8"))), "text": piece, "special": special}


async def tokenize_completion(request: web.Request) -> web.StreamResponse:
    """Tokenizer.TokenizeCompletion (Text Generation API, REST reference; yandexgpt.md §6): a whole
    CompletionRequest, validated as completion validates it, → its tokens. Free (no usage)."""
    body = _decoded_body(request, REQUEST_FIELDS)
    if isinstance(body, web.Response):
        return body
    try:
        folder, model = _authorize(request, body.get("modelUri"), "gpt", set(MODEL_VERSIONS))
        _, texts = _conversation(request, body, folder)
    except (AuthError, Refused) as exc:
        return unary_error(exc.status, GRPC_CODES.get(exc.status, 2), exc.message)
    # Guess: the count is the completion's usage.inputTextTokens for the same request (behaviour.py:
    # a message's words and one more), that one being a special token that opens the message.
    tokens = []
    for text in texts:
        tokens.append(_token("<message>", special=True))
        tokens += [_token(piece) for piece in behaviour.pieces(text)]
    return await send_json(request, {"tokens": tokens, "modelVersion": MODEL_VERSIONS[model]})


async def tokenize(request: web.Request) -> web.StreamResponse:
    """Free tokenizer call (adapters use it as a cheap health check)."""
    body = _decoded_body(request, {"modelUri", "text"})
    if isinstance(body, web.Response):
        return body
    try:
        _, model = _authorize(request, body.get("modelUri"), "gpt", set(MODEL_VERSIONS))
    except (AuthError, Refused) as exc:
        return unary_error(exc.status, GRPC_CODES.get(exc.status, 2), exc.message)
    tokens = [_token(piece) for piece in behaviour.pieces(body.get("text") or "")]
    return await send_json(request, {"tokens": tokens, "modelVersion": MODEL_VERSIONS[model]})
