"""HTTP plumbing the provider modules share beyond base.py: streamed responses and error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import orjson

from . import watchdog
from .base import ProviderError, StreamChunk, connection_error, error_for_status, parse_retry_after
from .sse import StreamFormatError

ErrorParser = Callable[[int, bytes, "aiohttp.typedefs.LooseHeaders"], ProviderError]


def error_message(data, raw: bytes = b"") -> str:
    """The human text of an error body, whatever envelope the provider uses.

    OpenAI `{"error": {"message"}}`, vLLM's old top-level `{"object": "error", "message"}`,
    GigaChat `{"status", "message"}` / `{"code", "message"}`, Yandex `{"error": {"message", ...}}`
    and the Yandex gateway's `{"error": "<text>", "message": ...}`, FastAPI's `{"detail"}`.
    """
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if data.get("message"):
            return str(data["message"])
        if isinstance(err, str) and err:
            return err
        detail = data.get("detail")
        if isinstance(detail, str):
            return detail
        if detail:
            return orjson.dumps(detail).decode()[:500]
    text = raw.decode("utf-8", "replace").strip() if raw else ""
    # An HTML error page from a proxy says nothing useful and would flood the logs.
    if text and not text.startswith("<"):
        return text[:500]
    return ""


def redact(message: str, secrets: dict | None) -> str:
    """Remove our own credentials from a provider's message (Yandex echoes unknown API keys back)."""
    for value in (secrets or {}).values():
        if isinstance(value, str) and len(value) >= 8 and value in message:
            message = message.replace(value, "***")
    return message


def loads(raw: bytes):
    try:
        return orjson.loads(raw) if raw else None
    except orjson.JSONDecodeError:
        return None


def http_error(provider: str, status: int, raw: bytes, headers, secrets: dict | None = None) -> ProviderError:
    """The usual mapping of a non-2xx answer (statuses per base.error_for_status)."""
    message = redact(error_message(loads(raw), raw), secrets)
    return error_for_status(provider, status, message, parse_retry_after(headers.get("Retry-After")) if headers else None)


def timeout_error(provider: str) -> ProviderError:
    return ProviderError(f"{provider}: upstream timed out", status=504, kind="timeout")


async def send(
    session: aiohttp.ClientSession,
    provider: str,
    method: str,
    url: str,
    headers: dict,
    *,
    json_body: dict | None = None,
    form: dict | None = None,
) -> tuple[int, bytes, aiohttp.typedefs.LooseHeaders]:
    """One unary call, body read whole and returned raw, so a non-JSON error page can still be quoted."""
    if json_body is not None:
        headers = {"Content-Type": "application/json", **headers}
        data = orjson.dumps(json_body)
    else:
        data = form
    try:
        async with session.request(method, url, data=data, headers=headers) as resp:
            return resp.status, await resp.read(), resp.headers
    except TimeoutError as exc:  # aiohttp.ServerTimeoutError is a subclass
        raise timeout_error(provider) from exc
    except aiohttp.ClientError as exc:
        raise connection_error(provider, exc) from exc


async def open_stream(
    session: aiohttp.ClientSession, provider: str, url: str, payload: dict, headers: dict, on_error: ErrorParser
) -> aiohttp.ClientResponse:
    """POST and return the 2xx response with its body still unread, under the stream watchdog.

    The session's read and total timeouts bound the wait for the headers here; for the body
    they are enforced by watchdog.py instead of aiohttp's per-read timers (the hot path).
    A non-2xx answer is read (it is small), released and raised through `on_error`, so the
    caller sees the provider's own message before a single chunk was produced.
    """
    limits = session.timeout
    first_wait = min((t for t in (limits.sock_read, limits.total) if t), default=None)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(first_wait):
            resp = await session.post(
                url,
                data=orjson.dumps(payload),
                headers={"Content-Type": "application/json", **headers},
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=limits.sock_connect, sock_read=None),
            )
            if not 200 <= resp.status < 300:
                try:
                    raw = await resp.read()
                except aiohttp.ClientError:
                    raw = b""
                finally:
                    resp.release()
                raise on_error(resp.status, raw, resp.headers)
    except TimeoutError as exc:  # aiohttp.ServerTimeoutError is a subclass
        raise timeout_error(provider) from exc
    except aiohttp.ClientError as exc:
        raise connection_error(provider, exc) from exc
    total_left = limits.total - (loop.time() - started) if limits.total else None
    watchdog.watch(resp, limits.sock_read, total_left)
    return resp


@asynccontextmanager
async def holding(resp: aiohttp.ClientResponse, provider: str) -> AsyncIterator[aiohttp.ClientResponse]:
    """Own a streamed response: translate transport failures, and always give the connection back.

    When the consumer stops early (the client disconnected and the gateway called aclose()),
    the body is unread: close the connection outright so the upstream stops generating,
    instead of leaving it to aiohttp to notice.
    """
    completed = False
    try:
        yield resp
        completed = True
    except watchdog.HeldByConsumerError as exc:
        raise ProviderError(f"{provider}: the stream outlived the total timeout while the client read slowly", status=504,
                            kind="client_slow") from exc
    except watchdog.TotalTimeoutError as exc:
        raise ProviderError(f"{provider}: the stream exceeded the total timeout", status=504, kind="timeout") from exc
    except TimeoutError as exc:
        raise ProviderError(f"{provider}: the stream stalled (read timeout)", status=504, kind="timeout") from exc
    except aiohttp.ClientPayloadError as exc:
        raise ProviderError(f"{provider}: the stream was cut off", status=502, kind="stream_interrupted") from exc
    except aiohttp.ClientError as exc:
        raise connection_error(provider, exc) from exc
    except StreamFormatError as exc:
        raise malformed(provider, str(exc)) from exc
    finally:
        watchdog.forget(resp)
        if completed or resp.content.at_eof():
            resp.release()  # aiohttp still drops the connection if unread bytes remain
        else:
            resp.close()


def opening_chunk(provider_request_id: str) -> StreamChunk:
    """The role delta that opens a stream, carrying the provider's request id.

    Adapters yield it just before their first real chunk, not as soon as the headers arrive:
    until then a cut, an in-band error or a stall still fails "before the first chunk", where the
    router can fall back, and time-to-first-token is not flattered by a fast 200.
    """
    return StreamChunk(delta={"role": "assistant"}, provider_request_id=provider_request_id)


def malformed(provider: str, what: str) -> ProviderError:
    return ProviderError(f"{provider}: malformed stream ({what})", status=502, kind="malformed_stream")


def cut_off(provider: str) -> ProviderError:
    return ProviderError(
        f"{provider}: the stream ended before its final event", status=502, kind="stream_interrupted"
    )


def parse_json(provider: str, raw: bytes | str) -> dict:
    """One streamed JSON object; anything else is a malformed stream."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise malformed(provider, "a chunk is not valid JSON") from None
    if not isinstance(value, dict):
        raise malformed(provider, "a chunk is not a JSON object")
    return value


def bad_answer(provider: str, what: str) -> ProviderError:
    """A 2xx answer whose body we cannot read as the protocol says."""
    return ProviderError(f"{provider}: unexpected answer ({what})", status=502, kind="bad_response")


def unsupported(provider: str, param: str, why: str = "") -> ProviderError:
    """A parameter that would change the answer and that this provider cannot honour."""
    detail = f": {why}" if why else ""
    error = ProviderError(
        f"{provider} does not support the parameter '{param}'{detail}", status=400, kind="unsupported_parameter"
    )
    error.param = param  # the gateway puts it in the OpenAI error's `param`
    return error
