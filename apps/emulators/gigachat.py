"""GigaChat (Sber) emulator: the classic v1 REST contract (/work/shared/providers/gigachat.md).

Adapters use ``base_url = <origin>/api/v1`` and ``auth_url = <origin>/api/v2/oauth``.
Defaults: authorization key ``base64("demo-client:demo-secret")`` valid for every scope,
user ``demo-user`` / ``demo-password`` for ``/token``, tokens live 30 minutes
(``token_lifetime_s``). Answers follow ``behaviour.py``; GigaChat's own: with functions offered,
``[bad_call]`` in the last user message ends the answer with finish_reason ``error`` (an unparsable
call), after the text ``BAD_CALL_TEXT``.

Not emulated: the v2 contract (``/api/v2/chat/completions``, what SDK 0.2.x's
``client.chat.create`` uses), files, images, built-in functions, storage/threads.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid

from aiohttp import web

from . import behaviour
from .gigachat_auth import (
    DEMO_AUTHORIZATION_KEY,
    JSON_UTF8,
    SCOPES,
    api_error,
    check_bearer,
    oauth,
    password_token,
)
from .responses import send_json, send_stream, sse, with_fault_usage
from .state import BODY, BODY_ERROR, REQUEST_ID, STATE_KEY, Dialect, build_app, new_state, set_usage

CHAT_MODELS = [
    "GigaChat",
    "GigaChat-2",
    "GigaChat-2-Pro",
    "GigaChat-2-Max",
    "GigaChat-Pro",
    "GigaChat-Max",
    "GigaChat-Plus",
]
CHAT_MODELS += [m + "-preview" for m in CHAT_MODELS]
EMBEDDING_MODELS = ["Embeddings", "Embeddings-2", "EmbeddingsGigaR", "GigaEmbeddings-3B-2025-09"]
OTHER_MODELS = {"GigaFilter": "filter", "GigaCheckClassification": "aicheck", "GigaCheckDetection": "aicheck"}
ROLES = {"system", "user", "assistant", "function", "search_result", "function_in_progress"}
BUILT_IN_FUNCTIONS = {"text2image"}
WORDS_PER_CHUNK = 5  # GigaChat sends bigger chunks than most

DEFAULTS = {
    "authorization_keys": {DEMO_AUTHORIZATION_KEY: list(SCOPES)},
    "users": {"demo-user": "demo-password"},
    "token_lifetime_s": 1800,  # nosec B105 # a lifetime in seconds, not a secret
    "model_version": "2.0.28.2",
    "embedding_dim": 1024,
    "prompt_cache_ttl_s": 30,  # gpt2giga docs, prompt-caching: "roughly 30 seconds" after the last hit  # Guess: sizes are undocumented; 1024 is the commonly quoted one
}


BAD_CALL_MARKER = "[bad_call]"  # with functions offered: the model fails to write a valid call
BAD_CALL_TEXT = "Let me check that with the tool."
GIGACHAT_FINISH = {"content_filter": "blacklist"}  # GigaChat's name for a filtered answer


class Invalid(Exception):
    def __init__(self, status: int, message: str | None = None):
        super().__init__(message)
        self.status, self.message = status, message


def make_app(**options) -> web.Application:
    state = new_state("gigachat", DEFAULTS, options)
    dialect = Dialect(
        name="gigachat",
        error_response=lambda request, status, message: api_error(status, message),
        token_paths=frozenset({"/api/v2/oauth", "/api/v1/token"}),
        headers=_headers,
        client_request_id_header="X-Request-ID",  # logged for correlation (../shared/providers/gigachat.md §4, REF-CHAT)
    )
    app = build_app(state, dialect)
    app.router.add_post("/api/v2/oauth", oauth)
    app.router.add_post("/api/v1/token", password_token)
    app.router.add_get("/api/v1/models", _authorized(list_models))
    app.router.add_get("/api/v1/models/{model}", _authorized(get_model))
    app.router.add_post("/api/v1/chat/completions", _authorized(chat_completions))
    app.router.add_post("/api/v1/embeddings", _authorized(embeddings))
    app.router.add_post("/api/v1/tokens/count", _authorized(tokens_count))
    app.router.add_get("/api/v1/balance", _authorized(balance))
    app.router.add_post("/api/v1/files", _authorized(upload_file))
    app.router.add_get("/api/v1/files", _authorized(list_files))
    app.router.add_post("/api/v1/files/{file_id}/delete", _authorized(delete_file))
    return app


def _headers(request: web.Request) -> dict:
    headers = {
        "X-Request-Id": request[REQUEST_ID],
        # Guess: echoing the caller's X-Session-ID / X-Client-ID is assumed, not recorded.
        "X-Session-Id": request.headers.get("X-Session-ID") or str(uuid.uuid4()),
        "Server": "SynGX",
    }
    if request.headers.get("X-Client-ID"):
        headers["X-Client-Id"] = request.headers["X-Client-ID"]
    return headers


def _authorized(handler):
    async def wrapper(request: web.Request) -> web.StreamResponse:
        denied = check_bearer(request)
        if denied is not None:
            return denied
        try:
            return await handler(request)
        except Invalid as exc:
            return api_error(exc.status, exc.message)

    return wrapper


def _model_object(model_id: str) -> dict:
    kind = "chat" if model_id in CHAT_MODELS else "embedder" if model_id in EMBEDDING_MODELS else OTHER_MODELS[model_id]
    return {"id": model_id, "object": "model", "owned_by": "salutedevices", "type": kind}


async def list_models(request):
    ids = CHAT_MODELS + EMBEDDING_MODELS + list(OTHER_MODELS)
    return await send_json(request, {"object": "list", "data": [_model_object(m) for m in ids]}, content_type=JSON_UTF8)


async def get_model(request):
    model_id = request.match_info["model"]
    if model_id not in CHAT_MODELS + EMBEDDING_MODELS and model_id not in OTHER_MODELS:
        raise Invalid(404, "No such model")
    return await send_json(request, _model_object(model_id), content_type=JSON_UTF8)


async def balance(request):
    # Shape from the SDK fixture balance.json; every emulated account is "prepaid".
    rows = [{"usage": "GigaChat", "value": 900000}, {"usage": "embeddings", "value": 9999967}]
    return await send_json(request, {"balance": rows}, content_type=JSON_UTF8)


def _body(request) -> dict:
    if BODY_ERROR in request or not isinstance(request.get(BODY), dict):
        raise Invalid(400)  # Guess: malformed JSON answers the generic "Bad request"
    return request[BODY]


def _texts(value) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) for t in items):
        raise Invalid(422, "Invalid params: input must be a non-empty list of strings")  # Guess: wording
    return items


async def embeddings(request):
    body = _body(request)
    model = body.get("model") or "Embeddings"
    if model not in EMBEDDING_MODELS:
        raise Invalid(404, "No such model")
    texts = _texts(body.get("input"))
    dim = int(request.app[STATE_KEY].config["embedding_dim"])
    data = [
        {
            "object": "embedding",
            "index": i,
            "embedding": behaviour.embedding_vector(text, dim),
            "usage": {"prompt_tokens": behaviour.count_tokens(text)},
        }
        for i, text in enumerate(texts)
    ]
    set_usage(request, sum(d["usage"]["prompt_tokens"] for d in data), 0)
    return await send_json(request, {"object": "list", "model": model, "data": data}, content_type=JSON_UTF8)


async def tokens_count(request):
    body = _body(request)
    if body.get("model", "GigaChat") not in CHAT_MODELS + EMBEDDING_MODELS:
        raise Invalid(404, "No such model")
    rows = [{"object": "tokens", "tokens": behaviour.count_tokens(t), "characters": len(t)} for t in _texts(body.get("input"))]
    return await send_json(request, rows, content_type=JSON_UTF8)


def _validate_messages(messages) -> None:
    # Guess: only the "system first" wording is documented; the other 422 texts are ours.
    if not isinstance(messages, list) or not messages:
        raise Invalid(422, "Invalid params: messages must be a non-empty array")
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise Invalid(422, "Invalid params: message must be an object")
        role = message.get("role")
        if role not in ROLES:
            raise Invalid(422, f"Invalid params: unknown role '{role}'")
        if not isinstance(message.get("content", ""), str):
            raise Invalid(422, "Invalid params: content must be a string")
        if role == "system" and index != 0:
            raise Invalid(422, "Invalid params: system message must be the first message")
        if role == "function":
            try:
                result = json.loads(message.get("content") or "")
            except ValueError:
                result = None
            if not isinstance(result, dict):
                raise Invalid(422, "Invalid params: function result must be a JSON object serialized into a string")


def _validate_options(body: dict) -> None:
    for name in ("temperature", "repetition_penalty"):
        value = body.get(name)
        if value is not None and (not isinstance(value, (int, float)) or value <= 0):
            raise Invalid(422, f"Invalid params: {name} must be in range (0, +inf)")
    if body.get("max_tokens") is not None and (not isinstance(body["max_tokens"], int) or body["max_tokens"] < 1):
        raise Invalid(422, "Invalid params: max_tokens must be a positive integer")


# What the real service refuses in a function's parameters or a response_format schema, as the
# two Sber-maintained integrations record it: langchain-gigachat `gigachat_fix_schema` ("GigaChat
# do not support allOf/anyOf in JSON schema"; refs dereferenced first) and gpt2giga
# `common/json_schema.py` (no $ref/$defs, no anyOf/oneOf, objects need properties, type arrays
# collapsed, only date/date-time/time formats). Non-string enums: named in issue 11 from the
# same read. # Guess: the 422 wording, and that the first offending node is the one named.
RESERVED_FUNCTIONS = {"web_search"}
SCHEMA_FORMATS = {"date", "date-time", "time"}
SCHEMA_REFUSED_KEYS = ("$ref", "$defs", "definitions", "anyOf", "oneOf", "allOf")


def _check_schema(schema, where: str, depth: int = 0) -> None:
    if not isinstance(schema, dict) or depth > 64:
        raise Invalid(422, f"Invalid params: {where} must be a JSON schema object")
    for key in SCHEMA_REFUSED_KEYS:
        if key in schema:
            raise Invalid(422, f"Invalid params: {where}: '{key}' is not supported")
    kind = schema.get("type")
    if isinstance(kind, list):
        raise Invalid(422, f"Invalid params: {where}: type must be a string")
    if kind == "object" and not isinstance(schema.get("properties"), dict):
        raise Invalid(422, f"Invalid params: {where}: an object must have properties")
    if "format" in schema and schema["format"] not in SCHEMA_FORMATS:
        raise Invalid(422, f"Invalid params: {where}: format '{schema['format']}' is not supported")
    if "enum" in schema and not (isinstance(schema["enum"], list) and all(isinstance(v, str) for v in schema["enum"])):
        raise Invalid(422, f"Invalid params: {where}: enum values must be strings")
    for name, sub in (schema.get("properties") or {}).items():
        _check_schema(sub, f"{where}.properties.{name}", depth + 1)
    if isinstance(schema.get("items"), (dict, list)):
        _check_schema(schema["items"], f"{where}.items", depth + 1)
    if isinstance(schema.get("additionalProperties"), dict):
        _check_schema(schema["additionalProperties"], f"{where}.additionalProperties", depth + 1)


def _check_schemas(body: dict) -> None:
    for index, function in enumerate(body.get("functions") or ()):
        # A user function named like the built-in web search collides with it (gigachat.md §12.5;
        # gpt2giga renames it: "can break function_call"). # Guess: the service refuses it with 422.
        if isinstance(function, dict) and function.get("name") in RESERVED_FUNCTIONS:
            raise Invalid(422, f"Invalid params: function name '{function['name']}' is reserved for a built-in function")
        if isinstance(function, dict) and "parameters" in function:
            _check_schema(function["parameters"], f"functions[{index}].parameters")
    fmt = body.get("response_format")
    if fmt is None:
        return
    # GigaChat's response_format knows json_schema only (SDK-0.2.3 models/chat.py; gpt2giga refuses
    # json_object because "upstream GigaChat has no separate JSON mode"). # Guess: the wording.
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise Invalid(422, "Invalid params: response_format.type must be json_schema")
    _check_schema(fmt.get("schema"), "response_format.schema")


def _conversation(body: dict) -> behaviour.Conversation:
    messages = body["messages"]
    functions = [f for f in body.get("functions") or [] if isinstance(f, dict) and f.get("name")]
    choice = body.get("function_call", "auto")
    forced = choice.get("name") if isinstance(choice, dict) else None
    if forced and forced not in {f["name"] for f in functions} | BUILT_IN_FUNCTIONS:
        raise Invalid(422, f"Invalid params: function '{forced}' is not in functions")  # Guess: wording
    trailing = []
    for message in reversed(messages):
        if message["role"] != "function":
            break
        trailing.insert(0, message.get("content", ""))
    users = [m.get("content", "") for m in messages if m["role"] == "user"]
    response_format = body.get("response_format") if isinstance(body.get("response_format"), dict) else None
    return behaviour.Conversation(
        last_user_text=users[-1] if users else "",
        last_is_user=messages[-1]["role"] == "user",
        tool_results=trailing or None,
        functions=functions,
        tool_choice="none" if choice == "none" else "required" if forced else "auto",
        forced_function=forced,
        max_tokens=body.get("max_tokens"),
        response_format=response_format,
    )


def _prompt_texts(messages: list[dict]) -> list[str]:
    texts = []
    for m in messages:
        call = m.get("function_call")
        extra = " " + json.dumps(call.get("arguments") or {}, ensure_ascii=False) if isinstance(call, dict) else ""
        texts.append((m.get("content") or "") + extra)
    return texts


MAX_SESSIONS = 10_000


def _precached(request, messages: list[dict], texts: list[str]) -> int:
    """GigaChat's prompt cache: a prefix KV cache that lives about 30 s; a later request sharing an
    unchanged prefix reuses it and reports those tokens as precached_prompt_tokens, and a stable
    X-Session-ID keeps requests on the same cache entry (gpt2giga docs, "Prompt caching",
    measured on the live API). # Guess: deterministic here — a hit needs the same X-Session-ID
    (the real upstream's own routing also hits without one, unpredictably), and the prefix is
    counted in whole messages."""
    session = request.headers.get("X-Session-ID")
    if not session:
        return 0
    state = request.app[STATE_KEY]
    now = time.monotonic()
    digests = [hash((m.get("role"), t)) for m, t in zip(messages, texts, strict=True)]
    previous = state.sessions.pop(session, None)
    cached = 0
    if previous is not None and previous[0] > now:
        common = 0
        for old, new in zip(previous[1], digests, strict=False):
            if old != new:
                break
            common += 1
        cached = behaviour.message_tokens(texts[:common])
    state.sessions[session] = (now + float(state.config["prompt_cache_ttl_s"]), digests)
    while len(state.sessions) > MAX_SESSIONS:  # the oldest session goes first
        state.sessions.pop(next(iter(state.sessions)))
    return cached


# --- files: images for the vision models (gigachat.md §5.7, SDK-0.2.3 api/files.py; §5.2 attachments) ---
VISION_MODELS = {"GigaChat-2-Pro", "GigaChat-2-Max", "GigaChat-Pro", "GigaChat-Max"}  # REF-CHAT; Guess: the older two
IMAGE_TYPES = {"image/jpeg", "image/png", "image/tiff", "image/bmp"}  # Guess: the formats GigaChat's docs list
MAX_FILE_BYTES = 15 * 1024 * 1024  # Guess: a per-file cap (the documented one is < 80 MB per request)
MAX_FILES = 1000  # Guess: the account's storage is bounded; keeps the emulator's memory bounded too
MAX_ATTACHMENTS = 10  # per request, one image per message (§5.2)


def _files(request) -> dict:
    return request.app[STATE_KEY].sessions.setdefault("files", {})


async def upload_file(request):
    """POST /files, multipart: part `file` (name + MIME), field `purpose` (§5.7)."""
    if not request.content_type.startswith("multipart/"):
        raise Invalid(400, "Expected multipart/form-data")  # Guess: wording
    reader = await request.multipart()
    content, filename, mime, purpose = None, "", "", "general"
    async for part in reader:
        if part.name == "file":
            filename, mime = part.filename or "file", part.headers.get("Content-Type", "")
            content = await part.read(decode=False)
            if len(content) > MAX_FILE_BYTES:
                raise Invalid(413, "File too large")  # Guess
        elif part.name == "purpose":
            purpose = (await part.text())[:32]
    if content is None:
        raise Invalid(400, "file is required")  # Guess: wording
    if mime not in IMAGE_TYPES:
        raise Invalid(400, f"Unsupported file type {mime or 'unknown'}")  # Guess: wording
    files = _files(request)
    if len(files) >= MAX_FILES:
        raise Invalid(429, "Too many files stored")  # Guess
    file_id = str(uuid.uuid4())
    files[file_id] = {"id": file_id, "object": "file", "bytes": len(content), "created_at": int(time.time()),
                      "filename": filename[:255], "purpose": purpose, "sha256": hashlib.sha256(content).hexdigest()}
    return web.json_response({k: v for k, v in files[file_id].items() if k != "sha256"})


async def list_files(request):
    return web.json_response({"data": [{k: v for k, v in f.items() if k != "sha256"} for f in _files(request).values()]})


async def delete_file(request):
    """Deleting is a POST (§5.7)."""
    file_id = request.match_info["file_id"]
    if _files(request).pop(file_id, None) is None:
        raise Invalid(404, "File not found")  # Guess: wording
    return web.json_response({"id": file_id, "deleted": True})


def _check_attachments(request, model: str, messages: list[dict]) -> str:
    """The attachments' rules (§5.2); returns what the model "sees" in the last user message's image."""
    total, seen = 0, ""
    for message in messages:
        ids = message.get("attachments")
        if ids is None:
            continue
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise Invalid(422, "Invalid params: attachments must be an array of file ids")  # Guess: wording
        if len(ids) > 1:
            raise Invalid(422, "Invalid params: one image per message")  # Guess: wording (§5.2: one per message)
        total += len(ids)
        for file_id in ids:
            found = _files(request).get(file_id)
            if found is None:
                raise Invalid(404, f"File {file_id} not found")  # Guess: wording
            if model not in VISION_MODELS:
                raise Invalid(422, f"Invalid params: model {model} does not accept images")  # Guess: wording
            if message.get("role") == "user":
                seen = f"I see an image of {found['bytes']} bytes (sha256 {found['sha256'][:12]})."
    if total > MAX_ATTACHMENTS:
        raise Invalid(422, f"Invalid params: at most {MAX_ATTACHMENTS} images per request")  # Guess: wording
    return seen


async def chat_completions(request):
    body = _body(request)
    model = body.get("model") or "GigaChat"  # Guess: the service falls back to its default model
    if model not in CHAT_MODELS:
        raise Invalid(404, "No such model")
    _validate_messages(body.get("messages"))
    seen = _check_attachments(request, model, body["messages"])
    _validate_options(body)
    _check_schemas(body)
    conv = _conversation(body)
    reply = behaviour.decide_reply(conv)
    if conv.functions and BAD_CALL_MARKER in conv.last_user_text:
        # finish_reason "error": the model wrote function arguments that do not parse (REF-CHAT,
        # gigachat.md §5.3). # Guess: the text written before the broken call is delivered, the
        # call itself is not.
        reply = behaviour.Reply(text=BAD_CALL_TEXT, finish_reason="error", completion_tokens=behaviour.count_tokens(BAD_CALL_TEXT))
    if reply.is_tool_call and isinstance(body.get("function_call"), dict):
        reply.tool_args.update(body["function_call"].get("partial_arguments") or {})
    if seen and not reply.is_tool_call:  # the model describes the image it was shown
        reply = behaviour.Reply(text=seen, finish_reason="stop", completion_tokens=behaviour.count_tokens(seen))
    texts = _prompt_texts(body["messages"])
    prompt_tokens = behaviour.message_tokens(texts)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": prompt_tokens + reply.completion_tokens,
        "precached_prompt_tokens": min(_precached(request, body["messages"], texts), prompt_tokens),
    }
    set_usage(request, prompt_tokens, reply.completion_tokens)
    usage = with_fault_usage(request, usage)
    envelope = {
        "created": int(time.time()),
        "model": f"{model}:{request.app[STATE_KEY].config['model_version']}",
        "object": "chat.completion",
    }
    finish = "function_call" if reply.is_tool_call else GIGACHAT_FINISH.get(reply.finish_reason, reply.finish_reason)
    if body.get("stream") is True:
        return await _stream(request, reply, envelope, usage, finish)
    message = {"content": reply.text, "role": "assistant"}
    if reply.is_tool_call:
        message["function_call"] = {"name": reply.tool_name, "arguments": reply.tool_args}
        message["functions_state_id"] = str(uuid.uuid4())
    payload = {"choices": [{"message": message, "index": 0, "finish_reason": finish}], **envelope, "usage": usage}
    return await send_json(request, payload, content_type=JSON_UTF8)


async def _stream(request, reply, envelope, usage, finish) -> web.StreamResponse:
    deltas: list[dict] = []
    if reply.is_tool_call:
        # The call arrives whole in one delta (arguments as an object, never split).
        deltas.append(
            {
                "content": "",
                "role": "assistant",
                "function_call": {"name": reply.tool_name, "arguments": reply.tool_args},
                "functions_state_id": str(uuid.uuid4()),
            }
        )
    else:
        deltas = [{"content": c} for c in behaviour.chunk_text(reply.text, WORDS_PER_CHUNK)] or [{"content": ""}]
        deltas[0]["role"] = "assistant"  # the role only in the first delta
    events = [sse({"choices": [{"delta": d, "index": 0}], **envelope}) for d in deltas]
    # Guess: whether finish_reason "function_call" shares the call's event is unconfirmed; we
    # send it in its own penultimate event, like text answers.
    final = {"choices": [{"delta": {"content": ""}, "index": 0, "finish_reason": finish}], **envelope, "usage": usage}
    events += [sse(final), sse("[DONE]")]
    return await send_stream(
        request,
        events,
        content_type="text/event-stream",
        malformed=b'data: {"choices":[{"delta":{"content":"\n\n',
    )
