"""GigaChat (Sber), the classic v1 REST contract (/api/v1). Wire facts: shared/providers/gigachat.md.

Credentials (`credential.secrets`), one of:
  * `authorization_key` (alias `credentials`, the SDK's name) — base64(client_id:client_secret),
    or `client_id` + `client_secret`; exchanged at `config.auth_url` for a 30-minute token.
    `scope` comes from the secrets, else `config.options["scope"]`, else GIGACHAT_API_PERS.
  * `user` + `password` — the legacy `POST {base}/token` flow.
  * `access_token` — a token obtained elsewhere; used until a 401.

Parameters:
  * not sent, the gateway handles them (supports_n / supports_stop are False): `n`, `stop`.
  * dropped silently: `stream_options` (usage always arrives at the end of a stream), `user`
    (no such field), `parallel_tool_calls` (GigaChat makes one call per turn anyway).
  * refused with unsupported_parameter: `presence_penalty`, `frequency_penalty` (use the
    provider option `repetition_penalty` instead), `tool_choice: "required"` with more than one
    tool (with exactly one tool it is sent as that forced function, which means the same),
    `seed`, `logit_bias`, image content parts (they would need an upload through /files),
    embeddings `dimensions`,
    `response_format` json_object (no schema-less JSON mode; no function-calling fallback either:
    it would turn an answer into a tool call the client did not ask for).
  * translated: `temperature` 0 → 0.001 (greedy), tools → functions, tool_choice → function_call,
    `response_format` json_schema → GigaChat's own (beta) `response_format` {"type": "json_schema",
    "schema"}; the schemas of both tools and response_format are cut down to what GigaChat
    accepts (gigachat_schema.py),
    `reasoning_effort` / `thinking` → `reasoning_effort`.
  * from `config.options`: `repetition_penalty`, `update_interval`, `profanity_check`.
  * from the client's `X-Session-ID` header (tenant-scoped by the gateway): `X-Session-ID`.
"""

from __future__ import annotations

import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import orjson

from .base import (
    ChatResult,
    EmbeddingResult,
    ProviderAdapter,
    ProviderError,
    StreamChunk,
    Usage,
    error_for_status,
    session_id,
)
from .gigachat_schema import gigachat_schema
from .shaping import (
    check_no_penalties,
    dump_arguments,
    history_tool_names,
    new_call_id,
    parse_arguments,
    text_of,
)
from .sse import iter_sse
from .tokens import TOKENS, Token, credential_key
from .transport import (
    ERROR_BODY_BYTES,
    SHAPE_ERRORS,
    bad_answer,
    choice_index,
    cut_off,
    error_message,
    holding,
    http_error,
    loads,
    open_stream,
    opening_chunk,
    parse_json,
    read_limited,
    redact,
    send,
    stream_limit,
    text,
    unsupported,
    vector,
    wrong_shape,
)

NAME = "GigaChat"
log = logging.getLogger(__name__)
DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
# The API takes temperature > 0 only; values in (0, 0.001] switch to greedy decoding, which
# is what temperature 0 means to an OpenAI client. # Guess: the exact threshold is [Med] in the docs.
GREEDY_TEMPERATURE = 0.001
TOKEN_LIFETIME = 30 * 60  # when an OAuth answer carries no expiry
FINISH_REASONS = {"stop": "stop", "length": "length", "function_call": "tool_calls", "blacklist": "content_filter"}
EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}  # Guess: minimal → low
# A client's own function named like a GigaChat built-in collides with it (gigachat.md §12.5):
# it travels under another name and is renamed back in the answer, as gpt2giga does
# (common/tools.py `_RESERVED_GIGACHAT_TOOL_NAME_MAP`: web_search → an internal name).
RESERVED_NAMES = {"web_search": "__xrouter_user_web_search"}
USER_NAMES = {v: k for k, v in RESERVED_NAMES.items()}
OPTION_FIELDS = ("repetition_penalty", "update_interval", "profanity_check")


# --- request translation -----------------------------------------------------------------------
def build_request(body: dict, model: str, options: dict | None = None) -> dict:
    """An OpenAI chat request as a GigaChat /chat/completions body."""
    options = options or {}
    check_no_penalties(body, NAME)
    for name in ("seed", "logit_bias"):  # gigachat.md §12.10: neither exists; both change the answer
        if body.get(name) is not None:
            raise unsupported(NAME, name)
    payload: dict = {"model": model, "messages": build_messages(body["messages"])}
    if body.get("temperature") is not None:
        payload["temperature"] = body["temperature"] if body["temperature"] > 0 else GREEDY_TEMPERATURE
    for name in ("top_p", "max_tokens"):
        if body.get(name) is not None:
            payload[name] = body[name]
    if body.get("stream"):
        payload["stream"] = True
    for name in OPTION_FIELDS:
        if options.get(name) is not None:
            payload[name] = options[name]
    tools = body.get("tools") or []
    if tools:
        if any(t["function"]["name"] in RESERVED_NAMES.values() for t in tools):
            raise unsupported(NAME, "tools", "the name __xrouter_user_web_search is reserved by the gateway")
        payload["functions"] = [_function_spec(t["function"], i) for i, t in enumerate(tools)]
        payload["function_call"] = _function_call(body.get("tool_choice"), payload["functions"])
    elif body.get("tool_choice") not in (None, "none", "auto"):
        raise unsupported(NAME, "tool_choice", "no tools were given")
    fmt = _response_format(body.get("response_format"))
    if fmt:
        payload["response_format"] = fmt
    effort = _reasoning_effort(body)
    if effort:
        payload["reasoning_effort"] = effort
    return payload


def build_messages(messages: list[dict]) -> list[dict]:
    """Roles, content and tool traffic in GigaChat's shape (gigachat.md §12, items 3-5)."""
    out: list[dict] = []
    names = history_tool_names(messages)
    deferred: dict[str, dict] = {}  # parallel calls GigaChat cannot take in one turn
    for i, message in enumerate(messages):
        role, where = message["role"], f"messages[{i}]"
        if role in ("tool", "function"):
            call_id = message.get("tool_call_id")
            if call_id in deferred:
                # GigaChat has one call per assistant turn: replay the next parallel call just
                # before its result, so the history reads call, result, call, result.
                out.append(_assistant_call(deferred.pop(call_id)))
            name = message.get("name") if role == "function" else names.get(call_id) or message.get("name")
            if not name:
                raise ProviderError(
                    f"{NAME}: {where}.tool_call_id {call_id!r} matches no tool call of an earlier assistant message",
                    status=400,
                    kind="bad_request",
                )
            out.append({"role": "function", "name": to_gigachat_name(name), "content": _json_object(text_of(message["content"], NAME, where))})
            continue
        text = text_of(message.get("content"), NAME, where)
        if role == "assistant":
            calls = list(message.get("tool_calls") or ())
            if not calls and message.get("function_call"):
                calls = [{"id": "", "type": "function", "function": message["function_call"]}]
            if calls:
                msg = _assistant_call(calls[0])
                msg["content"] = text
                out.append(msg)
                deferred.update((c["id"], c) for c in calls[1:])
                continue
            _append(out, "assistant", text)
        elif role in ("system", "developer"):
            # GigaChat takes one system message, first (422 otherwise, gigachat.md §5). As gpt2giga
            # does (protocol/request/transformer.py + common/message_utils.py ensure_system_first):
            # the first system message goes to the front wherever it stands, a later one becomes a
            # user turn. Leading system messages are merged into that one.
            if not out or out[-1]["role"] == "system":
                _append(out, "system", text)
            elif out[0]["role"] != "system":
                out.insert(0, {"role": "system", "content": text})
            else:
                _append(out, "user", text)
        else:
            _append(out, "user", text)
    for msg in out:
        if isinstance(msg["content"], list):
            # Guess: merged turns are joined with a blank line, as gpt2giga does.
            msg["content"] = "\n\n".join(msg["content"])
    return out


def _append(out: list[dict], role: str, text: str) -> None:
    """Merge a text message into the previous one of the same role (GigaChat dislikes repeats).

    A merged turn collects its parts in a list, joined once at the end: joining as we go
    copies the growing text once per message (quadratic in a long same-role history).
    """
    last = out[-1] if out else None
    if last is not None and last["role"] == role and role != "function" and "function_call" not in last:
        if not text:
            return
        if isinstance(last["content"], list):
            last["content"].append(text)
        elif last["content"]:
            last["content"] = [last["content"], text]
        else:
            last["content"] = text
    else:
        out.append({"role": role, "content": text})


def _assistant_call(call: dict) -> dict:
    fn = call["function"]
    msg = {"role": "assistant", "content": "", "function_call": {"name": to_gigachat_name(fn["name"]), "arguments": parse_arguments(fn.get("arguments"), NAME)}}
    # We hand GigaChat's functions_state_id out as the tool call id, so it comes back here.
    if _is_state_id(call.get("id")):
        msg["functions_state_id"] = call["id"]
    return msg


def _is_state_id(value) -> bool:
    try:
        uuid.UUID(str(value))
        return True
    except ValueError:
        return False


def _json_object(content: str) -> str:
    """A function result must be a JSON object serialised into a string.

    orjson, not json: nesting past its limit is a decode error (the text is wrapped as a
    string), where json would raise RecursionError.
    """
    try:
        value = orjson.loads(content)
    except orjson.JSONDecodeError:
        value = content
    if isinstance(value, dict):
        return content
    try:
        return '{"result": ' + orjson.dumps(value).decode() + "}"
    except orjson.JSONEncodeError:  # parsed, but nested too deeply to write back: send it as text
        return '{"result": ' + orjson.dumps(content).decode() + "}"


def to_gigachat_name(name: str) -> str:
    return RESERVED_NAMES.get(name, name)


def from_gigachat_name(name: str) -> str:
    return USER_NAMES.get(name, name)


def _function_spec(fn: dict, index: int) -> dict:
    spec = {"name": to_gigachat_name(fn["name"])}
    if fn.get("description"):
        spec["description"] = fn["description"]
    # A function without arguments still gets an (empty) object schema, as gpt2giga's
    # normalize_tool_parameters_schema gives it.
    spec["parameters"] = gigachat_schema(fn.get("parameters"), f"tools[{index}].function.parameters")
    return spec


def _function_call(choice, functions: list[dict]):
    if choice is None or choice in ("auto", "none"):
        return choice or "auto"  # Guess: GigaChat's default with functions is not documented; OpenAI's is auto
    if choice == "required":
        if len(functions) == 1:
            return {"name": functions[0]["name"]}  # "call some tool" with one tool = "call this one"
        raise unsupported(NAME, "tool_choice", "'required' has no GigaChat equivalent with several tools")
    return {"name": to_gigachat_name(choice["function"]["name"])}


def _response_format(fmt: dict | None) -> dict | None:
    if not fmt or fmt.get("type") == "text":
        return None
    if fmt["type"] == "json_schema":
        spec = fmt.get("json_schema") or {}
        out = {"type": "json_schema", "schema": gigachat_schema(spec.get("schema"), "response_format.json_schema.schema")}
        if spec.get("strict") is not None:
            out["strict"] = spec["strict"]
        return out
    # GigaChat has no schema-less JSON mode, and gpt2giga refuses json_object for that reason
    # (docs: client-parameter-compatibility.md, "Structured output ... json_object ... is refused
    # because upstream GigaChat has no separate JSON mode"). A schema admitting any object would
    # be a guess at what the service does with it; the client can send a json_schema instead.
    raise unsupported(NAME, "response_format", "json_object has no GigaChat equivalent; send a json_schema")


def _reasoning_effort(body: dict) -> str | None:
    if body.get("thinking") is False:
        return None
    if body.get("reasoning_effort"):
        return EFFORTS[body["reasoning_effort"]]
    return "medium" if body.get("thinking") else None  # Guess: "think" with no effort given → medium


# --- answer translation ------------------------------------------------------------------------
def parse_usage(data: dict | None) -> Usage | None:
    if not data:
        return None
    return Usage(
        prompt_tokens=int(data.get("prompt_tokens") or 0),
        completion_tokens=int(data.get("completion_tokens") or 0),
        cached_tokens=int(data.get("precached_prompt_tokens") or 0),
    )


def finish_reason(value: str | None) -> str | None:
    """OpenAI's finish reason; "error" is kept for the caller to decide (see failed_call)."""
    if value is None:
        return None
    if value == "error":
        return "error"
    return FINISH_REASONS.get(value, "stop")


def failed_call() -> ProviderError:
    """finish_reason "error": the model produced function arguments GigaChat could not parse
    (gigachat.md §5.3, REF-CHAT). Before anything reached the client it is a failed attempt, and
    another may do better; see stream_chat for a stream that already sent text."""
    return ProviderError(f"{NAME}: the model returned an invalid function call", status=502, kind="bad_response")


def _tool_calls(source: dict) -> list[dict] | None:
    fc = source.get("function_call")
    if not fc:
        return None
    return [
        {
            "id": text(source.get("functions_state_id")) or new_call_id(),
            "type": "function",
            "function": {"name": from_gigachat_name(text(fc.get("name")) or ""), "arguments": dump_arguments(fc.get("arguments"), NAME)},
        }
    ]


def parse_choice(choice: dict) -> dict:
    msg = choice.get("message") or {}
    out = {"role": "assistant", "content": text(msg.get("content")) or ""}
    calls = _tool_calls(msg)
    if calls:
        out["tool_calls"] = calls
        out["content"] = out["content"] or None  # OpenAI sends null content beside tool calls
    if msg.get("reasoning_content"):
        out["reasoning_content"] = text(msg["reasoning_content"])
    reason = finish_reason(choice.get("finish_reason")) or "stop"
    if reason == "error":
        raise failed_call()
    return {"index": choice_index(choice.get("index")), "message": out, "finish_reason": reason}


def stream_event(chunk: dict) -> list[StreamChunk]:
    """One GigaChat stream event (object "chat.completion", no id) as our chunks."""
    out = []
    for choice in chunk.get("choices") or ():
        delta = choice.get("delta") or {}
        piece: dict = {}
        # Guess: built-in functions report progress ("N seconds left") as role
        # function_in_progress; that is status text, not answer text, so it is not relayed.
        if delta.get("content") and delta.get("role") != "function_in_progress":
            piece["content"] = text(delta["content"])
        if delta.get("reasoning_content"):
            piece["reasoning_content"] = text(delta["reasoning_content"])
        reason = finish_reason(choice.get("finish_reason"))
        calls = _tool_calls(delta) if reason != "error" else None  # the unparsable call is not relayed
        if calls:
            piece["tool_calls"] = [{"index": 0, **calls[0]}]
        if piece or reason:
            out.append(StreamChunk(delta=piece, finish_reason=reason, index=choice_index(choice.get("index"))))
    usage = parse_usage(chunk.get("usage"))
    if usage:
        out.append(StreamChunk(usage=usage))
    return out


# --- the adapter --------------------------------------------------------------------------------
class GigaChatAdapter(ProviderAdapter):
    kind = "gigachat"
    supports_n = False
    supports_stop = False
    supports_images = False  # they would need an upload through POST /files first
    supports_dimensions = False

    async def chat(self, body: dict, model: str) -> ChatResult:
        payload = build_request({**body, "stream": False}, model, self.config.options)
        async with self.slot() as credential:
            data, headers = await self._call(credential, "POST", "/chat/completions", payload)
        if not isinstance(data, dict) or not isinstance(data.get("choices"), list) or not data["choices"]:
            raise bad_answer(NAME, "no choices")
        try:
            return ChatResult(
                choices=[parse_choice(c) for c in data["choices"]],
                usage=parse_usage(data.get("usage")) or Usage(estimated=True),
                provider_request_id=headers.get("X-Request-Id", ""),
                upstream_model=text(data.get("model")) or "",
            )
        except SHAPE_ERRORS as exc:
            raise bad_answer(NAME, wrong_shape(exc)) from None

    async def stream_chat(self, body: dict, model: str) -> AsyncIterator[StreamChunk]:
        payload = build_request({**body, "stream": True}, model, self.config.options)
        async with self.slot() as credential:
            resp, token = await self._open_stream(credential, payload)
            hidden = {**(credential.secrets if credential else {}), "token": token}
            async with holding(resp, NAME):
                if resp.content_type != "text/event-stream":
                    raise await self._not_a_stream(resp, hidden)
                head = opening_chunk(resp.headers.get("X-Request-Id", ""))
                finished = False
                async for event in iter_sse(resp.content, stream_limit()):
                    if event.data == "[DONE]":
                        return
                    chunk = parse_json(NAME, event.data)
                    if "choices" not in chunk and any(k in chunk for k in ("status", "message", "error")):
                        raise self._inband_error(chunk, hidden)
                    for out in stream_event(chunk):
                        if out.finish_reason == "error":
                            if head is not None:
                                raise failed_call()
                            # Text already reached the client: like the gigachat SDK and
                            # langchain-gigachat (which log the reason and keep the answer), the
                            # streamed text stands as the answer. OpenAI has no "error" finish
                            # reason (clients that validate it would fail), so it ends as "stop";
                            # gigachat.md §12.7 allows "error or stop".
                            log.warning("%s: finish_reason error after streamed text; ending the stream with stop", NAME)
                            out.finish_reason = "stop"
                        if head is not None:
                            yield head
                            head = None
                        finished = finished or out.finish_reason is not None
                        yield out
                # A clean close after the finish event only lost the [DONE] marker; before it,
                # the answer is incomplete.
                if not finished:
                    raise cut_off(NAME)

    async def embeddings(self, inputs: list[str], model: str, body: dict) -> EmbeddingResult:
        if body.get("dimensions"):
            raise unsupported(NAME, "dimensions")
        async with self.slot() as credential:
            data, headers = await self._call(credential, "POST", "/embeddings", {"model": model, "input": list(inputs)})
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list) or len(items) != len(inputs):
            raise bad_answer(NAME, "embeddings count does not match the input")
        try:
            items = sorted(items, key=lambda d: d.get("index", 0))
            # Usage is per item here; there is no top-level usage.
            tokens = sum(int((d.get("usage") or {}).get("prompt_tokens") or 0) for d in items)
            return EmbeddingResult(
                vectors=[vector(d["embedding"]) for d in items],
                usage=Usage(prompt_tokens=tokens),
                provider_request_id=headers.get("X-Request-Id", ""),
            )
        except SHAPE_ERRORS as exc:
            raise bad_answer(NAME, wrong_shape(exc)) from None

    async def list_models(self) -> list[dict]:
        async with self.slot() as credential:
            data, _ = await self._call(credential, "GET", "/models", None)
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise bad_answer(NAME, "no model list")
        try:
            return [{"id": text(m["id"]), "owned_by": text(m.get("owned_by")) or "salutedevices", "type": text(m.get("type")) or "chat"}
                    for m in items if "id" in m]
        except SHAPE_ERRORS as exc:
            raise bad_answer(NAME, wrong_shape(exc)) from None

    # --- calls with one re-authentication on 401 ----------------------------------------------
    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    async def _call(self, credential, method: str, path: str, payload: dict | None):
        secrets = credential.secrets if credential else {}
        for attempt in (1, 2):
            token = await self._token(secrets)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **_session_header()}
            status, raw, resp_headers = await send(self.session(), NAME, method, self._url(path), headers, json_body=payload)
            if status == 401 and attempt == 1 and self._refreshable(secrets):
                await TOKENS.invalidate(self._token_key(secrets), token)
                continue
            if not 200 <= status < 300:
                raise self._api_error(status, raw, resp_headers, {**secrets, "token": token})
            return loads(raw), resp_headers
        raise AssertionError("unreachable")

    async def _open_stream(self, credential, payload: dict) -> tuple[aiohttp.ClientResponse, str]:
        secrets = credential.secrets if credential else {}
        for attempt in (1, 2):
            token = await self._token(secrets)
            headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream", "Cache-Control": "no-store",
                       **_session_header()}
            try:
                return await open_stream(
                    self.session(),
                    NAME,
                    self._url("/chat/completions"),
                    payload,
                    headers,
                    # An error may echo the access token; it must not reach the client.
                    lambda status, raw, hdrs, hidden={**secrets, "token": token}: self._api_error(status, raw, hdrs, hidden),
                ), token
            except ProviderError as exc:
                if exc.provider_status == 401 and attempt == 1 and self._refreshable(secrets):
                    await TOKENS.invalidate(self._token_key(secrets), token)
                    continue
                raise
        raise AssertionError("unreachable")

    def _api_error(self, status: int, raw: bytes, headers, hidden: dict) -> ProviderError:
        """API errors are {"status", "message"}; `hidden` are values to cut out of the message."""
        if status == 402:
            # The account's token package is spent: our problem, not the client's, and another
            # provider can still answer.
            return ProviderError(
                f"{NAME}: payment required (token package exhausted)", status=502, kind="quota", provider_status=402
            )
        return http_error(NAME, status, raw, headers, hidden)

    async def _not_a_stream(self, resp: aiohttp.ClientResponse, hidden: dict) -> ProviderError:
        """A 200 to a streamed call that is not an event stream. The gigachat SDK refuses it
        (`_check_content_type` in its stream calls: "Expected response Content-Type to be
        text/event-stream"); read as SSE it would look like an empty stream. An API error body
        sent with 200 keeps its own status; anything else is a bad answer, raised before a chunk."""
        raw, _ = await read_limited(resp, ERROR_BODY_BYTES)
        data = loads(raw)
        status = data.get("status") if isinstance(data, dict) else None
        if isinstance(status, int) and not isinstance(status, bool) and 400 <= status <= 599:
            return self._api_error(status, raw, resp.headers, hidden)
        return bad_answer(NAME, f"a stream was asked for, the answer is {resp.content_type or 'untyped'}")

    def _inband_error(self, chunk: dict, hidden: dict) -> ProviderError:
        # Guess: mid-stream errors are undocumented; an event without choices that carries a
        # status/message is read as the API error shape.
        status = chunk.get("status") if isinstance(chunk.get("status"), int) else 502
        message = redact(error_message(chunk), hidden) or "error event in the stream"
        return error_for_status(NAME, status if status >= 400 else 502, message)

    # --- tokens ------------------------------------------------------------------------------------
    @staticmethod
    def _auth_key(secrets: dict) -> str:
        key = secrets.get("authorization_key") or secrets.get("credentials") or ""
        if not key and secrets.get("client_id") and secrets.get("client_secret"):
            key = base64.b64encode(f"{secrets['client_id']}:{secrets['client_secret']}".encode()).decode()
        return key

    def _scope(self, secrets: dict) -> str:
        return secrets.get("scope") or self.config.options.get("scope") or DEFAULT_SCOPE

    def _refreshable(self, secrets: dict) -> bool:
        return bool(self._auth_key(secrets) or (secrets.get("user") and secrets.get("password")))

    def _token_key(self, secrets: dict) -> str:
        if self._auth_key(secrets):
            return credential_key("gigachat", self.config.auth_url or DEFAULT_AUTH_URL, self._scope(secrets), self._auth_key(secrets))
        return credential_key("gigachat-user", self.config.base_url, secrets.get("user", ""), secrets.get("password", ""))

    async def _token(self, secrets: dict, *, force: bool = False) -> str:
        if self._auth_key(secrets):
            key, scope = self._auth_key(secrets), self._scope(secrets)
            return await TOKENS.get(self._token_key(secrets), lambda: self._fetch_oauth(key, scope), force=force)
        if secrets.get("user") and secrets.get("password"):
            return await TOKENS.get(self._token_key(secrets), lambda: self._fetch_user_token(secrets), force=force)
        if secrets.get("access_token"):
            return secrets["access_token"]
        raise ProviderError(f"{NAME}: the credential holds no authorization_key, user/password or access_token", kind="auth")

    async def _fetch_oauth(self, key: str, scope: str) -> Token:
        headers = {
            "Authorization": f"Basic {key}",
            "RqUID": str(uuid.uuid4()),  # mandatory, and it must be a uuid4
            "Accept": "application/json",
        }
        data = await self._auth_post(self.config.auth_url or DEFAULT_AUTH_URL, headers, {"scope": scope})
        if not isinstance(data, dict) or not _usable_token(data.get("access_token")):
            raise bad_answer(NAME, "OAuth answer without access_token")
        return Token(data["access_token"], _expiry(data.get("expires_at")))

    async def _fetch_user_token(self, secrets: dict) -> Token:
        headers = {"Authorization": aiohttp.BasicAuth(secrets["user"], secrets["password"]).encode(), "Accept": "application/json"}
        data = await self._auth_post(self._url("/token"), headers, None)
        if not isinstance(data, dict) or not _usable_token(data.get("tok")):
            raise bad_answer(NAME, "token answer without tok")
        return Token(data["tok"], _expiry(data.get("exp")))

    async def _auth_post(self, url: str, headers: dict, form: dict | None):
        # Same session, hence the same SSL context (ca_bundle, client certificate) as the API calls.
        status, raw, resp_headers = await send(self.session(), f"{NAME} OAuth", "POST", url, headers, form=form)
        if status != 200:
            raise _auth_error(status, raw, resp_headers, headers)
        return loads(raw)


def _session_header() -> dict:
    """X-Session-ID keeps a conversation on one entry of GigaChat's prompt cache, whose reused
    tokens are billed at a discount (gigachat.md §4; gpt2giga docs "Prompt caching": hit rate 100%
    with a fixed id, 87% without). The client sends it as an X-Session-ID header on /v1 (the
    gateway scopes it to the tenant, base.session_id), as gpt2giga forwards it."""
    value = session_id.get()
    return {"X-Session-ID": value} if value else {}


def _auth_error(status: int, raw: bytes, headers, sent: dict) -> ProviderError:
    """OAuth errors are {"code", "message"}; any 4xx there is our credential's fault, not the client's."""
    hidden = {"authorization": sent.get("Authorization", "").partition(" ")[2]}  # the key we sent
    if status == 429 or status >= 500:
        return http_error(f"{NAME} OAuth", status, raw, headers, hidden)
    data = loads(raw)
    message = redact(error_message(data, raw), hidden)
    if isinstance(data, dict) and data.get("code") is not None:  # the OAuth host's numeric code (gigachat.md §3.1)
        message = f"{message} (code {data['code']})"
    return ProviderError(f"{NAME} OAuth: {message or f'HTTP {status}'}", status=502, kind="auth", provider_status=status)


def _usable_token(value) -> bool:
    """A token we can put in a header: printable text (a newline would make aiohttp refuse the call)."""
    return isinstance(value, str) and bool(value) and value.isprintable()


def _expiry(value) -> float:
    """`expires_at` is Unix milliseconds (a seconds-sized value is accepted too)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return time.time() + TOKEN_LIFETIME
    if not number > 0:  # NaN too: it would make every token look stale at once
        return time.time() + TOKEN_LIFETIME
    # Guess for the /token flow's `exp`, whose unit is uncertain: anything past year 5000 in
    # seconds must be milliseconds.
    return number / 1000 if number > 1e11 else number
