"""Generated adversarial upstream bytes through each adapter's real response parsing (unary and
streamed), over loopback HTTP: only ProviderError escapes, each example finishes within a second,
and the tracemalloc peak stays within 4 x the input size + 1 MiB (issue 8, "Done means")."""

import asyncio
import time

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.providers.adapters.base import ProviderError

from .conftest import collect, user
from .hostile_upstream import HostileUpstream, peak_memory

MiB = 1024 * 1024
KINDS = ["gigachat", "yandexgpt", "mts"]

# --- what a misbehaving provider may send ---------------------------------------------------------
odd_text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(["", "n/a", "\x00", "\u202e", "😀" * 10, "[DONE]"])
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | odd_text
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4), max_leaves=12)


def maybe(value):
    """The real value most of the time, junk otherwise."""
    return st.just(value) | junk


def shaped(template):
    """A template (a realistic answer) with any part possibly replaced by junk or left out."""
    if isinstance(template, dict):
        return st.fixed_dictionaries({}, optional={k: shaped(v) for k, v in template.items()}) | junk
    if isinstance(template, list):
        return st.lists(shaped(template[0]), max_size=3) | junk
    return maybe(template)


TOOL = {"name": "get_weather", "arguments": {"city": "Moscow"}}
OPENAI = {"id": "x", "model": "m", "object": "chat.completion",
          "choices": [{"index": 0, "finish_reason": "stop",
                       "message": {"role": "assistant", "content": "hi", "reasoning_content": "r", "refusal": None,
                                   "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                       "delta": {"role": "assistant", "content": "hi", "reasoning": "r",
                                 "tool_calls": [{"index": 0, "id": "c", "function": {"name": "f", "arguments": "{"}}]}}],
          "usage": {"prompt_tokens": 3, "completion_tokens": 2, "prompt_tokens_details": {"cached_tokens": 1},
                    "completion_tokens_details": {"reasoning_tokens": 1}}}
GIGACHAT = {"model": "GigaChat", "object": "chat.completion",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": "hi", "function_call": TOOL, "functions_state_id": "s"},
                         "delta": {"role": "assistant", "content": "hi", "reasoning_content": "r", "function_call": TOOL}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "precached_prompt_tokens": 1}}
YANDEX = {"result": {"alternatives": [{"status": "ALTERNATIVE_STATUS_FINAL",
                                       "message": {"role": "assistant", "text": "hi",
                                                   "toolCallList": {"toolCalls": [{"functionCall": TOOL}]}}}],
                     "usage": {"inputTextTokens": "3", "completionTokens": "2", "completionTokensDetails": {"reasoningTokens": "1"}},
                     "modelVersion": "1"}}
TEMPLATES = {"gigachat": GIGACHAT, "yandexgpt": YANDEX, "mts": OPENAI}


def as_json(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS) if _encodable(value) else b"{}"


def _encodable(value) -> bool:
    try:
        orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        return True
    except orjson.JSONEncodeError:
        return False


raw_bytes = st.binary(max_size=300)
framing = st.sampled_from([b"\n", b"\r", b"\r\n", b"\n\n", b"data: ", b"data:", b": ping\n", b"event: error\n", b"id: 1\n",
                           b"data: [DONE]\n\n", b"{", b"}", b"\xff\xfe", b"\xc3"])


@st.composite
def unary_bodies(draw, kind):
    if draw(st.booleans()):
        return as_json(draw(shaped(TEMPLATES[kind])))
    return draw(raw_bytes | st.lists(framing, max_size=20).map(b"".join))


@st.composite
def stream_bodies(draw, kind):
    parts = []
    for _ in range(draw(st.integers(0, 6))):
        choice = draw(st.integers(0, 3))
        if choice <= 1:
            event = as_json(draw(shaped(TEMPLATES[kind])))
            parts.append(event + b"\n" if kind == "yandexgpt" else b"data: " + event + b"\n\n")
        elif choice == 2:
            parts.append(draw(framing))
        else:
            parts.append(draw(raw_bytes))
    return b"".join(parts)


# --- the runs -------------------------------------------------------------------------------------
@pytest.fixture
async def upstream():
    server = await HostileUpstream().start()
    yield server
    await server.stop()


async def _check(adapter, upstream, body: bytes, streamed: bool):
    upstream.answer(content_type="text/event-stream" if streamed else "application/json", chunk=body, repeat=1)
    request = {"model": "m", "messages": [user("hi")], "stream": streamed}
    call = collect(adapter.stream_chat(request, "m")) if streamed else adapter.chat(request, "m")
    started = time.monotonic()
    error, _, peak = await peak_memory(asyncio.wait_for(call, 5))
    elapsed = time.monotonic() - started
    assert error is None or isinstance(error, ProviderError), repr(error)
    assert elapsed < 1.0, f"{elapsed:.2f}s"
    assert peak <= 4 * len(body) + MiB, peak


EXAMPLES = settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@pytest.mark.parametrize("streamed", [False, True], ids=["unary", "stream"])
@pytest.mark.parametrize("kind", KINDS)
async def test_adversarial_upstream_bytes_only_ever_raise_provider_error(make_adapter, upstream, kind, streamed):
    adapter = make_adapter(kind, base_url=upstream.origin)
    await _check(adapter, upstream, b"{}", streamed)  # warm up: token, connection pool
    strategy = stream_bodies(kind) if streamed else unary_bodies(kind)

    # Hypothesis drives a sync function; each example runs on this test's event loop.
    loop = asyncio.get_running_loop()

    @EXAMPLES
    @given(body=strategy)
    def run(body):
        future = asyncio.run_coroutine_threadsafe(_check(adapter, upstream, body, streamed), loop)
        future.result(timeout=30)

    await loop.run_in_executor(None, run)  # raises Hypothesis's falsifying example, if any
