"""GigaChat (Sber), the classic v1 REST contract (/api/v1). Wire facts: shared/providers/gigachat.md.
Request translation lives in gigachat_request.py, schema normalisation in gigachat_schema.py.

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

import asyncio
import base64
import logging
import time
import uuid
from collections.abc import AsyncIterator

import aiohttp
import orjson

from .base import (
    UPSTREAM_REQUEST_ID,
    ChatResult,
    EmbeddingResult,
    ProviderAdapter,
    ProviderError,
    StreamChunk,
    Usage,
    error_for_status,
    session_id,
)
from .gigachat_files import FILE_ID, VISION_MODELS, image_bytes, images_of
from .gigachat_request import build_messages, build_request, from_gigachat_name
from .shaping import (
    dump_arguments,
    new_call_id,
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
__all__ = ["GigaChatAdapter", "build_messages", "build_request", "parse_choice", "stream_event"]
log = logging.getLogger(__name__)
DEFAULT_AUTH_URL = "https://ngw.devices.sberbank.ru:9443/api/v2/oauth"
DEFAULT_SCOPE = "GIGACHAT_API_PERS"
TOKEN_LIFETIME = 30 * 60  # when an OAuth answer carries no expiry
FINISH_REASONS = {"stop": "stop", "length": "length", "function_call": "tool_calls", "blacklist": "content_filter"}


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
    supports_images = True  # uploaded through POST /files first (gigachat_files.py); vision models only

    @classmethod
    def takes_images(cls, model: str) -> bool:
        return model.startswith(VISION_MODELS)
    supports_dimensions = False

    async def chat(self, body: dict, model: str) -> ChatResult:
        images = images_of(body["messages"], model)
        async with self.slot() as credential:
            files = await self._upload(credential, images) if images else {}
            try:
                payload = build_request({**body, "stream": False}, model, self.config.options, files)
                data, headers = await self._call(credential, "POST", "/chat/completions", payload)
            finally:
                if files:
                    await self._delete(credential, files)
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
        images = images_of(body["messages"], model)
        async with self.slot() as credential:
            files = await self._upload(credential, images) if images else {}
            try:
                async for chunk in self._stream(credential, body, model, files):
                    yield chunk
            finally:
                if files:  # the answer is over, whichever way: the images go (on a cancellation too)
                    await asyncio.shield(self._delete(credential, files))

    async def _stream(self, credential, body: dict, model: str, files: dict) -> AsyncIterator[StreamChunk]:
        payload = build_request({**body, "stream": True}, model, self.config.options, files)
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

    async def balance(self) -> dict[str, float] | None:
        """Prepaid tokens left per usage kind (GET /balance; gigachat SDK `get_balance`, fixture balance.json).
        Postpaid accounts are refused it (403 "Permission denied", the SDK's ForbiddenError): None then."""
        try:
            async with self.slot() as credential:
                data, _ = await self._call(credential, "GET", "/balance", None)
        except ProviderError as exc:
            if exc.status == 403:
                return None
            raise
        rows = data.get("balance") if isinstance(data, dict) else None
        if not isinstance(rows, list):
            raise bad_answer(NAME, "no balance list")
        return {text(row["usage"])[:64]: float(row["value"]) for row in rows[:50]
                if isinstance(row, dict) and "usage" in row and isinstance(row.get("value"), int | float)}

    async def count_tokens(self, body: dict, model: str) -> int | None:
        """POST /tokens/count (gigachat SDK `tokens_count`, models/tokens_count.py; gigachat.md §5.5):
        `{"model", "input": [texts]}` → a bare array of `{"object": "tokens", "tokens", "characters"}`, one
        per text. It counts texts, not a conversation: the texts are what the chat request would send
        (messages as translated, function calls' arguments, function definitions), so the count leaves
        out only GigaChat's few framing tokens per message."""
        payload = build_request({**body, "stream": False}, model, self.config.options)
        texts = [m["content"] for m in payload["messages"] if m.get("content")]
        texts += [dump_arguments(m["function_call"].get("arguments"), NAME) for m in payload["messages"] if m.get("function_call")]
        texts += [orjson.dumps(f).decode() for f in payload.get("functions", ())]
        if not texts:
            return 0
        async with self.slot() as credential:
            data, _ = await self._call(credential, "POST", "/tokens/count", {"model": model, "input": texts})
        if not isinstance(data, list) or len(data) != len(texts):
            raise bad_answer(NAME, "token counts do not match the input")
        try:
            return sum(int(row["tokens"]) for row in data)
        except SHAPE_ERRORS as exc:
            raise bad_answer(NAME, wrong_shape(exc)) from None

    # --- calls with one re-authentication on 401 ----------------------------------------------
    def _url(self, path: str) -> str:
        return self.config.base_url.rstrip("/") + path

    async def _upload(self, credential, images) -> dict[int, str]:
        """Upload the request's images (gigachat_files.py): {message index: file id}. On any failure, what
        was uploaded is deleted before the error goes on."""
        files: dict[int, str] = {}
        try:
            for image in images:
                raw, mime = await image_bytes(image)

                def form(raw=raw, mime=mime) -> aiohttp.FormData:  # built again for a retry after a 401
                    data = aiohttp.FormData()
                    data.add_field("file", raw, filename="image." + mime.split("/")[1], content_type=mime)
                    data.add_field("purpose", "general")
                    return data

                data, _ = await self._call(credential, "POST", "/files", None, form=form)
                file_id = data.get("id") if isinstance(data, dict) else None
                if not isinstance(file_id, str) or not FILE_ID.fullmatch(file_id):
                    raise bad_answer(NAME, "no file id for an uploaded image")
                files[image.message] = file_id
        except BaseException:
            await asyncio.shield(self._delete(credential, files))
            raise
        return files

    async def _delete(self, credential, files: dict[int, str]) -> None:
        """Delete uploaded images (after the answer, whichever way it ended); a failure is logged, never raised."""
        for file_id in files.values():
            try:
                async with asyncio.timeout(5):
                    await self._call(credential, "POST", f"/files/{file_id}/delete", None)
            except Exception as exc:
                log.warning("%s: an uploaded image could not be deleted (%s)", NAME, type(exc).__name__)

    async def _call(self, credential, method: str, path: str, payload: dict | None, form=None):
        """form: a function building the multipart body (uploads), called for each try."""
        secrets = credential.secrets if credential else {}
        for attempt in (1, 2):
            token = await self._token(secrets)
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json", **_session_header()}
            if UPSTREAM_REQUEST_ID.get():
                headers["X-Request-ID"] = UPSTREAM_REQUEST_ID.get()  # logged by GigaChat (gigachat.md §4: REF-CHAT)
            status, raw, resp_headers = await send(self.session(), NAME, method, self._url(path), headers, json_body=payload,
                                                   form=form() if form is not None else None)
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
            if UPSTREAM_REQUEST_ID.get():
                headers["X-Request-ID"] = UPSTREAM_REQUEST_ID.get()  # logged by GigaChat (gigachat.md §4: REF-CHAT)
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
