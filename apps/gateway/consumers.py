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
        try:
            chunk = first
            while True:
                usage = chunk.usage or usage
                if chunk.delta or chunk.finish_reason:
                    chars += len((chunk.delta or {}).get("content") or "")
                    await self.send(text_data=orjson.dumps({
                        "id": "chatcmpl-" + req.request_id, "object": "chat.completion.chunk",
                        "model": target.model.public_id,
                        "choices": [{"index": chunk.index, "delta": chunk.delta or {}, "finish_reason": chunk.finish_reason}],
                    }).decode())
                chunk = await stream.__anext__()
        except StopAsyncIteration:
            status = "ok"  # the provider finished the stream
        except ProviderError as exc:
            status, error = "error", exc
        finally:
            await stream.aclose()
        usage = usage or Usage(prompt_tokens=estimate_tokens(prompt_chars(body)), completion_tokens=estimate_tokens(chars), estimated=True)
        if error is not None:
            await self.send(text_data=orjson.dumps({"type": "error", **from_provider_error(error).body()}).decode())
        else:
            await self.send(text_data=orjson.dumps({"type": "done", "usage": usage.to_openai()}).decode())
        record_usage(req, self.key, endpoint="chat", requested=plan.requested, model=target.model, route=plan.rule, usage=usage,
                     status=status, stream=True, http_status=200 if error is None else error.status)
