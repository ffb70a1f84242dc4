"""YandexGPT through the native Foundation Models REST API. Wire facts: shared/providers/yandexgpt.md.

Credentials (`credential.secrets`), one of:
  * `api_key` — sent as `Authorization: Api-Key <key>`.
  * `service_account_key` — the authorized-key JSON (`id`, `service_account_id`, `private_key`),
    as an object or a string: a PS256 JWT is exchanged at `config.auth_url` (default the real IAM
    URL) for an IAM token, cached and shared through tokens.py.
  * `oauth_token` — a Yandex-account OAuth token, exchanged the same way.
  * `iam_token` — a token obtained elsewhere; used until a 401. The credential's `token_owner`
    says whose it is (user: sent with x-folder-id; service_account: without).
  `folder_id` comes from the secrets, else `config.options["folder_id"]`.

Parameters:
  * not sent, the gateway handles them (supports_n / supports_stop are False): `n`, `stop`.
  * dropped silently: `stream_options` (usage always arrives on the stream's last line), `user`.
  * refused with unsupported_parameter: `presence_penalty`, `frequency_penalty`, `top_p` other
    than 1 (there is no nucleus sampling knob), `seed`, `logit_bias`, image content parts.
  * passed: `parallel_tool_calls` → `parallelToolCalls` (with tools).
  * translated: `temperature` (clamped to Yandex's maximum of 1: both mean "the most random the
    provider offers"), `max_tokens` → `maxTokens` (a string), tools, tool_choice, `response_format`
    → `jsonObject` / `jsonSchema`, `thinking` / `reasoning_effort` → `reasoningOptions.mode`.

Yandex tool calls carry no ids: we hand out `call_<index>_<name>`; a result goes back under the
function name its id names in the history (the id's own suffix is the fallback when the history
lacks the call), and the results of one turn in the order of their calls, since Yandex pairs
them by name and order.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import aiohttp

from apps.common.rates import parse_rate

from .base import (
    UPSTREAM_REQUEST_ID,
    ChatResult,
    EmbeddingResult,
    ProviderAdapter,
    ProviderError,
    StreamChunk,
    StreamRevisedError,
    Usage,
    error_for_status,
    pace,
)
from .shaping import (
    check_no_penalties,
    dump_arguments,
    history_tool_names,
    parse_arguments,
    text_of,
)
from .sse import iter_ndjson
from .tokens import TOKENS, Token, credential_key
from .transport import (
    SHAPE_ERRORS,
    bad_answer,
    cut_off,
    error_message,
    holding,
    http_error,
    loads,
    open_stream,
    opening_chunk,
    parse_json,
    redact,
    send,
    stream_limit,
    text,
    unsupported,
    vector,
    wrong_shape,
)

NAME = "YandexGPT"
IAM_URL = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
COMPLETION = "/foundationModels/v1/completion"
EMBEDDING = "/foundationModels/v1/textEmbedding"
TOKENIZE = "/foundationModels/v1/tokenize"
TOKENIZE_COMPLETION = "/foundationModels/v1/tokenizeCompletion"
MAX_TEMPERATURE = 1.0
# The SDK re-fetches IAM tokens hourly although they live up to 12 h; so do we, so that a
# revoked key stops working within the hour.
IAM_REFRESH_PERIOD = 3600
log = logging.getLogger(__name__)
EMBEDDING_CONCURRENCY = 8  # calls in flight at once per request (the pacing below keeps to the quota)
EMBEDDING_RATE = "10/s"  # the default embeddings quota per account (../shared/providers/yandexgpt.md §9)
EMBEDDING_RESENDS = 3  # a text answered 429 is sent again at most this often (the fan-out's, see embeddings)
MAX_RESEND_WAIT = 2.0  # seconds: a longer Retry-After fails the text rather than hold the request
FINISH_REASONS = {
    "ALTERNATIVE_STATUS_FINAL": "stop",
    "ALTERNATIVE_STATUS_TRUNCATED_FINAL": "length",
    "ALTERNATIVE_STATUS_CONTENT_FILTER": "content_filter",
    "ALTERNATIVE_STATUS_TOOL_CALLS": "tool_calls",
    "ALTERNATIVE_STATUS_UNSPECIFIED": "stop",  # Guess: never seen on the wire
}
PARTIAL = "ALTERNATIVE_STATUS_PARTIAL"
FILTERED = "ALTERNATIVE_STATUS_CONTENT_FILTER"
TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "REQUIRED"}


# --- model URIs --------------------------------------------------------------------------------
def model_uri(model: str, folder: str, scheme: str = "gpt") -> str:
    """`yandexgpt` → gpt://<folder>/yandexgpt/latest; a branch or a full URI is kept. A fine-tuned
    model is `<base>/<branch>@<suffix>` (yandexgpt.md §3: gpt://<folder>/<base_model>/<version>@<suffix>),
    so `yandexgpt-lite@<suffix>` given without its branch gets /latest before the suffix."""
    if "://" in model:
        return model
    if not folder:
        raise ProviderError(f"{NAME}: no folder_id in the credential or the provider options", kind="configuration")
    if "/" in model:
        return f"{scheme}://{folder}/{model}"
    base, at, suffix = model.partition("@")
    return f"{scheme}://{folder}/{base}/latest{at}{suffix}"


# --- request translation -----------------------------------------------------------------------
def build_request(body: dict, model: str, folder: str) -> dict:
    check_no_penalties(body, NAME)
    if body.get("top_p") not in (None, 1, 1.0):
        raise unsupported(NAME, "top_p")
    for name in ("seed", "logit_bias"):  # completionOptions has neither (yandexgpt.md §4); both change the answer
        if body.get(name) is not None:
            raise unsupported(NAME, name)
    options: dict = {"stream": bool(body.get("stream"))}
    if body.get("temperature") is not None:
        options["temperature"] = min(float(body["temperature"]), MAX_TEMPERATURE)
    if body.get("max_tokens") is not None:
        options["maxTokens"] = str(body["max_tokens"])  # Int64Value: a string in proto3 JSON
    mode = _reasoning_mode(body)
    if mode:
        options["reasoningOptions"] = {"mode": mode}
    payload: dict = {"modelUri": model_uri(model, folder), "completionOptions": options, "messages": build_messages(body["messages"])}
    tools = body.get("tools") or []
    if tools:
        payload["tools"] = [{"function": _function_spec(t["function"])} for t in tools]
        choice = body.get("tool_choice")
        if isinstance(choice, dict):
            payload["toolChoice"] = {"functionName": choice["function"]["name"]}
        elif choice:
            payload["toolChoice"] = {"mode": TOOL_CHOICE_MODES[choice]}
        if body.get("parallel_tool_calls") is not None:
            payload["parallelToolCalls"] = body["parallel_tool_calls"]  # BoolValue, default true (yandexgpt.md §4)
    elif body.get("tool_choice") not in (None, "none", "auto"):
        raise unsupported(NAME, "tool_choice", "no tools were given")
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_object":
        payload["jsonObject"] = True
    elif fmt.get("type") == "json_schema":
        payload["jsonSchema"] = {"schema": (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}}
    return payload


def build_messages(messages: list[dict]) -> list[dict]:
    out: list[dict] = []
    names = history_tool_names(messages)
    positions = _call_positions(messages)
    groups: list[tuple[list, list]] = []  # (toolResults, their calls' positions)
    for i, message in enumerate(messages):
        role, where = message["role"], f"messages[{i}]"
        if role in ("tool", "function"):
            call_id = message.get("tool_call_id") or ""
            name = message.get("name") if role == "function" else names.get(call_id) or _name_from_id(call_id) or message.get("name")
            if not name:
                raise ProviderError(f"{NAME}: {where}.tool_call_id {call_id!r} matches no earlier tool call", status=400, kind="bad_request")
            result = {"functionResult": {"name": name, "content": text_of(message["content"], NAME, where)}}
            # Consecutive results belong to one toolResultList message, sent as role user (as the SDK does).
            if not (out and "toolResultList" in out[-1]):
                out.append({"role": "user", "toolResultList": {"toolResults": []}})
                groups.append((out[-1]["toolResultList"]["toolResults"], []))
            groups[-1][0].append(result)
            groups[-1][1].append(positions.get(call_id, _index_from_id(call_id)))
            continue
        text = text_of(message.get("content"), NAME, where)
        if role == "assistant":
            calls = list(message.get("tool_calls") or ())
            if not calls and message.get("function_call"):
                calls = [{"function": message["function_call"]}]
            if calls:
                # A message holds exactly one of text / toolCallList. # Guess: text said beside
                # the calls goes first as its own assistant message.
                if text:
                    out.append({"role": "assistant", "text": text})
                call_list = [
                    {"functionCall": {"name": c["function"]["name"], "arguments": parse_arguments(c["function"].get("arguments"), NAME)}}
                    for c in calls
                ]
                out.append({"role": "assistant", "toolCallList": {"toolCalls": call_list}})
                continue
            out.append({"role": "assistant", "text": text})
        elif role in ("system", "developer"):
            out.append({"role": "system", "text": text})
        else:
            out.append({"role": "user", "text": text})
    for results, keys in groups:
        # Yandex pairs results with calls by name and order (yandexgpt.md §4.3): a client may
        # answer two calls of one function in any order, so the results go back in the calls'
        # order — the position of the call its tool_call_id names (our ids carry it too).
        if keys != sorted(keys):
            results[:] = [r for _, r in sorted(zip(keys, results, strict=True), key=lambda pair: pair[0])]
    return out


def _call_positions(messages: list[dict]) -> dict[str, int]:
    """tool_call_id → the call's position in its assistant message."""
    positions = {}
    for message in messages:
        for k, call in enumerate(message.get("tool_calls") or ()):
            positions[call["id"]] = k
    return positions


def _index_from_id(call_id: str) -> int:
    match = re.fullmatch(r"call_(\d{1,6})_.+", call_id or "")
    return int(match.group(1)) if match else 1_000_000  # unknown: after the known ones, in arrival order


def tool_call_id(index: int, name: str) -> str:
    return f"call_{index}_{name}"


def _name_from_id(call_id: str) -> str | None:
    match = re.fullmatch(r"call_\d+_(.+)", call_id or "")
    return match.group(1) if match else None


def _function_spec(fn: dict) -> dict:
    spec = {"name": fn["name"]}
    if fn.get("description"):
        spec["description"] = fn["description"]
    spec["parameters"] = fn.get("parameters") or {"type": "object", "properties": {}}
    if fn.get("strict") is not None:
        spec["strict"] = fn["strict"]
    return spec


def _reasoning_mode(body: dict) -> str | None:
    # Yandex only hides reasoning (ENABLED_HIDDEN), so effort levels collapse to on/off.
    if body.get("thinking") is not None:
        return "ENABLED_HIDDEN" if body["thinking"] else "DISABLED"
    effort = body.get("reasoning_effort")
    if effort:
        return "DISABLED" if effort == "minimal" else "ENABLED_HIDDEN"  # Guess: minimal = no reasoning
    return None


# --- answer translation ------------------------------------------------------------------------
def parse_usage(data: dict | None) -> Usage | None:
    if not data:
        return None
    details = data.get("completionTokensDetails") or {}
    return Usage(
        prompt_tokens=int(data.get("inputTextTokens") or 0),
        completion_tokens=int(data.get("completionTokens") or 0),
        reasoning_tokens=int(details.get("reasoningTokens") or 0),
    )


def _tool_calls(message: dict) -> list[dict] | None:
    calls = ((message.get("toolCallList") or {}).get("toolCalls")) or []
    out = []
    for k, call in enumerate(calls):
        fn = call.get("functionCall") or {}
        name = text(fn.get("name")) or ""
        out.append({"id": tool_call_id(k, name), "type": "function", "function": {"name": name, "arguments": dump_arguments(fn.get("arguments"), NAME)}})
    return out or None


def parse_alternative(alt: dict, index: int) -> dict:
    message = alt.get("message") or {}
    out: dict = {"role": "assistant", "content": text(message.get("text")) or ""}
    calls = _tool_calls(message)
    if calls:
        out["tool_calls"] = calls
        out["content"] = out["content"] or None
    return {"index": index, "message": out, "finish_reason": FINISH_REASONS.get(alt.get("status"), "stop")}


def _result(data) -> dict:
    if not isinstance(data, dict):
        raise bad_answer(NAME, "not a JSON object")
    # The REST gateway wraps every message in "result". Guess: an unwrapped body (as async
    # operations return it) is accepted too.
    result = data.get("result", data)
    if not isinstance(result, dict) or not isinstance(result.get("alternatives"), list) or not result["alternatives"]:
        raise bad_answer(NAME, "no alternatives")
    return result


def _iam_expiry(value) -> float:
    """`expiresAt` is RFC 3339 with up to nanoseconds; Python parses microseconds at most."""
    cap = time.time() + IAM_REFRESH_PERIOD
    if not isinstance(value, str):
        return cap
    text = re.sub(r"(\.\d{6})\d+", r"\1", value).replace("Z", "+00:00")
    try:
        return min(datetime.fromisoformat(text).timestamp(), cap)
    except ValueError:
        return cap


class CumulativeText:
    """Turns YandexGPT's growing-prefix stream into deltas, refusing rewrites of sent text."""

    __slots__ = ("sent", "core")

    def __init__(self) -> None:
        self.sent = ""
        self.core = 0  # the length of `sent` without its trailing whitespace

    def delta(self, text: str) -> str:
        # Lengths first: no copy of what was sent per line, which an upstream repeating a short
        # prefix of a long text would otherwise make quadratic.
        if self.core <= len(text) <= len(self.sent) and self.sent.startswith(text):
            return ""  # only trailing whitespace was trimmed (a final line may be stripped): nothing to take back
        if not text.startswith(self.sent):
            # The client already has the old prefix; we cannot take it back.
            raise StreamRevisedError()
        new = text[len(self.sent) :]
        self.sent, self.core = text, len(text.rstrip())
        return new


# --- the adapter --------------------------------------------------------------------------------
class YandexGPTAdapter(ProviderAdapter):
    kind = "yandexgpt"
    supports_n = False
    supports_stop = False
    supports_images = False
    supports_dimensions = True  # sent as textEmbedding `dim`, for models with several sizes

    async def chat(self, body: dict, model: str) -> ChatResult:
        async with self.slot() as credential:
            secrets = self._secrets(credential)
            payload = build_request({**body, "stream": False}, model, self._folder(secrets))
            data, headers = await self._post(secrets, COMPLETION, payload, _owner(credential))
        result = _result(data)
        try:
            return ChatResult(
                choices=[parse_alternative(alt, i) for i, alt in enumerate(result["alternatives"])],
                usage=parse_usage(result.get("usage")) or Usage(estimated=True),
                provider_request_id=_request_id(headers),
                upstream_model=_upstream_model(model, result),
            )
        except SHAPE_ERRORS as exc:
            raise bad_answer(NAME, wrong_shape(exc)) from None

    async def stream_chat(self, body: dict, model: str) -> AsyncIterator[StreamChunk]:
        async with self.slot() as credential:
            secrets = self._secrets(credential)
            payload = build_request({**body, "stream": True}, model, self._folder(secrets))
            resp = await self._open_stream(secrets, payload, _owner(credential))
            async with holding(resp, NAME):
                head = opening_chunk(_request_id(resp.headers))
                texts: dict[int, CumulativeText] = {}
                done: set[int] = set()
                async for line in iter_ndjson(resp.content, stream_limit()):
                    obj = parse_json(NAME, line)
                    if "error" in obj:
                        raise _inband_error(obj["error"])
                    result = obj.get("result")
                    if not isinstance(result, dict) or not isinstance(result.get("alternatives"), list):
                        raise bad_answer(NAME, "a stream line without result.alternatives")
                    for i, alt in enumerate(result["alternatives"]):
                        if i in done:
                            continue
                        for chunk in self._alternative_chunks(alt, i, texts.setdefault(i, CumulativeText())):
                            if head is not None:
                                yield head
                                head = None
                            if chunk.finish_reason:
                                done.add(i)
                            yield chunk
                    if done and len(done) >= len(result["alternatives"]):
                        # The last line carries the final usage; anything after it is ignored.
                        usage = parse_usage(result.get("usage"))
                        if usage:
                            yield StreamChunk(usage=usage)
                        return
                raise cut_off(NAME)  # NDJSON has no end marker: only a final status ends a stream

    @staticmethod
    def _alternative_chunks(alt: dict, index: int, cumulative: CumulativeText) -> list[StreamChunk]:
        message = alt.get("message") or {}
        out = []
        status = alt.get("status")
        if status == FILTERED:
            # The filter's canned refusal replaces the text so far rather than extending it
            # (yandex-cloud-ml-sdk's LangChain integration takes the whole text as the delta on
            # CONTENT_FILTER). What was sent cannot be taken back, and a refusal glued to half an
            # answer reads as neither: the refusal is sent only when nothing was, and the stream
            # ends with content_filter, as OpenAI does when it omits content.
            refusal = text(message.get("text")) or ""
            if refusal and not cumulative.sent:
                cumulative.sent = refusal
                out.append(StreamChunk(delta={"content": refusal}, index=index))
            out.append(StreamChunk(delta={}, finish_reason="content_filter", index=index))
            return out
        if message.get("text") is not None:
            new = cumulative.delta(text(message["text"]))
            if new:
                out.append(StreamChunk(delta={"content": new}, index=index))
        calls = _tool_calls(message)
        if calls:  # tool calls arrive whole, in one line
            out.append(StreamChunk(delta={"tool_calls": [{"index": k, **c} for k, c in enumerate(calls)]}, index=index))
        if status and status != PARTIAL:
            out.append(StreamChunk(delta={}, finish_reason=FINISH_REASONS.get(status, "stop"), index=index))
        return out

    async def embeddings(self, inputs: list[str], model: str, body: dict) -> EmbeddingResult:
        limit = asyncio.Semaphore(int(self.config.options.get("embedding_concurrency") or EMBEDDING_CONCURRENCY))
        rate = self._embedding_rate

        async def call(text: str) -> tuple[dict, dict]:
            guard = self.slot()
            async with limit, guard as credential:
                if rate is not None:  # the account's embedding quota, shared by every process (apps.limits);
                    # a batch larger than it waits its turn, within the request's time
                    await pace(f"{guard.slot.key}:embeddings", rate, NAME, max_wait=self.timeout().total)
                secrets = self._secrets(credential)
                payload = {"modelUri": model_uri(model, self._folder(secrets), "emb"), "text": text}
                if body.get("dimensions"):
                    payload["dim"] = str(body["dimensions"])
                return await self._post(secrets, EMBEDDING, payload, _owner(credential))

        async def one(text: str) -> tuple[list[float], int, str]:
            # A text refused with 429 (the quota, when other clients share the account) is sent again after
            # the wait Yandex asks for, at most EMBEDDING_RESENDS times and within the request's deadline (the
            # router's timeout cancels this fan-out): like n > 1, this is the fan-out's own work — the call
            # that fails for good fails the request, and the router's retries and fallbacks are not involved.
            for resend in range(EMBEDDING_RESENDS + 1):
                try:
                    data, headers = await call(text)
                    break
                except ProviderError as exc:
                    if exc.kind != "rate_limited" or resend == EMBEDDING_RESENDS:
                        raise
                    await asyncio.sleep(min(exc.retry_after or 1.0, MAX_RESEND_WAIT))
            if not isinstance(data, dict) or not isinstance(data.get("embedding"), list):
                raise bad_answer(NAME, "no embedding")
            try:
                return vector(data["embedding"]), int(data.get("numTokens") or 0), _request_id(headers)
            except SHAPE_ERRORS as exc:
                raise bad_answer(NAME, wrong_shape(exc)) from None

        # One text per call (the API has no batching), run side by side; the first failure
        # cancels the rest, since the whole request fails anyway.
        tasks = [asyncio.ensure_future(one(text)) for text in inputs]
        try:
            results = await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        return EmbeddingResult(
            vectors=[r[0] for r in results],
            usage=Usage(prompt_tokens=sum(r[1] for r in results)),
            provider_request_id=results[0][2] if results else "",
        )

    @property
    def _embedding_rate(self):
        """Embedding calls per period per account: Yandex's documented 10/s (../shared/providers/yandexgpt.md
        §9) unless the provider's options say `embedding_rate` ("20/s"; "" turns pacing off)."""
        text = self.config.options.get("embedding_rate", EMBEDDING_RATE)
        try:
            return parse_rate(text) if text else None
        except ValueError:
            log.warning("%s: options.embedding_rate %r is not a rate; pacing at %s", self.config.name, text, EMBEDDING_RATE)
            return parse_rate(EMBEDDING_RATE)

    async def count_tokens(self, body: dict, model: str) -> int | None:
        """POST /foundationModels/v1/tokenizeCompletion (Text Generation API, REST: Tokenizer.TokenizeCompletion;
        yandexgpt.md §6): the very CompletionRequest the chat would send → `{"tokens": [...], "modelVersion"}`,
        so messages, tool calls and tool definitions are counted as the model sees them. Free of charge."""
        async with self.slot() as credential:
            secrets = self._secrets(credential)
            payload = build_request({**body, "stream": False}, model, self._folder(secrets))
            data, _ = await self._post(secrets, TOKENIZE_COMPLETION, payload, _owner(credential))
        tokens = data.get("tokens") if isinstance(data, dict) else None
        if not isinstance(tokens, list):
            raise bad_answer(NAME, "no token list")
        return len(tokens)

    async def list_models(self) -> list[dict]:
        # The native API has no model list: the operator names the models in the options.
        models = self.config.options.get("models") or []
        return [m if isinstance(m, dict) else {"id": m, "owned_by": "yandex"} for m in models]

    async def health_check(self) -> None:
        """An IAM exchange when a key is configured, else a free tokenize call; never a paid completion."""
        async with self.slot() as credential:
            secrets = self._secrets(credential)
            if self._refreshable(secrets):
                await self._token(secrets, force=True)
                return
            model = self.config.options.get("health_model", "yandexgpt-lite")
            payload = {"modelUri": model_uri(model, self._folder(secrets)), "text": "ping"}
            await self._post(secrets, TOKENIZE, payload, _owner(credential))

    # --- calls with one re-authentication on 401 ----------------------------------------------
    @staticmethod
    def _secrets(credential) -> dict:
        return credential.secrets if credential else {}

    def _folder(self, secrets: dict) -> str:
        return secrets.get("folder_id") or self.config.options.get("folder_id") or ""

    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    def _headers(self, secrets: dict, auth: str, owner: str) -> dict:
        # The SDK sends a uuid4 here and Yandex echoes it (../shared/providers/yandexgpt.md §2, yandex-cloud-ml-sdk
        # `_client.py`); ours is the attempt's id. # Guess: any short ASCII id is taken, as the echo suggests.
        headers = {"Authorization": auth, "x-client-request-id": UPSTREAM_REQUEST_ID.get() or str(uuid.uuid4())}
        if not self.config.options.get("data_logging", False):
            headers["x-data-logging-enabled"] = "false"  # ask Yandex not to keep the prompts
        # A user account's IAM token reaches many folders and must name one; with a service
        # account's key or token the docs say not to send it (a different folder is a 400,
        # yandexgpt.md §2). A Passport OAuth token is always a user's; an iam_token's owner is
        # stated with the credential (token_owner), since the token does not say. Unstated (a
        # credential stored before the field existed): sent, as it always was.
        folder = self._folder(secrets)
        if folder and (secrets.get("oauth_token") or (secrets.get("iam_token") and owner != "service_account")):
            headers["x-folder-id"] = folder
        return headers

    async def _post(self, secrets: dict, path: str, payload: dict, owner: str):
        for attempt in (1, 2):
            auth = await self._authorization(secrets)
            status, raw, headers = await send(self.session(), NAME, "POST", self._url(path), self._headers(secrets, auth, owner), json_body=payload)
            if status == 401 and attempt == 1 and self._refreshable(secrets):
                await TOKENS.invalidate(self._token_key(secrets), auth.removeprefix("Bearer "))
                continue
            if not 200 <= status < 300:
                raise http_error(NAME, status, raw, headers, _hidden(secrets, auth))
            return loads(raw), headers
        raise AssertionError("unreachable")

    async def _open_stream(self, secrets: dict, payload: dict, owner: str) -> aiohttp.ClientResponse:
        for attempt in (1, 2):
            auth = await self._authorization(secrets)
            try:
                return await open_stream(
                    self.session(),
                    NAME,
                    self._url(COMPLETION),
                    payload,
                    self._headers(secrets, auth, owner),
                    lambda status, raw, hdrs, hidden=_hidden(secrets, auth): http_error(NAME, status, raw, hdrs, hidden),
                )
            except ProviderError as exc:
                if exc.provider_status == 401 and attempt == 1 and self._refreshable(secrets):
                    await TOKENS.invalidate(self._token_key(secrets), auth.removeprefix("Bearer "))
                    continue
                raise
        raise AssertionError("unreachable")

    # --- IAM -------------------------------------------------------------------------------------
    @staticmethod
    def _refreshable(secrets: dict) -> bool:
        return bool(secrets.get("service_account_key") or secrets.get("oauth_token"))

    def _token_key(self, secrets: dict) -> str:
        sa = secrets.get("service_account_key")
        material = json.dumps(sa, sort_keys=True) if sa else secrets.get("oauth_token", "")
        return credential_key("yandex-iam", self.config.auth_url or IAM_URL, material)

    async def _authorization(self, secrets: dict) -> str:
        if secrets.get("api_key"):
            return f"Api-Key {secrets['api_key']}"
        if self._refreshable(secrets):
            return f"Bearer {await self._token(secrets)}"
        if secrets.get("iam_token"):
            return f"Bearer {secrets['iam_token']}"
        raise ProviderError(f"{NAME}: the credential holds no api_key, service_account_key, oauth_token or iam_token", kind="auth")

    async def _token(self, secrets: dict, *, force: bool = False) -> str:
        return await TOKENS.get(self._token_key(secrets), lambda: self._exchange(secrets), force=force)

    async def _exchange(self, secrets: dict) -> Token:
        if secrets.get("service_account_key"):
            body = {"jwt": service_account_jwt(secrets["service_account_key"])}
        else:
            body = {"yandexPassportOauthToken": secrets["oauth_token"]}
        provider = f"{NAME} IAM"
        status, raw, headers = await send(self.session(), provider, "POST", self.config.auth_url or IAM_URL, {}, json_body=body)
        hidden = {**secrets, **body}  # the JWT or the OAuth token we sent
        if status == 429 or status >= 500:
            raise http_error(provider, status, raw, headers, hidden)
        if status != 200:
            # Any 4xx here means our key is wrong: not the client's fault.
            message = redact(error_message(loads(raw), raw), hidden) or f"HTTP {status}"
            raise ProviderError(f"{provider}: {message}", status=502, kind="auth", provider_status=status)
        data = loads(raw)
        token = data.get("iamToken") if isinstance(data, dict) else None
        # Printable text only: a newline in it would make aiohttp refuse every call.
        if not isinstance(token, str) or not token or not token.isprintable():
            raise bad_answer(provider, "no iamToken")
        return Token(data["iamToken"], _iam_expiry(data.get("expiresAt")))


def service_account_jwt(key, now: float | None = None) -> str:
    """The JWT Yandex IAM trades for a token: PS256, kid = key id, aud = the real IAM URL, one hour."""
    import jwt  # PyJWT; imported here so the other adapters do not pay for it

    if isinstance(key, str):
        key = json.loads(key)
    private_key = key["private_key"]
    # Downloaded keys start with a "PLEASE DO NOT REMOVE THIS LINE! Yandex.Cloud SA Key ID ..." line.
    private_key = private_key[private_key.find("-----BEGIN") :] if "-----BEGIN" in private_key else private_key
    issued = int(now if now is not None else time.time())
    claims = {"iss": key["service_account_id"], "aud": IAM_URL, "iat": issued, "exp": issued + 3600}
    return jwt.encode(claims, private_key, algorithm="PS256", headers={"kid": key["id"]})


def _inband_error(error) -> ProviderError:
    """`{"error": {grpcCode, httpCode, message, httpStatus}}` arriving after the 200 status.

    Guess: the docs give this shape only as "the gateway's mid-stream error convention" [L].
    """
    if isinstance(error, dict):
        status = error.get("httpCode") if isinstance(error.get("httpCode"), int) else 502
        return error_for_status(NAME, status if status >= 400 else 502, str(error.get("message") or "error in the stream"))
    return error_for_status(NAME, 502, str(error))


def _owner(credential) -> str:
    return credential.token_owner if credential else ""


def _hidden(secrets: dict, authorization: str) -> dict:
    """Values an error message must not carry back: the secrets and the token or key we sent."""
    return {**secrets, "authorization": authorization.partition(" ")[2]}


def _request_id(headers) -> str:
    return headers.get("x-request-id") or headers.get("x-client-request-id") or ""


def _upstream_model(model: str, result: dict) -> str:
    version = text(result.get("modelVersion"))
    return f"{model}:{version}" if version else model
