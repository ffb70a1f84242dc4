"""A misbehaving upstream, over loopback HTTP into the real adapters: bodies and streams are read
within bounds (issue 8 item 8), wrong shapes and types become ProviderError (item 15), and deeply
nested JSON is a ProviderError, never a RecursionError (item 17)."""

import pytest
from django.conf import settings
from django.test import override_settings

from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.gigachat import build_messages as giga_messages
from apps.providers.adapters.yandexgpt import build_messages as yandex_messages

from .conftest import collect, user
from .hostile_upstream import HostileUpstream, gzip_bomb, peak_memory

MiB = 1024 * 1024
KINDS = ["gigachat", "yandexgpt", "mts"]
SSE_KINDS = ["gigachat", "mts"]
BODY = {"model": "m", "messages": [user("hi")]}


@pytest.fixture
async def upstream():
    server = await HostileUpstream().start()
    yield server
    await server.stop()


@pytest.fixture
def hostile(make_adapter, upstream):
    def make(kind):
        return make_adapter(kind, base_url=upstream.origin)

    return make


@pytest.fixture(scope="module")
def bomb():
    return gzip_bomb(64 * MiB)


def limits(**values):
    return override_settings(XROUTER={**settings.XROUTER, **values})


async def _chat(adapter):
    return await adapter.chat(BODY, "m")


async def _stream(adapter):
    return await collect(adapter.stream_chat({**BODY, "stream": True}, "m"))


# --- item 8: bounded reads ----------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
async def test_a_gzip_bomb_answer_is_refused_within_the_body_bound(hostile, upstream, bomb, kind):
    adapter = hostile(kind)
    upstream.answer(encoding="gzip", chunk=bomb, repeat=1)
    with limits(MAX_UPSTREAM_BODY_BYTES=MiB):
        error, _, peak = await peak_memory(_chat(adapter))
    assert isinstance(error, ProviderError) and error.kind == "bad_response", error
    assert peak < 8 * MiB, peak


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("call", [_chat, _stream], ids=["unary", "stream"])
async def test_a_gzip_bomb_error_body_is_read_only_in_part(hostile, upstream, bomb, kind, call):
    adapter = hostile(kind)
    upstream.answer(status=500, encoding="gzip", chunk=bomb, repeat=1)
    error, _, peak = await peak_memory(call(adapter))
    assert isinstance(error, ProviderError) and error.provider_status == 500, error
    assert peak < 4 * MiB, peak


@pytest.mark.parametrize("kind", SSE_KINDS)
async def test_an_endless_event_is_a_malformed_stream(hostile, upstream, kind):
    adapter = hostile(kind)
    upstream.answer(content_type="text/event-stream", chunk=b"data: " + b"x" * 1000 + b"\n", repeat=32 * 1024)
    error, _, peak = await peak_memory(_stream(adapter))
    assert isinstance(error, ProviderError) and error.kind == "malformed_stream", error
    assert peak < 8 * MiB, peak


@pytest.mark.parametrize("kind", KINDS)
async def test_an_endless_line_is_a_malformed_stream(hostile, upstream, kind):
    adapter = hostile(kind)
    head = b"data: " if kind in SSE_KINDS else b""
    upstream.answer(content_type="text/event-stream", head=head, chunk=b"x" * 16384, repeat=2048)
    error, _, peak = await peak_memory(_stream(adapter))
    assert isinstance(error, ProviderError) and error.kind == "malformed_stream", error
    assert peak < 8 * MiB, peak


ENDLESS = {
    "gigachat": b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
    "mts": b'data: {"choices":[{"index":0,"delta":{"content":"x"}}]}\n\n',
    "yandexgpt": b'{"result":{"alternatives":[{"message":{"role":"assistant","text":""},"status":"ALTERNATIVE_STATUS_PARTIAL"}]}}\n',
}


@pytest.mark.parametrize("kind", KINDS)
async def test_a_stream_past_its_byte_bound_is_cut(hostile, upstream, kind):
    adapter = hostile(kind)
    upstream.answer(content_type="text/event-stream", chunk=ENDLESS[kind], repeat=2 * MiB // len(ENDLESS[kind]))
    with limits(MAX_STREAM_BYTES=MiB):
        error, _, _ = await peak_memory(_stream(adapter))
    assert isinstance(error, ProviderError) and error.kind == "too_large", error


async def test_a_stream_within_its_bound_is_read_whole(hostile, upstream):
    adapter = hostile("mts")
    event = b'data: {"choices":[{"index":0,"delta":{"content":"' + b"y" * 900_000 + b'"}}]}\n\n'
    upstream.answer(content_type="text/event-stream", head=event,
                    tail=b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
    chunks = await _stream(adapter)
    assert "".join(c.delta.get("content", "") for c in chunks if c.delta) == "y" * 900_000


# --- item 15: wrong shapes and types ------------------------------------------------------------
def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


BAD_ANSWERS = {
    "mts": [
        b'{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":"n/a"}}',
        b'{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens_details":"x"}}',
        b'{"choices":[1]}',
        b'{"choices":[{"message":"x"}]}',
        b'{"choices":[{"message":{"content":"hi"},"finish_reason":[1]}]}',
        b'{"choices":[{"message":{"content":["a", {"b": 1}]}}]}',
        b'{"choices":[{"message":{"content":null,"tool_calls":[1]}}]}',
        b'{"choices":[{"message":{"content":null,"tool_calls":[{"function":{"name":"f","arguments":' + _nested(1000) + b"}}]}}]}",
    ],
    "gigachat": [
        b'{"choices":[{"message":{"content":"hi"}}],"usage":{"prompt_tokens":"n/a"}}',
        b'{"choices":[{"message":{"content":"hi","function_call":"x"}}]}',
        b'{"choices":[{"message":{"content":"hi"},"finish_reason":{}}]}',
        b'{"choices":[{"message":{"content":{"x":1}}}]}',
        b'{"choices":[{"message":{"content":"","function_call":{"name":"f","arguments":' + _nested(1000) + b"}}}]}",
    ],
    "yandexgpt": [
        b'{"result":{"alternatives":[{"message":{"text":"hi"},"status":"ALTERNATIVE_STATUS_FINAL"}],"usage":{"inputTextTokens":"n/a"}}}',
        b'{"result":{"alternatives":[1]}}',
        b'{"result":{"alternatives":[{"message":{"text":"hi","toolCallList":{"toolCalls":[1]}}}]}}',
        b'{"result":{"alternatives":[{"message":{"text":["hi"]},"status":"ALTERNATIVE_STATUS_FINAL"}]}}',
        b'{"result":{"alternatives":[{"message":{"toolCallList":{"toolCalls":[{"functionCall":{"name":"f","arguments":'
        + _nested(1000) + b"}}]}},\"status\":\"ALTERNATIVE_STATUS_TOOL_CALLS\"}]}}",
    ],
}
UNARY_CASES = [(kind, i) for kind, answers in BAD_ANSWERS.items() for i in range(len(answers))]


def _as_stream(kind: str, answer: bytes) -> bytes:
    """The same wrong shapes inside a stream event (choices' `message` read as `delta`)."""
    if kind == "yandexgpt":
        return answer + b"\n"
    return b"data: " + answer.replace(b'"message"', b'"delta"') + b"\n\n"


@pytest.mark.parametrize(("kind", "case"), UNARY_CASES)
async def test_a_wrong_shape_in_an_answer_is_a_provider_error(hostile, upstream, kind, case):
    adapter = hostile(kind)
    upstream.answer(chunk=BAD_ANSWERS[kind][case], repeat=1)
    error, result, _ = await peak_memory(_chat(adapter))
    assert isinstance(error, ProviderError) and error.kind == "bad_response", (error, result)


@pytest.mark.parametrize(("kind", "case"), UNARY_CASES)
async def test_a_wrong_shape_in_a_stream_is_a_provider_error(hostile, upstream, kind, case):
    adapter = hostile(kind)
    upstream.answer(content_type="text/event-stream", chunk=_as_stream(kind, BAD_ANSWERS[kind][case]), repeat=1)
    error, result, _ = await peak_memory(_stream(adapter))
    assert isinstance(error, ProviderError) and error.kind in ("malformed_stream", "bad_response"), (error, result)


# --- item 17: deeply nested JSON from the client -----------------------------------------------
DEEP = "[" * 5000 + "]" * 5000
CALL = {"id": "call_0_f", "type": "function", "function": {"name": "f", "arguments": DEEP}}


@pytest.mark.parametrize("build", [giga_messages, yandex_messages], ids=["gigachat", "yandexgpt"])
def test_deeply_nested_tool_arguments_from_the_client_are_a_400(build):
    history = [user("hi"), {"role": "assistant", "content": None, "tool_calls": [CALL]},
               {"role": "tool", "tool_call_id": "call_0_f", "content": "{}"}]
    with pytest.raises(ProviderError) as caught:
        build(history)
    assert caught.value.status == 400


def test_a_deeply_nested_tool_result_goes_to_gigachat_as_text():
    history = [user("hi"), {"role": "assistant", "content": None, "tool_calls": [{**CALL, "function": {"name": "f", "arguments": "{}"}}]},
               {"role": "tool", "tool_call_id": "call_0_f", "content": DEEP}]
    assert giga_messages(history)[-1] == {"role": "function", "name": "f", "content": '{"result": "' + DEEP + '"}'}


async def _embed(adapter, upstream, embedding: bytes):
    upstream.answer(chunk=b'{"data": [{"index": 0, "embedding": ' + embedding + b'}], "usage": {"prompt_tokens": 1}}', repeat=1)
    error, result, _ = await peak_memory(adapter.embeddings(["x"], "m", {}))
    assert isinstance(error, ProviderError) and error.kind == "bad_response", (error, result)


@pytest.mark.parametrize("kind", ["gigachat", "mts"])
@pytest.mark.parametrize("embedding", [b'["1", 0.5]', b'"x"', b"[[0.5]]"])
async def test_an_embedding_that_is_not_a_list_of_numbers_is_a_bad_answer(hostile, upstream, kind, embedding):
    await _embed(hostile(kind), upstream, embedding)


@pytest.mark.parametrize("kind", ["gigachat", "mts"])
async def test_an_embedding_past_float32_is_a_bad_answer(hostile, upstream, kind):
    await _embed(hostile(kind), upstream, b"[1e300, 0.5]")


@pytest.mark.parametrize("value", ["nan", "NaN", float("nan")])
def test_a_gigachat_token_expiry_that_is_not_a_number_falls_back_to_the_default(value):
    import math
    import time

    from apps.providers.adapters.gigachat import TOKEN_LIFETIME, _expiry

    expiry = _expiry(value)
    assert math.isfinite(expiry) and expiry <= time.time() + TOKEN_LIFETIME + 1
