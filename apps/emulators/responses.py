"""Sending successful answers while honouring the body-shaping faults (see ``faults.py``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from .state import FAULT, NOTE


def dumps(data: Any) -> bytes:
    # Compact and UTF-8 as the providers send it (Cyrillic not escaped).
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def json_response(data: Any, status: int = 200) -> web.Response:
    """A compact JSON response for error bodies (aiohttp's default adds spaces and escapes)."""
    return web.Response(body=dumps(data), status=status, content_type="application/json")


async def send_json(
    request: web.Request,
    payload: Any,
    *,
    status: int = 200,
    content_type: str = "application/json",
    trailing_newline: bool = False,
) -> web.StreamResponse:
    body = dumps(payload) + (b"\n" if trailing_newline else b"")
    fault = request.get(FAULT)
    shaping = fault and (fault.first_byte_delay_ms or fault.cut_after_chunks is not None or fault.malformed_chunk_at is not None)
    if not shaping:
        response = web.Response(body=body, status=status)
        response.headers["Content-Type"] = content_type
        return response
    if fault.malformed_chunk_at is not None:
        body = body[: max(1, len(body) // 2)]
        request[NOTE] = "malformed"
    response = web.StreamResponse(status=status)
    response.headers["Content-Type"] = content_type
    response.content_length = len(body)
    await response.prepare(request)
    if fault.first_byte_delay_ms:
        await asyncio.sleep(fault.first_byte_delay_ms / 1000)
    if fault.cut_after_chunks is not None:
        await response.write(body[: len(body) // 2])
        _cut(request)
        return response
    await response.write(body)
    await response.write_eof()
    return response


async def send_stream(
    request: web.Request,
    events: list[bytes],
    *,
    content_type: str,
    malformed: bytes,
    headers: dict | None = None,
) -> web.StreamResponse:
    """Write pre-rendered stream events (SSE events or NDJSON lines) one by one."""
    fault = request.get(FAULT)
    response = web.StreamResponse(status=200, headers=headers or {})
    response.headers["Content-Type"] = content_type
    await response.prepare(request)
    try:
        if fault and fault.first_byte_delay_ms:
            await asyncio.sleep(fault.first_byte_delay_ms / 1000)
        for index, event in enumerate(events):
            if fault and fault.cut_after_chunks is not None and index >= fault.cut_after_chunks:
                _cut(request)
                return response
            if fault and index == fault.malformed_chunk_at:
                event = malformed
                request[NOTE] = "malformed"
            if fault and fault.chunk_delay_ms and index:
                await asyncio.sleep(fault.chunk_delay_ms / 1000)
            await response.write(event)
        await response.write_eof()
    except ConnectionError:
        # The client went away mid-stream (a cancellation test, usually): note it and stop.
        request[NOTE] = "client_disconnected"
    except asyncio.CancelledError:
        request[NOTE] = "client_disconnected"
        raise
    return response


def with_fault_usage(request: web.Request, usage: dict) -> dict:
    """The usage object as sent: a ``usage`` fault overrides some of its fields."""
    fault = request.get(FAULT)
    return {**usage, **fault.usage} if fault and fault.usage else usage


def _cut(request: web.Request) -> None:
    # close(), not abort(): what was written still reaches the client, then the body just ends
    # without its terminating chunk.
    request[NOTE] = "cut"
    if request.transport is not None:
        request.transport.close()


def sse(data: Any) -> bytes:
    payload = data if isinstance(data, str) else dumps(data).decode("utf-8")
    return f"data: {payload}\n\n".encode()
