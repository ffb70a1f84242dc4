"""HTTP plumbing the provider modules share beyond base.py: streamed responses and error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aiohttp
import orjson
from django.conf import settings

from . import watchdog
from .base import ProviderError, StreamChunk, connection_error, error_for_status, parse_retry_after
from .sse import StreamFormatError, StreamTooLong

ErrorParser = Callable[[int, bytes, "aiohttp.typedefs.LooseHeaders"], ProviderError]
# An error body is quoted, never parsed for data: its beginning is all we need.
ERROR_BODY_BYTES = 64 * 1024
# What reading an upstream's JSON raises when a field is missing or has the wrong type (a
# string for a number, an object for a list, nesting too deep to re-encode): the adapters
# turn these into ProviderError, so a provider's bad answer is never a 500.
SHAPE_ERRORS = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError, RecursionError)


def stream_limit() -> int:
    """The most bytes one streamed answer may have (XROUTER_MAX_STREAM_BYTES)."""
    return settings.XROUTER["MAX_STREAM_BYTES"]


async def read_limited(resp: aiohttp.ClientResponse, limit: int, moved: Callable[[], None] | None = None) -> tuple[bytes, bool]:
    """At most `limit` bytes of a body, counted after decompression (a gzip bomb stops here);
    the flag says whether more was left unread. `moved` is called on every chunk."""
    chunks, size = [], 0
    async for chunk in resp.content.iter_any():
        if moved is not None:
            moved()
        size += len(chunk)
        if size > limit:
            chunks.append(chunk[: len(chunk) - (size - limit)])
            return b"".join(chunks), True
        chunks.append(chunk)
    return b"".join(chunks), False


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
            try:
                return orjson.dumps(detail).decode()[:500]
            except orjson.JSONEncodeError:
                return "(an error detail nested too deeply to quote)"
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
    """One unary call, its body returned raw, so a non-JSON error page can still be quoted.

    A 2xx body larger than XROUTER_MAX_UPSTREAM_BODY_BYTES is a bad answer; of an error body
    only the first ERROR_BODY_BYTES are read.
    """
    if json_body is not None:
        headers = {"Content-Type": "application/json", **headers}
        data = orjson.dumps(json_body)
    else:
        data = form
    limits = session.timeout
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(headers_wait(limits)) as deadline:
            # Never follow a redirect: it would carry the credential to wherever the upstream points.
            async with session.request(method, url, data=data, headers=headers, allow_redirects=False,
                                       timeout=without_read_timer(limits)) as resp:
                def moved() -> None:
                    # The body: silence of at most the read timeout (an upstream may send its headers at once
                    # and keep-alive whitespace while it generates), within what is left of the total.
                    ends = [loop.time() + limits.sock_read] if limits.sock_read else []
                    deadline.reschedule(min([*ends, started + limits.total] if limits.total else ends, default=None))

                moved()
                if not 200 <= resp.status < 300:
                    raw, _ = await read_limited(resp, ERROR_BODY_BYTES, moved)
                    return resp.status, raw, resp.headers
                limit = settings.XROUTER["MAX_UPSTREAM_BODY_BYTES"]
                try:
                    raw, more = await read_limited(resp, limit, moved)
                except aiohttp.ClientPayloadError as exc:
                    # The provider took the request and answered: a cut body is a bad answer (billed as
                    # one, estimated), not a connection that failed before the request arrived.
                    raise bad_answer(provider, "the body was cut off") from exc
                if more:
                    raise bad_answer(provider, f"the body exceeds {limit} bytes")
                return resp.status, raw, resp.headers
    except TimeoutError as exc:  # aiohttp.ServerTimeoutError is a subclass
        raise timeout_error(provider) from exc
    except aiohttp.ClientError as exc:
        raise connection_error(provider, exc) from exc


def headers_wait(limits: aiohttp.ClientTimeout) -> float | None:
    """How long a call may wait for its answer's headers: the read timeout (most upstreams generate a unary
    answer before its headers go out) within the total. Unlike aiohttp's read timer, which started once the
    request was written, it counts from the start: waiting for a pooled connection, connecting and sending
    the body too (a 10 MiB image upload to GigaChat at 1 MB/s is 10 s of the 120)."""
    return min((t for t in (limits.sock_read, limits.total) if t), default=None)


def without_read_timer(limits: aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """The per-request timeout for aiohttp: connecting only. The read and total limits are kept by our own
    asyncio timeouts (and, for a streamed body, watchdog.py), which belong to the request.

    aiohttp keeps its `sock_read` timer on the connection's protocol, and the connection outlives the request
    in the keep-alive pool: whatever arms that timer while the connection idles there (a stray byte an
    upstream sends after its answer; aiohttp's own resume_reading slip, aio-libs/aiohttp#12953) stamps a
    timeout on the idle connection, and the next request that takes it fails at once with a false 504. The
    battery saw it: `MTS: upstream timed out` within 3 ms, no fault injected (tests/providers/test_transport_pool.py).
    """
    return aiohttp.ClientTimeout(total=None, sock_connect=limits.sock_connect, sock_read=None)


async def open_stream(
    session: aiohttp.ClientSession, provider: str, url: str, payload: dict, headers: dict, on_error: ErrorParser
) -> aiohttp.ClientResponse:
    """POST and return the 2xx response with its body still unread, under the stream watchdog.

    The session's read and total timeouts bound the wait for the headers here; for the body
    they are enforced by watchdog.py instead of aiohttp's per-read timers (the hot path).
    A non-2xx answer is read (its first ERROR_BODY_BYTES), released and raised through
    `on_error`, so the caller sees the provider's own message before a single chunk was produced.
    """
    limits = session.timeout
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(headers_wait(limits)):
            resp = await session.post(
                url,
                data=orjson.dumps(payload),
                headers={"Content-Type": "application/json", **headers},
                timeout=without_read_timer(limits),
                allow_redirects=False,  # a 3xx is an error, never followed with the credential
            )
            if not 200 <= resp.status < 300:
                try:
                    raw, _ = await read_limited(resp, ERROR_BODY_BYTES)
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
    except StreamTooLong as exc:
        raise too_large(provider, str(exc)) from exc
    except StreamFormatError as exc:
        raise malformed(provider, str(exc)) from exc
    except SHAPE_ERRORS as exc:
        raise malformed(provider, wrong_shape(exc)) from exc
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


def wrong_shape(exc: BaseException) -> str:
    return f"a field is missing or has the wrong type ({type(exc).__name__})"


def text(value) -> str | None:
    """A text field of an answer: a string, or absent."""
    if value is None or type(value) is str:
        return value
    raise TypeError(f"expected a string, got {type(value).__name__}")


def choice_index(value) -> int:
    """A choice's index: a small non-negative integer (it keys per-choice state)."""
    if value is None:
        return 0
    if type(value) is int and 0 <= value < 128:
        return value
    raise ValueError(f"a choice index of {value!r}")


FLOAT32_MAX = 3.4028234663852886e38


def vector(value) -> list:
    """An embedding: a list of numbers that fit a float32 (the gateway may pack it as one)."""
    if type(value) is list and all((type(x) is float or type(x) is int) and -FLOAT32_MAX <= x <= FLOAT32_MAX for x in value):
        return value
    raise TypeError("an embedding is not a list of float32 numbers")


def too_large(provider: str, what) -> ProviderError:
    """A stream past XROUTER_MAX_STREAM_BYTES: as long as its request asked for (n > 1, a large
    max_tokens), so it is cut without blaming the provider's health. (A unary body 16 MiB long
    is no answer any request asks for: that stays a bad answer.)"""
    return ProviderError(f"{provider}: the answer is too large ({what})", status=502, kind="too_large")


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
