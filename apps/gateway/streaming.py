"""Streaming chat, one relay for every transport: fall back until a target sends its first chunk,
then relay the answer into a *sink*: server-sent events on an HTTP response (`SseSink`) or frames
on a WebSocket (`WsSink`, driven by consumers.py). Rules, fallbacks, billing and failure records
are this module's alone, whichever transport carries the answer.

Before the first byte reaches the client a failure falls back to the next target. After it, any
failure (a provider error or anything else) becomes an explicit error event and an `error` usage
row: never a silent truncation. A client that disconnects (or, over a WebSocket, cancels) stops
the upstream call; whatever was produced is still billed, from the provider's usage when it
came, else estimated and marked so. A client that stops reading is cut after
XROUTER_CLIENT_SEND_TIMEOUT, the same way. Usage is recorded before the last event is sent, so a
send that fails cannot lose it. Only the provider's own failures count for its circuit breaker
(routing.failures), never the client's.
"""

import asyncio
import contextlib
import logging
import time

import orjson
from django.conf import settings

from apps.common.errors import from_provider_error
from apps.limits.estimate import chat_reservation
from apps.providers.adapters.base import ProviderError, StreamRevisedError, Usage
from apps.routing import state
from apps.routing.failures import counts_for_breaker
from apps.routing.router import failed_target, run_with_fallback

from . import cache, metrics
from .accounting import (
    admit_target,
    attempt_start,
    bill_failed_attempts,
    bill_refusal,
    end_unfinished,
    estimate_tokens,
    prompt_chars,
    record_usage,
)
from .capabilities import StopCutter, check_capabilities, legacy_finish, upstream_body
from .http import ClientGone, start_sse

log = logging.getLogger(__name__)
open_streams = 0  # streams this worker is relaying (for /metrics)
DONE = b"data: [DONE]\n\n"
TEXT_HEAD = b'{"index":0,"delta":{"content":'
TEXT_TAIL = b'},"logprobs":null,"finish_reason":null}]}'
SSE_TEXT_TAIL = TEXT_TAIL + b"\n\n"


class SseSink:
    """Server-sent events on the HTTP response: `data: <chunk>` events, then an error event or the
    usage chunk (when asked for), then `data: [DONE]`."""

    stopped: str | None = None  # set, with the relay's task cancelled, when the client goes away
    ended = False  # the relay is past its answer (billing, closing): a disconnect no longer cancels it

    def __init__(self, req, send):
        self.send = send
        self.receive = req.receive
        # uvicorn's request cycle (its `send` is a method of it), None elsewhere. Once the client is gone its
        # sends return at once, without a wait: a relay would then race through everything it has buffered
        # before the disconnect watcher's cancellation gets a turn, so every send checks first.
        cycle = getattr(send, "__self__", None)
        self.cycle = cycle if hasattr(cycle, "disconnected") else None

    def gone(self) -> bool:
        return self.cycle is not None and self.cycle.disconnected

    async def start(self, headers: dict) -> None:
        if self.gone():
            raise ClientGone()
        await start_sse(self.send, headers)

    def event(self, payload: bytes):
        if self.gone():
            raise ClientGone()
        return self.send({"type": "http.response.body", "body": b"data: " + payload + b"\n\n", "more_body": True})

    def text_writer(self, prefix: bytes):
        """A send for the commonest chunk (a piece of text in choice 0): pre-built bytes around its
        one encoded string, returning the send's awaitable (no coroutine of its own per chunk)."""
        send, head, dumps, cycle = self.send, b"data: " + prefix + TEXT_HEAD, orjson.dumps, self.cycle

        def text(content: str):
            if cycle is not None and cycle.disconnected:
                raise ClientGone()
            return send({"type": "http.response.body", "body": head + dumps(content) + SSE_TEXT_TAIL, "more_body": True})

        return text

    async def end(self, prefix: bytes, usage: Usage, include_usage: bool, error=None, cancelled=False) -> None:
        if error is not None:
            await self.event(orjson.dumps(error.body()))
        elif include_usage:
            await self.event(prefix + b'],"usage":' + orjson.dumps(usage.to_openai()) + b"}")
        await self.send({"type": "http.response.body", "body": DONE, "more_body": False})

    def watch(self, task: asyncio.Task):
        """Read the request's channel while the relay writes: a disconnect cancels the relay."""
        watcher = asyncio.ensure_future(self._wait_disconnect())
        watcher.add_done_callback(lambda f: self._on_disconnect(f, task))
        return watcher

    async def _wait_disconnect(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                return

    def _on_disconnect(self, future, task) -> None:
        if future.cancelled() or task.done() or self.ended:
            return
        self.stopped = "client_disconnected"
        task.cancel()


class WsSink:
    """One request's answer on a WebSocket (consumers.py): `chat.completion.chunk` frames, then
    `{"type": "done", "usage": ...}` or `{"type": "error", "error": ...}`, each with the answer's id.
    The socket's reader, not the sink, notices a disconnect or a `cancel` and stops the relay."""

    stopped: str | None = None

    def __init__(self, req, send_text):
        self.id = "chatcmpl-" + req.request_id
        self.send_text = send_text  # a coroutine function; raises ClientGone once the socket is closed

    async def start(self, headers: dict) -> None:
        """Nothing to send: the handshake is long past, and the ids travel in every frame."""

    def event(self, payload: bytes):
        return self.send_text(payload.decode())

    def text_writer(self, prefix: bytes):
        send, head, dumps = self.send_text, prefix + TEXT_HEAD, orjson.dumps

        def text(content: str):
            return send((head + dumps(content) + TEXT_TAIL).decode())

        return text

    async def end(self, prefix: bytes, usage: Usage, include_usage: bool, error=None, cancelled=False) -> None:
        if error is not None:
            frame = {"type": "error", "id": self.id, **error.body()}
        else:
            frame = {"type": "done", "id": self.id, "usage": usage.to_openai()}
            if cancelled:
                frame["cancelled"] = True
        await self.send_text(orjson.dumps(frame).decode())

    def watch(self, task: asyncio.Task) -> None:
        return None


async def _open(req, key, plan, target, body, guard=None):
    """Start the target's stream and wait for its first chunk (so failures can still fall back)."""
    check_capabilities(target.adapter, body)
    attempt_start(req, key, plan, target, plan.prompt_tokens, stream=True)
    await admit_target(req, key, plan, target, lambda: chat_reservation(body, target.model))
    sent = body if guard is None else await guard.aupstream(target)  # per attempt: a fallback may cross a border
    stream = target.adapter.stream_chat(upstream_body(target.adapter, sent), target.model.name)
    try:
        first = await stream.__anext__()
    except StopAsyncIteration:
        raise ProviderError(f"{target.label}: the stream ended before any data", status=502,
                            kind="empty_stream") from None
    except ProviderError:
        await stream.aclose()
        raise
    except Exception as exc:
        # Not a provider error but the provider's answer broke it: this target failed, and may fall back.
        await stream.aclose()
        log.exception("stream failed before its first chunk", extra={"target": target.label})
        raise ProviderError(f"{target.label}: the stream could not be read", status=502,
                            kind="stream_failed") from exc
    except BaseException:
        await stream.aclose()
        raise
    return stream, first


async def stream_chat(req, sink, key, plan, body, legacy: bool, cache_key=None, cache_ttl=None, guard=None) -> None:
    try:
        (stream, first), target = await run_with_fallback(plan, lambda t: _open(req, key, plan, t, body, guard),
                                                          verdict_later=True)
    except ProviderError as exc:
        metrics.UPSTREAM_ERRORS.labels(failed_target(plan, exc).model.provider, exc.kind).inc()
        bill_refusal(req, key, plan, exc, stream=True)
        raise from_provider_error(exc) from None
    except asyncio.CancelledError:
        bill_failed_attempts(req, key, plan, stream=True)
        if sink.stopped is None:
            raise  # the server is stopping (chat() ends the attempt being opened as cancelled)
        # The client left (or cancelled) while a target was being opened: that upstream was called
        # and its prompt may be charged, so the attempt is billed like any other (prompt estimated).
        end_unfinished(req, key, plan, status=sink.stopped, stream=True)
        raise

    bill_failed_attempts(req, key, plan, stream=True)
    relay = _Relay(req, sink, key, plan, target, body, legacy, cached=bool(cache_key), guard=guard)
    await relay.run(stream, first)
    if cache_key and relay.cacheable():
        await cache.put(cache_key, cache.entry_for(relay.cached_choices(), relay.final_usage(), target.model.public_id,
                                                   target.model.provider, plan.header(target)), cache_ttl)


def _chunk_prefix(request_id: str, model: str) -> bytes:
    return (b'{"id":"chatcmpl-' + request_id.encode() + b'","object":"chat.completion.chunk","created":'
            + str(int(time.time())).encode() + b',"model":' + orjson.dumps(model) + b',"choices":[')


class _ClientWatch:
    """Sends to one client, counted so that a client that stops reading can be cut."""

    sink = None
    sends = 0  # odd while a send to the client is pending (the stalled-client check reads it)
    stall_check: asyncio.TimerHandle | None = None

    def watch_client(self, task: asyncio.Task, limit: float) -> None:
        if limit:
            self.stall_check = asyncio.get_running_loop().call_later(limit, self._check_client, task, limit, -1)

    def _check_client(self, task, limit: float, pending: int) -> None:
        """Every `limit` seconds: the same send still pending as at the last look means the client
        stopped reading (for between 1× and 2× `limit`). Cut it like a client that left: the
        upstream is closed, what was produced is billed, and its provider is not blamed."""
        if task.done():
            return
        if self.sends % 2 and self.sends == pending:
            self.sink.stopped = "client_stalled"
            task.cancel()
            return
        self.stall_check = asyncio.get_running_loop().call_later(limit, self._check_client, task, limit, self.sends)


class _Relay(_ClientWatch):
    def __init__(self, req, sink, key, plan, target, body, legacy, cached=False, guard=None):
        self.req, self.sink, self.key, self.plan, self.target = req, sink, key, plan, target
        self.cached = cached
        self.body = body
        self.legacy = legacy
        self.include_usage = bool(body.get("stream_options", {}).get("include_usage"))
        stops = body.get("stop") if not target.adapter.supports_stop else None
        self.cutter = StopCutter(stops) if stops else None
        self.prefix = _chunk_prefix(req.request_id, target.model.public_id)
        self.guard = guard
        # The guardrails' filter of this attempt's answer (restoring placeholders), None for most requests.
        self.answer = guard.answer(target) if guard is not None else None
        self.plain = self.cutter is None and not legacy and self.answer is None
        self.usage: Usage | None = None
        self.provider_request_id = ""
        self.chars = 0
        self.finished = False
        self.ttft: float | None = None
        self.text: list[str] = []  # the answer, kept for the response cache
        self.finish_reason: str | None = None
        self.status = "ok"
        self.saw_tools = False
        self.sends = 0

    async def emit(self, payload: bytes) -> None:
        if self.ttft is None:
            self.ttft = time.monotonic()
        self.sends += 1
        await self.sink.event(payload)
        self.sends += 1

    async def emit_choice(self, index: int, delta: dict, finish_reason) -> None:
        choice = orjson.dumps({"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason})
        await self.emit(self.prefix + choice + b"]}")

    async def relay(self, stream) -> None:
        """Every chunk after the first. The common one, a piece of text, goes straight to the sink's
        text writer (pre-built bytes around its one encoded string): this loop runs once per token."""
        write_text, text = self.sink.text_writer(self.prefix), self.text
        plain = self.plain
        async for chunk in stream:
            delta = chunk.delta
            if (plain and chunk.index == 0 and chunk.finish_reason is None and chunk.usage is None and self.ttft is not None
                    and delta is not None and len(delta) == 1):
                content = delta.get("content")
                if content:
                    self.chars += len(content)
                    text.append(content)
                    self.sends += 1
                    await write_text(content)
                    self.sends += 1
                    continue
            if not await self.handle(chunk):
                return

    async def handle(self, chunk) -> bool:
        """Relay one upstream chunk; False once the answer is complete (stop sequence hit)."""
        if chunk.provider_request_id:
            self.provider_request_id = chunk.provider_request_id
        if chunk.usage is not None:
            self.usage = chunk.usage
        delta, finish = chunk.delta, chunk.finish_reason
        if self.answer is not None and (delta or finish):
            delta = self.filtered(chunk.index, delta or {}, finish)
        if delta:
            content = delta.get("content")
            if content:
                self.chars += len(content)
                self.text.append(content)
            if delta.get("tool_calls"):
                self.saw_tools = True
            if delta.get("reasoning_content"):
                self.chars += len(delta["reasoning_content"])
            if self.cutter is not None and content:
                delta = {**delta, "content": self.cutter.feed(content)}
                if self.cutter.stopped:
                    finish = "stop"
            if self.legacy and delta.get("tool_calls"):
                call = delta.pop("tool_calls")[0]["function"]
                delta["function_call"] = {k: v for k, v in call.items() if k in ("name", "arguments")}
        if finish and self.cutter is not None and not self.cutter.stopped:
            tail = self.cutter.flush()
            if tail:
                await self.emit_choice(chunk.index, {"content": tail}, None)
        out = delta or {}
        if finish or any(v not in ("", None) for v in out.values()):
            reason = (legacy_finish(finish) if self.legacy else finish) if finish else None
            await self.emit_choice(chunk.index, out, reason)
            if finish:
                self.finished = True
                self.finish_reason = finish
        return not (self.cutter is not None and self.cutter.stopped)

    def filtered(self, index: int, delta: dict, finish) -> dict:
        """The delta through the answer filter: text and tool-call arguments as they may be sent so far;
        at the choice's finish, with whatever the filter still held back."""
        answer, delta = self.answer, dict(delta)
        for field in ("content", "reasoning_content"):
            if delta.get(field):
                delta[field] = answer.piece((field, index), delta[field])
        if delta.get("tool_calls"):
            delta["tool_calls"] = [self._filtered_call(index, call) for call in delta["tool_calls"]]
        if finish:
            for field in ("content", "reasoning_content"):
                tail = answer.flush((field, index))
                if tail:
                    delta[field] = (delta.get(field) or "") + tail
            calls = {c.get("index", 0): {**c, "function": dict(c.get("function") or {})} for c in delta.get("tool_calls") or ()}
            for slot in [s for s in answer.slots() if s[0] == "args" and s[1] == index]:
                tail = answer.flush(slot)
                if tail:
                    function = calls.setdefault(slot[2], {"index": slot[2], "function": {}})["function"]
                    function["arguments"] = (function.get("arguments") or "") + tail
            if calls:
                delta["tool_calls"] = list(calls.values())
        return delta

    def _filtered_call(self, index: int, call: dict) -> dict:
        function = call.get("function") or {}
        if not function.get("arguments"):
            return call
        arguments = self.answer.piece(("args", index, call.get("index", 0)), function["arguments"])
        return {**call, "function": {**function, "arguments": arguments}}

    def cacheable(self) -> bool:
        return self.status == "ok" and self.finished and not self.saw_tools and not (self.cutter and self.cutter.stopped)

    def cached_choices(self) -> list[dict]:
        message = {"role": "assistant", "content": "".join(self.text)}
        return [{"index": 0, "message": message, "finish_reason": self.finish_reason or "stop"}]

    def final_usage(self) -> Usage:
        if self.usage is not None and not (self.cutter and self.cutter.stopped and not self.usage.completion_tokens):
            return self.usage
        return Usage(
            prompt_tokens=self.usage.prompt_tokens if self.usage else estimate_tokens(prompt_chars(self.body), self.target.model),
            completion_tokens=estimate_tokens(self.chars, self.target.model),
            estimated=True,
        )

    async def run(self, stream, first) -> None:
        task = asyncio.current_task()
        sink = self.sink
        watcher = sink.watch(task)
        limit = settings.XROUTER["CLIENT_SEND_TIMEOUT"]
        self.watch_client(task, limit)
        provider = self.target.model.provider
        headers = {"x-request-id": self.req.request_id, "x-xrouter-provider": provider,
                   "x-xrouter-route": self.plan.header(self.target)}
        if self.req.admission is not None:
            headers.update(self.req.admission.headers)
        if self.cached:
            headers["x-xrouter-cache"] = "miss"
        status, error = "ok", None
        busy = state.state(self.target.label)
        busy.in_flight += 1  # least_busy counts a stream until it ends, not just until it opened
        global open_streams
        open_streams += 1
        try:
            await sink.start(headers)
            if await self.handle(first):
                await self.relay(stream)
            if not self.finished:
                raise ProviderError(f"{provider}: the stream ended without a finish reason", kind="truncated")
            # Latency for the `latency` strategy: time to the first token, what a stream's client waits for.
            state.record_success(self.target.label, (self.ttft or time.monotonic()) - self.req.started)
        except ProviderError as exc:
            status, error = "error", exc
            metrics.UPSTREAM_ERRORS.labels(provider, exc.kind).inc()
            if counts_for_breaker(exc):
                state.record_failure(self.target.label)  # a stream that breaks after its first byte counts too
            else:
                state.release_probe(self.target.label)
            if isinstance(exc, StreamRevisedError):
                metrics.STREAM_REVISIONS.labels(provider).inc()
        except asyncio.CancelledError:
            if sink.stopped is None:
                status = "cancelled"
                raise  # the server is shutting down past its grace period
            task.uncancel()
            status = sink.stopped
            metrics.STREAMS_CANCELLED.labels(provider).inc()
            state.release_probe(self.target.label)  # the client left: nothing learnt about the provider
        except ClientGone:
            status = "client_disconnected"  # a WebSocket send found the socket closed
            metrics.STREAMS_CANCELLED.labels(provider).inc()
            state.release_probe(self.target.label)
        except Exception:
            # Anything else after the first byte (an upstream field that does not parse, a bug) ends
            # the answer as an error, never as a normal end: the client must not take it as complete.
            log.exception("stream failed after its first byte", extra={"request_id": self.req.request_id, "target": self.target.label})
            status = "error"
            error = ProviderError(f"{provider}: the stream failed mid-answer; the request id identifies it in our logs.",
                                  status=502, kind="stream_failed")
            metrics.UPSTREAM_ERRORS.labels(provider, error.kind).inc()
            state.release_probe(self.target.label)  # not known to be the provider's: blame nobody
        finally:
            sink.ended = True  # a disconnect from here on must not cancel the billing below (_on_disconnect)
            if self.stall_check is not None:
                self.stall_check.cancel()
            busy.in_flight -= 1
            open_streams -= 1
            self.status = status
            try:
                await stream.aclose()
            except Exception:  # closing a broken upstream must not lose the usage record below
                log.exception("closing the upstream stream failed", extra={"request_id": self.req.request_id})
            if watcher is not None:
                watcher.cancel()
            usage = self.final_usage()
            record_usage(
                self.req, self.key, endpoint="chat", requested=self.plan.requested, model=self.target.model,
                route=self.plan.rule, usage=usage, status=status, stream=True, ttft=self.ttft,
                http_status=200 if error is None else error.status, error_type=error.kind if error else "",
                provider_request_id=self.provider_request_id, upstream_seconds=self.plan.upstream_seconds,
                attempt=len(self.plan.attempts) - 1,
            )
            if self.answer is not None:
                self.answer.end()
            if self.guard is not None and status == "ok":
                self.guard.after(self.target, "".join(self.text))
            if status in ("ok", "error", "client_cancelled"):
                self.finished = True
                # The stall check has stopped: bound the last sends (the answer is billed either way).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(limit or None):
                        await sink.end(self.prefix, usage, self.include_usage, from_provider_error(error) if error else None,
                                       cancelled=status == "client_cancelled")


async def replay_stream(req, sink, headers: dict, model: str, choices: list[dict], usage: Usage, body: dict) -> None:
    """A cached answer sent as the same chat.completion.chunk events a live stream has. It was billed
    before; a client that stops reading is cut after XROUTER_CLIENT_SEND_TIMEOUT, as from a live one."""
    replay, task = _Replay(sink), asyncio.current_task()
    replay.watch_client(task, settings.XROUTER["CLIENT_SEND_TIMEOUT"])
    try:
        await replay.run(req, headers, model, choices, usage, body)
    except asyncio.CancelledError:
        if sink.stopped != "client_stalled":
            raise  # the server is stopping, or a WebSocket `cancel` (consumers.py answers it)
        task.uncancel()
    finally:
        if replay.stall_check is not None:
            replay.stall_check.cancel()


class _Replay(_ClientWatch):
    def __init__(self, sink):
        self.sink = sink

    async def send(self, sending) -> None:
        self.sends += 1
        await sending
        self.sends += 1

    async def run(self, req, headers: dict, model: str, choices: list[dict], usage: Usage, body: dict) -> None:
        sink, send = self.sink, self.send
        prefix = _chunk_prefix(req.request_id, model)
        await send(sink.start(headers))
        for choice in choices:
            message, index = choice["message"], choice["index"]
            await send(sink.event(prefix + orjson.dumps({"index": index, "delta": {"role": "assistant", "content": ""},
                                                          "finish_reason": None}) + b"]}"))
            content = message.get("content") or ""
            for start in range(0, len(content), REPLAY_CHUNK):
                delta = {"content": content[start:start + REPLAY_CHUNK]}
                await send(sink.event(prefix + orjson.dumps({"index": index, "delta": delta, "finish_reason": None}) + b"]}"))
            extra = {k: v for k, v in message.items() if k in ("tool_calls", "function_call")}
            if extra.get("tool_calls"):
                extra["tool_calls"] = [{**call, "index": i} for i, call in enumerate(extra["tool_calls"])]
            await send(sink.event(prefix + orjson.dumps({"index": index, "delta": extra, "finish_reason": choice["finish_reason"]})
                                  + b"]}"))
        await send(sink.end(prefix, usage, bool(body.get("stream_options", {}).get("include_usage"))))


REPLAY_CHUNK = 40  # characters per replayed delta
