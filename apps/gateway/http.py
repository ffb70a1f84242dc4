"""The little HTTP layer the /v1 ASGI app needs: a request, JSON responses, SSE sends."""

import contextlib
import socket
from urllib.parse import quote

import orjson
from django.conf import settings

from apps.common.errors import ApiError

JSON_HEADERS = [(b"content-type", b"application/json")]
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]


class Request:
    __slots__ = ("scope", "receive", "request_id", "method", "path", "headers", "started", "admission", "attempts", "span",
                 "prompt_chars")

    def __init__(self, scope, receive, request_id: str, started: float):
        self.scope = scope
        self.receive = receive
        self.request_id = request_id
        self.method = scope["method"]
        self.path = scope["path"]
        self.started = started
        self.admission = None  # apps.limits: set once the request is admitted under a limit
        self.span = None  # the request's trace span, when tracing is on (apps.common.tracing)
        self.attempts = []  # accounting.Attempt per upstream attempt, by number
        self.prompt_chars = 0  # the prompt's characters of text, in its usage rows (accounting.prompt_chars)
        self.headers = {k: v for k, v in scope["headers"]}  # names arrive lower-cased

    def header(self, name: bytes) -> str:
        value = self.headers.get(name)
        return value.decode("latin-1") if value is not None else ""

    async def body(self) -> bytes:
        """The whole body, refusing anything over XROUTER_MAX_BODY_BYTES with a 413."""
        limit = settings.XROUTER["MAX_BODY_BYTES"]
        declared = self.headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"Request body is larger than {limit} bytes.", code="request_too_large")
        chunks, size = [], 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"Request body is larger than {limit} bytes.", code="request_too_large")
            chunks.append(chunk)
            if not message.get("more_body"):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ClientGone(Exception):
    """The client closed the connection before we answered."""


def header_list(extra: dict | None) -> list:
    return [(k.encode("latin-1"), header_value(str(v))) for k, v in (extra or {}).items()]


def header_value(value: str) -> bytes:
    """A header value that cannot break the response: printable ASCII as is, anything else (names
    in other scripts, control characters) percent-encoded as UTF-8."""
    if value.isascii() and value.isprintable():
        return value.encode()
    return quote(value, safe=SAFE_IN_HEADER).encode()


SAFE_IN_HEADER = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


async def send_json(send, status: int, body, headers: dict | None = None) -> None:
    payload = body if isinstance(body, bytes) else orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": JSON_HEADERS + [(b"content-length", str(len(payload)).encode())] + header_list(headers),
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def send_error(send, exc: ApiError, headers: dict | None = None) -> None:
    await send_json(send, exc.status, exc.to_json(), {**(headers or {}), **exc.headers})


async def start_sse(send, headers: dict | None = None) -> None:
    cap_send_buffer(getattr(getattr(send, "__self__", None), "transport", None))
    await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS + header_list(headers)})


def cap_send_buffer(transport) -> None:
    """A stream's socket keeps at most XROUTER_STREAM_SEND_BUFFER bytes its client has not read queued in the kernel
    (TCP_NOTSENT_LOWAT: the socket takes no more while that many wait unsent). Linux grows a TCP send buffer up to
    tcp_wmem's 4 MiB (on loopback at once): a client that stops reading would otherwise have the gateway pull and
    relay megabytes of the provider's answer into the kernel — CPU and memory a stalled stream should not cost,
    spent beside the other tenants' requests — before a send blocks and the stalled-client check
    (XROUTER_CLIENT_SEND_TIMEOUT) can see it. Unlike SO_SNDBUF it leaves the buffer's autotuning alone, so a later
    answer on the same kept-alive connection (a large embeddings response) is not slowed. `transport`: the
    connection's (uvicorn's ASGI `send` is a method of its request cycle, which holds it; None elsewhere). Never
    raises: a connection already gone (uvloop then holds a socket of fd -1: ValueError) is the send's to report."""
    size = settings.XROUTER["STREAM_SEND_BUFFER"]
    if not size or transport is None or transport.is_closing():
        return
    with contextlib.suppress(OSError, ValueError):
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, size)


def sse_event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"
