"""WebSocket streaming: `ws://host/v1/realtime/chat?api_key=xr-...` (browsers cannot set headers).

Each message from the client is a chat request (the /v1/chat/completions body); the answer
comes back as `chat.completion.chunk` messages, then `{"type": "done", "usage": {...}}`, or
`{"type": "error", "error": {...}}`. Same validation, routing, adapters and accounting as SSE.
"""

import os
import time
from urllib.parse import parse_qs

import orjson
from channels.generic.websocket import AsyncWebsocketConsumer

from apps.common.errors import ApiError, from_provider_error
from apps.keys.selectors import akey_info_for
from apps.providers.adapters.base import ProviderError, Usage
from apps.routing.catalog import get_catalog
from apps.routing.router import plan_route, run_with_fallback

from .accounting import estimate_tokens, prompt_chars, record_usage
from .capabilities import StopCutter
from .schemas import parse_chat
from .streaming import _open


class _WsRequest:
    def __init__(self):
        self.request_id = os.urandom(12).hex()
        self.started = time.monotonic()


class ChatStreamConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        query = parse_qs(self.scope.get("query_string", b"").decode())
        token = (query.get("api_key") or [""])[0]
        for name, value in self.scope.get("headers", ()):
            if name == b"authorization" and value.lower().startswith(b"bearer "):
                token = value[7:].decode().strip()
        self.key = await akey_info_for(token) if token else None
        if self.key is None:
            await self.close(code=4401)
            return
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None):
        req = _WsRequest()
        try:
            body = parse_chat((text_data or "").encode() if text_data is not None else bytes_data)
            body.pop("legacy_functions", None)
            body["stream"] = True
            plan = plan_route(await get_catalog(), body["model"], self.key)
            (stream, first), target = await run_with_fallback(plan, lambda t: _open(t, body))
        except ApiError as exc:
            await self.send(text_data=orjson.dumps({"type": "error", **exc.body()}).decode())
            return
        except ProviderError as exc:
            await self.send(text_data=orjson.dumps({"type": "error", **from_provider_error(exc).body()}).decode())
            return
        usage, chars, status, error = None, 0, "ok", None
        # A provider that cannot stop on a sequence gets none upstream (upstream_body): cut here, as SSE does.
        stops = body.get("stop") if not target.adapter.supports_stop else None
        cutter = StopCutter(stops) if stops else None
        try:
            chunk = first
            while True:
                usage = chunk.usage or usage
                delta, finish = chunk.delta or {}, chunk.finish_reason
                if cutter is not None:
                    if delta.get("content"):
                        delta = {**delta, "content": cutter.feed(delta["content"])}
                        finish = "stop" if cutter.stopped else finish
                    elif finish and (tail := cutter.flush()):
                        await self._send_chunk(req, target, chunk.index, {"content": tail}, None)
                        chars += len(tail)
                if finish or any(v not in ("", None) for v in delta.values()):
                    chars += len(delta.get("content") or "")
                    await self._send_chunk(req, target, chunk.index, delta, finish)
                if cutter is not None and cutter.stopped:
                    break
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            status = "ok"  # the provider finished the stream
        except ProviderError as exc:
            status, error = "error", exc
        except _ClientGone:
            status = "client_disconnected"  # the upstream is closed below; what was produced is still billed
        finally:
            await stream.aclose()
        if usage is None or not usage.completion_tokens:  # none came, or the cut came before the count: estimate
            usage = Usage(prompt_tokens=usage.prompt_tokens if usage else estimate_tokens(prompt_chars(body)),
                          completion_tokens=estimate_tokens(chars), estimated=True)
        if error is not None:
            await self.send(text_data=orjson.dumps({"type": "error", **from_provider_error(error).body()}).decode())
        elif status == "ok":
            await self.send(text_data=orjson.dumps({"type": "done", "usage": usage.to_openai()}).decode())
        record_usage(req, self.key, endpoint="chat", requested=plan.requested, model=target.model, route=plan.rule, usage=usage,
                     status=status, stream=True, http_status=200 if error is None else error.status)

    async def _send_chunk(self, req, target, index: int, delta: dict, finish_reason) -> None:
        try:
            await self.send(text_data=orjson.dumps({
                "id": "chatcmpl-" + req.request_id, "object": "chat.completion.chunk", "model": target.model.public_id,
                "choices": [{"index": index, "delta": delta, "finish_reason": finish_reason}],
            }).decode())
        except OSError as exc:  # uvicorn's ClientDisconnected: the socket closed mid-stream
            raise _ClientGone from exc


class _ClientGone(Exception):
    """The WebSocket client went away while its answer streamed."""
