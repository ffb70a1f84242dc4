"""Parameters the gateway honours itself when a provider cannot: `n` > 1 by parallel calls,
`stop` by cutting the answer, the legacy `functions` answer shape, and capability checks."""

import asyncio

from apps.common.errors import ApiError
from apps.providers.adapters.base import ChatResult, ProviderAdapter, Usage


def check_capabilities(adapter: ProviderAdapter, body: dict) -> None:
    """Refuse, naming the parameter, what this provider cannot do faithfully."""
    if not adapter.supports_images:
        for i, message in enumerate(body["messages"]):
            content = message.get("content")
            if isinstance(content, list) and any(p.get("type") != "text" for p in content):
                raise ApiError(
                    400,
                    f"Provider '{adapter.config.name}' does not accept image content parts.",
                    param=f"messages[{i}].content",
                    code="unsupported_parameter",
                )
    if body.get("stream") and body.get("n", 1) > 1 and not adapter.supports_n:
        raise ApiError(
            400, f"Provider '{adapter.config.name}' cannot stream more than one choice (n > 1).", param="n", code="unsupported_parameter"
        )


def upstream_body(adapter: ProviderAdapter, body: dict) -> dict:
    """The request as this adapter should receive it: without what the gateway does itself."""
    if (adapter.supports_n or body.get("n", 1) == 1) and (adapter.supports_stop or not body.get("stop")):
        return body
    out = dict(body)
    if not adapter.supports_n:
        out.pop("n", None)
    if not adapter.supports_stop:
        out.pop("stop", None)
    return out


async def chat_with_emulation(adapter: ProviderAdapter, body: dict, model: str) -> ChatResult:
    check_capabilities(adapter, body)
    request = upstream_body(adapter, body)
    n = body.get("n", 1)
    if n > 1 and not adapter.supports_n:
        result = _merge(await _siblings(adapter, request, model, n))
    else:
        result = await adapter.chat(request, model)
    stops = body.get("stop")
    if stops and not adapter.supports_stop:
        for choice in result.choices:
            cut_at_stop(choice, stops)
    return result


async def _siblings(adapter: ProviderAdapter, request: dict, model: str, n: int) -> list[ChatResult]:
    """n parallel calls. When one fails, or the whole call is cancelled, the others are cancelled
    (the answer is lost anyway), and the usage of those that had already answered rides on the
    exception as `spent`: it was paid for, so the failed request's usage row bills it."""
    tasks = [asyncio.ensure_future(adapter.chat(request, model)) for _ in range(n)]
    try:
        return await asyncio.gather(*tasks)
    except BaseException as exc:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        answered = [t.result() for t in tasks if not t.cancelled() and t.exception() is None]
        if answered:
            # Also on a cancellation: a target timeout (the router's wait_for) bills it from there.
            exc.spent = _merge(answered).usage
        raise


def _merge(results: list[ChatResult]) -> ChatResult:
    usage = Usage()
    choices = []
    for i, result in enumerate(results):
        for choice in result.choices:
            choices.append({**choice, "index": i})
        u = result.usage
        # The prompt is the same n times over; each call billed it, so we bill what was spent.
        usage.prompt_tokens += u.prompt_tokens
        usage.completion_tokens += u.completion_tokens
        usage.cached_tokens += u.cached_tokens
        usage.reasoning_tokens += u.reasoning_tokens
        usage.estimated = usage.estimated or u.estimated
    return ChatResult(choices=choices, usage=usage, provider_request_id=results[0].provider_request_id, upstream_model=results[0].upstream_model)


def cut_at_stop(choice: dict, stops: list[str]) -> None:
    content = choice.get("message", {}).get("content")
    if not content:
        return
    positions = [p for p in (content.find(s) for s in stops) if p >= 0]
    if positions:
        choice["message"]["content"] = content[: min(positions)]
        choice["finish_reason"] = "stop"


class StopCutter:
    """Cuts a stream at the first stop sequence.

    Only a tail that may still grow into a stop sequence is held back (shorter than the longest
    stop, which the schema caps at 256 characters), so each chunk costs its own length plus
    that window, and text that cannot begin a stop is sent at once.
    """

    __slots__ = ("stops", "pending", "stopped")

    def __init__(self, stops: list[str]):
        self.stops = stops
        self.pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Text that is safe to send now; sets `stopped` when a stop sequence was found."""
        window = self.pending + text if self.pending else text
        end = -1
        for stop in self.stops:
            at = window.find(stop)
            if at >= 0 and (end < 0 or at < end):
                end = at
        if end >= 0:
            self.pending, self.stopped = "", True
            return window[:end]
        keep = _stop_prefix_at_end(window, self.stops)
        self.pending = window[len(window) - keep :] if keep else ""
        return window[: len(window) - keep] if keep else window

    def flush(self) -> str:
        out, self.pending = self.pending, ""
        return out


def _stop_prefix_at_end(text: str, stops: list[str]) -> int:
    """Length of the longest end of `text` that is the beginning of a stop sequence."""
    best, size = 0, len(text)
    for stop in stops:
        at = text.find(stop[0], max(0, size - len(stop) + 1))
        while at >= 0 and size - at > best:
            if stop.startswith(text[at:]):
                best = size - at
                break
            at = text.find(stop[0], at + 1)
    return best


def to_legacy_message(message: dict) -> dict:
    """A `tool_calls` answer in the shape of the legacy `functions` API."""
    calls = message.pop("tool_calls", None)
    if calls:
        message["function_call"] = calls[0]["function"]
    return message


def legacy_finish(reason: str | None) -> str | None:
    return "function_call" if reason == "tool_calls" else reason
