"""MTS and T-Bank (vLLM) adapters over the OpenAI-compatible emulators, plus dialect translation."""

import asyncio
import json

import pytest

from apps.emulators.behaviour import LONG_ANSWER
from apps.providers.adapters.base import CredentialConfig, ProviderConfig, ProviderError
from apps.providers.adapters.openai_compat import OpenAICompatibleAdapter, TBankAdapter

from .conftest import collect, joined, ledger, user

TPRO = "t-tech/T-pro-it-2.0"
TLITE = "t-tech/T-lite-it-2.1"
MTS_MODEL = "mws-gpt-alpha"
CHAT = "/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


def adapter_for(cls, **options):
    return cls(ProviderConfig("p", cls.kind, "http://upstream/v1", options=options))


# --- translation -----------------------------------------------------------------------------
def test_tbank_sends_thinking_as_a_chat_template_switch():
    tbank = adapter_for(TBankAdapter)
    payload = tbank.build_request({"messages": [user("x")], "thinking": False, "reasoning_effort": "high", "n": 2, "stop": ["z"]}, TPRO, stream=True)
    assert payload["chat_template_kwargs"] == {"enable_thinking": False}
    assert "reasoning_effort" not in payload and "thinking" not in payload
    assert payload["n"] == 2 and payload["stop"] == ["z"]
    assert payload["stream_options"] == {"include_usage": True}
    assert tbank.build_request({"messages": [user("x")], "reasoning_effort": "minimal"}, TPRO, stream=False)["chat_template_kwargs"] == {"enable_thinking": False}
    assert "chat_template_kwargs" not in tbank.build_request({"messages": [user("x")]}, TPRO, stream=False)
    assert adapter_for(TBankAdapter, thinking=False).build_request({"messages": [user("x")]}, TPRO, stream=False)["chat_template_kwargs"] == {"enable_thinking": False}


def test_a_generic_upstream_gets_reasoning_effort():
    generic = adapter_for(OpenAICompatibleAdapter)
    assert generic.build_request({"messages": [user("x")], "thinking": True}, "gpt", stream=False)["reasoning_effort"] == "medium"
    assert generic.build_request({"messages": [user("x")], "reasoning_effort": "low"}, "gpt", stream=False)["reasoning_effort"] == "low"


def test_reasoning_never_goes_back_upstream():
    payload = adapter_for(TBankAdapter).build_request(
        {"messages": [{"role": "developer", "content": "Be brief."}, user("2+2?"), {"role": "assistant", "content": "<think>\nhmm\n</think>\n\n4"}, user("and 3+3?")]},
        TPRO,
        stream=False,
    )
    assert payload["messages"][0]["role"] == "system"
    assert payload["messages"][2]["content"] == "4"


def test_it_reads_reasoning_in_any_of_its_fields():
    tbank = adapter_for(TBankAdapter)
    for message in (
        {"content": "4", "reasoning": "2+2"},
        {"content": "4", "reasoning_content": "2+2"},
        {"content": "<think>\n2+2\n</think>\n\n4"},
    ):
        assert tbank.parse_choice({"index": 0, "message": message, "finish_reason": "stop"})["message"] == {
            "role": "assistant", "content": "4", "reasoning_content": "2+2",
        }


# --- over HTTP -------------------------------------------------------------------------------
@pytest.mark.parametrize("kind, model", [("mts", MTS_MODEL), ("tbank", TLITE)])
async def test_it_chats_and_streams(make_adapter, kind, model):
    adapter = make_adapter(kind)
    result = await adapter.chat({"messages": [user("Привет")], "max_tokens": 50}, model)
    assert result.choices == [{"index": 0, "message": {"role": "assistant", "content": "Echo: Привет"}, "finish_reason": "stop"}]
    assert result.usage.prompt_tokens == 2 and result.upstream_model == model and result.provider_request_id
    chunks = await collect(adapter.stream_chat({"messages": [user("go [long]")], "stream": True}, model))
    assert chunks[0].delta == {"role": "assistant"} and chunks[0].provider_request_id
    assert joined(chunks) == LONG_ANSWER
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [120]  # include_usage was requested


async def test_it_streams_several_choices(make_adapter):
    chunks = await collect(make_adapter("mts").stream_chat({"messages": [user("hi")], "n": 2, "stream": True}, MTS_MODEL))
    for index in (0, 1):
        mine = [c for c in chunks if c.index == index and c.delta is not None]
        assert mine[0].delta == {"role": "assistant"}
        assert joined(mine) == "Echo: hi"
        assert [c.finish_reason for c in mine if c.finish_reason] == ["stop"]


async def test_it_passes_stop_through(make_adapter):
    result = await make_adapter("tbank").chat({"messages": [user("one two three")], "stop": [" two"]}, TLITE)
    assert result.choices[0]["message"]["content"] == "Echo: one"


@pytest.mark.parametrize("kind, model", [("mts", MTS_MODEL), ("tbank", TLITE)])
async def test_it_round_trips_a_tool_call(make_adapter, kind, model):
    adapter = make_adapter(kind)
    body = {"messages": [user("Weather?")], "tools": [WEATHER]}
    first = await adapter.chat(body, model)
    message = first.choices[0]["message"]
    call = message["tool_calls"][0]
    assert first.choices[0]["finish_reason"] == "tool_calls" and message["content"] is None
    assert json.loads(call["function"]["arguments"]) == {"city": "Moscow"}
    history = body["messages"] + [message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    second = await adapter.chat({"messages": history, "tools": [WEATHER]}, model)
    assert second.choices[0]["message"]["content"] == "Tool result: sunny"

    chunks = await collect(adapter.stream_chat({**body, "stream": True}, model))
    fragments = [tc for c in chunks if c.delta and "tool_calls" in c.delta for tc in c.delta["tool_calls"]]
    assert fragments[0]["id"] and fragments[0]["function"]["name"] == "get_weather"
    assert json.loads("".join(f["function"].get("arguments", "") for f in fragments)) == {"city": "Moscow"}
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


@pytest.mark.parametrize("style", ["reasoning", "reasoning_content", "inline"])
async def test_tbank_reasoning_arrives_as_reasoning_content_in_every_style(make_adapter, controls, style):
    controls["tbank"].configure(reasoning_field=style)
    adapter = make_adapter("tbank")
    result = await adapter.chat({"messages": [user("2+2?")]}, TPRO)
    assert result.choices[0]["message"] == {"role": "assistant", "content": "Echo: 2+2?", "reasoning_content": "Thinking about: 2+2?"}
    chunks = await collect(adapter.stream_chat({"messages": [user("2+2?")], "stream": True}, TPRO))
    assert joined(chunks) == "Echo: 2+2?"
    assert joined(chunks, "reasoning_content") == "Thinking about: 2+2?"
    assert not any("think>" in json.dumps(c.delta) for c in chunks if c.delta)


async def test_tbank_inline_reasoning_cut_by_max_tokens_stays_reasoning(make_adapter, controls):
    controls["tbank"].configure(reasoning_field="inline")
    adapter = make_adapter("tbank")
    result = await adapter.chat({"messages": [user("a b c d e f")], "max_tokens": 3}, TPRO)
    assert result.choices[0]["finish_reason"] == "length"
    assert result.choices[0]["message"]["content"] == "" and result.choices[0]["message"]["reasoning_content"] == "Thinking about: a"


async def test_tbank_thinking_switch_turns_reasoning_off(make_adapter):
    result = await make_adapter("tbank").chat({"messages": [user("quick")], "thinking": False}, TPRO)
    assert result.choices[0]["message"] == {"role": "assistant", "content": "Echo: quick"}


@pytest.mark.parametrize("model, field", [("QwQ-32B", "reasoning_content"), ("deepseek-r1-distill-qwen-32b", "inline")])
async def test_mts_reasoning_models(make_adapter, model, field):
    adapter = make_adapter("mts")
    result = await adapter.chat({"messages": [user("why")]}, model)
    assert result.choices[0]["message"]["reasoning_content"] == "Thinking about: why"
    assert result.choices[0]["message"]["content"] == "Echo: why"
    chunks = await collect(adapter.stream_chat({"messages": [user("why")], "stream": True}, model))
    assert (joined(chunks), joined(chunks, "reasoning_content")) == ("Echo: why", "Thinking about: why")


async def test_it_embeds(make_adapter):
    result = await make_adapter("mts").embeddings(["one", "two words"], "bge-m3", {})
    assert len(result.vectors) == 2 and len(result.vectors[0]) == 1024
    assert result.usage.prompt_tokens == 3


async def test_it_lists_models(make_adapter):
    models = await make_adapter("tbank").list_models()
    assert {"id": TPRO, "owned_by": "vllm"} in models
    await make_adapter("mts").health_check()


@pytest.mark.parametrize(
    "kind, fault, status, err_kind",
    [
        ("mts", {"status": 400, "message": "bad thing"}, 400, "bad_request"),
        ("tbank", {"status": 400, "message": "bad thing"}, 400, "bad_request"),
        ("mts", {"status": 429, "retry_after": 5}, 429, "rate_limited"),
        ("tbank", {"status": 500}, 502, "server_error"),
        ("tbank", {"reset": True}, 502, "connection"),
    ],
)
async def test_it_maps_errors(make_adapter, controls, kind, fault, status, err_kind):
    controls[kind].add_fault(path=CHAT, **fault)
    with pytest.raises(ProviderError) as caught:
        await make_adapter(kind).chat({"messages": [user("x")]}, MTS_MODEL if kind == "mts" else TLITE)
    assert (caught.value.status, caught.value.kind) == (status, err_kind)
    if "message" in fault:
        assert caught.value.message.endswith("bad thing")  # read from either envelope
    if "retry_after" in fault:
        assert caught.value.retry_after == 5.0


async def test_vllm_context_overflow_is_a_context_length_error(make_adapter, controls):
    controls["tbank"].configure(context_length=5)
    with pytest.raises(ProviderError) as caught:
        await collect(make_adapter("tbank").stream_chat({"messages": [user("far too many words for it")], "stream": True}, TLITE))
    assert (caught.value.status, caught.value.kind) == (400, "context_length")
    assert "maximum context length is 5 tokens" in caught.value.message


@pytest.mark.parametrize("kind", ["mts", "tbank"])
async def test_a_bad_key_is_an_auth_error_without_a_retry(make_adapter, controls, kind):
    with pytest.raises(ProviderError) as caught:
        await make_adapter(kind, secrets={"api_key": "sk-wrong-key-0000"}).chat({"messages": [user("x")]}, MTS_MODEL if kind == "mts" else TLITE)
    assert caught.value.kind == "auth" and caught.value.provider_status == 401
    assert len(ledger(controls, kind, CHAT)) == 1


async def test_an_unknown_model_is_404(make_adapter):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("mts").chat({"messages": [user("x")]}, "gpt-17")
    assert caught.value.status == 404 and "does not exist" in caught.value.message


@pytest.mark.parametrize("fault, kind", [({"cut_after_chunks": 4}, "stream_interrupted"), ({"malformed_chunk_at": 3}, "malformed_stream")])
async def test_a_broken_stream_raises(make_adapter, controls, fault, kind):
    controls["tbank"].add_fault(path=CHAT, **fault)
    seen = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in make_adapter("tbank").stream_chat({"messages": [user("x [long]")], "stream": True}, TLITE):
            seen.append(chunk)
    assert caught.value.kind == kind and joined(seen)


async def test_a_stream_times_out_when_the_first_byte_never_comes(make_adapter, controls):
    controls["mts"].add_fault(path=CHAT, latency_ms=1500)
    with pytest.raises(ProviderError) as caught:
        await collect(make_adapter("mts", timeout=0.3).stream_chat({"messages": [user("x")], "stream": True}, MTS_MODEL))
    assert caught.value.kind == "timeout"


async def test_closing_a_stream_early_drops_the_upstream_connection(make_adapter, controls):
    adapter = make_adapter("mts", max_concurrency=1)
    controls["mts"].add_fault(path=CHAT, chunk_delay_ms=30)
    stream = adapter.stream_chat({"messages": [user("x [long]")], "stream": True}, MTS_MODEL)
    for _ in range(3):
        await stream.__anext__()
    await stream.aclose()  # what the gateway does when its client disconnects
    for _ in range(100):
        entries = ledger(controls, "mts", CHAT)
        if entries and entries[0]["note"] == "client_disconnected":
            break
        await asyncio.sleep(0.02)
    assert entries[0]["note"] == "client_disconnected"
    # The credential's only slot was given back.
    assert (await adapter.chat({"messages": [user("next")]}, MTS_MODEL)).choices[0]["message"]["content"] == "Echo: next"


async def test_it_raises_in_band_stream_errors(scripted):
    scripted.answer(
        'data: {"id":"1","choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"}}]}\n\n',
        'data: {"object":"error","message":"engine died","type":"InternalServerError","code":500}\n\n',
        content_type="text/event-stream",
    )
    adapter = TBankAdapter(ProviderConfig("t", "tbank", scripted.origin + "/v1", credentials=(CredentialConfig("c", {"api_key": "k"}),)))
    seen = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for chunk in adapter.stream_chat({"messages": [user("x")], "stream": True}, TLITE):
                seen.append(chunk)
    finally:
        await adapter.close()
    assert joined(seen) == "Hi" and caught.value.kind == "server_error" and "engine died" in caught.value.message
    assert scripted.requests[0]["headers"]["Authorization"] == "Bearer k"


async def test_a_stream_that_ends_without_finishing_is_an_error(scripted):
    scripted.answer('data: {"id":"1","choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', content_type="text/event-stream")
    adapter = OpenAICompatibleAdapter(ProviderConfig("o", "openai_compatible", scripted.origin + "/v1"))
    try:
        with pytest.raises(ProviderError) as caught:
            await collect(adapter.stream_chat({"messages": [user("x")], "stream": True}, "m"))
    finally:
        await adapter.close()
    assert caught.value.kind == "stream_interrupted"
