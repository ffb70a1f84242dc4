"""GigaChat adapter: request/answer translation, then real HTTP against the GigaChat emulator."""

import asyncio
import json
import time

import pytest

from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY
from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.gigachat import _expiry, build_request, parse_choice, stream_event

from .conftest import collect, joined, ledger, user

MODEL = "GigaChat-2-Max"
OAUTH = "/api/v2/oauth"
CHAT = "/api/v1/chat/completions"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
STATE_ID = "0199e210-2f13-744c-8fe5-c9a19fe27db7"


# --- translation -----------------------------------------------------------------------------
def test_it_maps_roles_to_what_gigachat_accepts():
    body = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": "Answer in Russian."},
            user("Hi"),
            {"role": "user", "content": [{"type": "text", "text": "there"}, {"type": "text", "text": "friend"}]},
            {"role": "system", "content": "Late instruction."},
            {"role": "assistant", "content": "Hello."},
            {"role": "assistant", "content": "How can I help?"},
        ]
    }
    messages = build_request(body, MODEL)["messages"]
    assert messages == [
        {"role": "system", "content": "Be brief.\n\nAnswer in Russian."},
        {"role": "user", "content": "Hi\n\nthere\nfriend\n\nLate instruction."},
        {"role": "assistant", "content": "Hello.\n\nHow can I help?"},
    ]


def test_it_translates_tools_calls_and_results():
    body = {
        "messages": [
            user("Weather in Moscow?"),
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": STATE_ID, "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Moscow"}'}}],
            },
            {"role": "tool", "tool_call_id": STATE_ID, "content": "sunny"},
            {"role": "tool", "tool_call_id": STATE_ID, "content": '{"temp": 20}'},
        ],
        "tools": [WEATHER],
        "tool_choice": {"type": "function", "function": {"name": "get_weather"}},
    }
    payload = build_request(body, MODEL)
    assert payload["functions"] == [WEATHER["function"]]
    assert payload["function_call"] == {"name": "get_weather"}
    assistant, result, second = payload["messages"][1:]
    assert assistant == {
        "role": "assistant",
        "content": "",
        "function_call": {"name": "get_weather", "arguments": {"city": "Moscow"}},
        "functions_state_id": STATE_ID,
    }
    assert result == {"role": "function", "name": "get_weather", "content": '{"result": "sunny"}'}
    assert second["content"] == '{"temp": 20}'  # already an object: sent as is


def test_it_serialises_parallel_calls_one_per_turn():
    calls = [
        {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Moscow"}'}},
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    body = {
        "messages": [
            user("Weather and time?"),
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
            {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
        ]
    }
    roles = [(m["role"], m.get("name") or m.get("function_call", {}).get("name")) for m in build_request(body, MODEL)["messages"]]
    assert roles == [("user", None), ("assistant", "get_weather"), ("function", "get_weather"), ("assistant", "get_time"), ("function", "get_time")]


def test_it_translates_sampling_and_structured_output():
    payload = build_request(
        {
            "messages": [user("x")],
            "temperature": 0,
            "top_p": 0.5,
            "max_tokens": 10,
            "n": 3,
            "stop": ["END"],

            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}, "strict": True}},
            "thinking": True,
        },
        MODEL,
        {"repetition_penalty": 1.1, "profanity_check": False},
    )
    assert payload["temperature"] == 0.001  # greedy, since GigaChat refuses 0
    assert payload["top_p"] == 0.5 and payload["max_tokens"] == 10
    assert "n" not in payload and "stop" not in payload
    assert payload["response_format"] == {"type": "json_schema", "schema": {"type": "object", "properties": {}}, "strict": True}
    assert payload["repetition_penalty"] == 1.1 and payload["profanity_check"] is False
    assert payload["reasoning_effort"] == "medium"


@pytest.mark.parametrize(
    "extra, param",
    [
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"frequency_penalty": -1}, "frequency_penalty"),
        ({"tools": [WEATHER, {**WEATHER, "function": {**WEATHER["function"], "name": "other"}}], "tool_choice": "required"}, "tool_choice"),
    ],
)
def test_it_refuses_parameters_it_cannot_honour(extra, param):
    with pytest.raises(ProviderError) as caught:
        build_request({"messages": [user("x")], **extra}, MODEL)
    assert caught.value.kind == "unsupported_parameter" and caught.value.status == 400 and param in caught.value.message
    assert caught.value.param == param


def test_it_honours_required_with_a_single_tool_by_forcing_it():
    assert build_request({"messages": [user("x")], "tools": [WEATHER], "tool_choice": "required"}, MODEL)["function_call"] == {"name": "get_weather"}


def test_it_refuses_images():
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(ProviderError) as caught:
        build_request(body, MODEL)
    assert caught.value.kind == "unsupported_parameter" and caught.value.param == "messages[0].content"


def test_it_reads_answers_into_openai_shape():
    choice = parse_choice(
        {
            "message": {"content": "", "role": "assistant", "function_call": {"name": "get_weather", "arguments": {"city": "Москва"}}, "functions_state_id": STATE_ID},
            "index": 0,
            "finish_reason": "function_call",
        }
    )
    call = choice["message"]["tool_calls"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert call["id"] == STATE_ID and json.loads(call["function"]["arguments"]) == {"city": "Москва"}
    assert parse_choice({"message": {"content": "no"}, "finish_reason": "blacklist"})["finish_reason"] == "content_filter"
    chunks = stream_event({"choices": [{"delta": {"content": ""}, "index": 0, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "precached_prompt_tokens": 3}})
    assert chunks[0].finish_reason == "stop" and chunks[1].usage.cached_tokens == 3


def test_it_reads_expiry_in_milliseconds_or_seconds():
    assert _expiry(1767225600000) == 1767225600
    assert _expiry(1767225600) == 1767225600


# --- over HTTP -------------------------------------------------------------------------------
async def test_it_chats(make_adapter):
    result = await make_adapter("gigachat").chat({"messages": [{"role": "system", "content": "Be kind."}, user("Привет")]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: Привет"
    assert result.choices[0]["finish_reason"] == "stop"
    assert result.usage.prompt_tokens > 0 and result.usage.cached_tokens == 0  # no session, no cache hit
    assert result.upstream_model == "GigaChat-2-Max:2.0.28.2"
    assert result.provider_request_id


async def test_it_streams_deltas_usage_and_finish_reason(make_adapter):
    chunks = await collect(make_adapter("gigachat").stream_chat({"messages": [user("tell me [long]")], "stream": True}, MODEL))
    assert chunks[0].delta == {"role": "assistant"} and chunks[0].provider_request_id
    from apps.emulators.behaviour import LONG_ANSWER

    assert joined(chunks) == LONG_ANSWER
    finishes = [c.finish_reason for c in chunks if c.finish_reason]
    assert finishes == ["stop"]
    usage = [c.usage for c in chunks if c.usage]
    assert len(usage) == 1 and usage[0].completion_tokens == 120


async def test_it_round_trips_a_tool_call(make_adapter):
    adapter = make_adapter("gigachat")
    body = {"messages": [user("Weather in Moscow?")], "tools": [WEATHER]}
    first = await adapter.chat(body, MODEL)
    message = first.choices[0]["message"]
    call = message["tool_calls"][0]
    assert first.choices[0]["finish_reason"] == "tool_calls"
    assert call["function"]["name"] == "get_weather" and json.loads(call["function"]["arguments"]) == {"city": "Moscow"}
    history = body["messages"] + [message, {"role": "tool", "tool_call_id": call["id"], "content": "sunny, +20"}]
    second = await adapter.chat({"messages": history, "tools": [WEATHER]}, MODEL)
    assert second.choices[0]["message"]["content"] == 'Tool result: {"result": "sunny, +20"}'


async def test_it_streams_a_tool_call(make_adapter):
    chunks = await collect(make_adapter("gigachat").stream_chat({"messages": [user("Weather?")], "tools": [WEATHER], "stream": True}, MODEL))
    calls = [c.delta["tool_calls"][0] for c in chunks if c.delta and "tool_calls" in c.delta]
    assert len(calls) == 1 and calls[0]["index"] == 0 and calls[0]["function"]["name"] == "get_weather"
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_it_embeds(make_adapter):
    from apps.emulators.behaviour import embedding_vector

    result = await make_adapter("gigachat").embeddings(["first text", "second"], "Embeddings", {})
    assert result.vectors == [embedding_vector("first text", 1024), embedding_vector("second", 1024)]
    assert result.usage.prompt_tokens == 3


async def test_it_lists_models_and_checks_health(make_adapter):
    adapter = make_adapter("gigachat")
    models = await adapter.list_models()
    assert {"id": "GigaChat-2-Max", "owned_by": "salutedevices", "type": "chat"} in models
    await adapter.health_check()


async def test_it_fetches_one_token_for_a_hundred_concurrent_chats(make_adapter, controls):
    adapter = make_adapter("gigachat")
    results = await asyncio.gather(*(adapter.chat({"messages": [user(f"hi {i}")]}, MODEL) for i in range(100)))
    assert [r.choices[0]["message"]["content"] for r in results] == [f"Echo: hi {i}" for i in range(100)]
    assert len(ledger(controls, "gigachat", OAUTH)) == 1
    assert len(ledger(controls, "gigachat", CHAT)) == 100


async def test_it_refreshes_an_expired_token(make_adapter, controls):
    controls["gigachat"].configure(token_lifetime_s=0.6)
    adapter = make_adapter("gigachat")
    await adapter.chat({"messages": [user("one")]}, MODEL)
    await adapter.chat({"messages": [user("two")]}, MODEL)
    assert len(ledger(controls, "gigachat", OAUTH)) == 1
    await asyncio.sleep(0.35)  # past half of a short lifetime: refreshed before the call, no 401
    await adapter.chat({"messages": [user("three")]}, MODEL)
    assert len(ledger(controls, "gigachat", OAUTH)) == 2
    assert all(e["status"] == 200 for e in ledger(controls, "gigachat", CHAT))


async def test_it_reauthenticates_once_on_401(make_adapter, controls):
    adapter = make_adapter("gigachat")
    await adapter.chat({"messages": [user("warm up")]}, MODEL)
    controls["gigachat"].add_fault(status=401, path=CHAT)
    result = await adapter.chat({"messages": [user("again")]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: again"
    assert len(ledger(controls, "gigachat", OAUTH)) == 2

    controls["gigachat"].clear_ledger()
    controls["gigachat"].add_fault(status=401, path=CHAT, count=2)
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("refused")]}, MODEL)
    assert caught.value.kind == "auth" and caught.value.provider_status == 401
    assert len(ledger(controls, "gigachat", CHAT)) == 2  # one retry, no more
    assert len(ledger(controls, "gigachat", OAUTH)) == 1


async def test_it_reauthenticates_a_stream_once_on_401(make_adapter, controls):
    adapter = make_adapter("gigachat")
    await adapter.chat({"messages": [user("warm up")]}, MODEL)
    controls["gigachat"].add_fault(status=401, path=CHAT)
    chunks = await collect(adapter.stream_chat({"messages": [user("streamed")], "stream": True}, MODEL))
    assert joined(chunks) == "Echo: streamed"


async def test_it_uses_the_user_password_flow(make_adapter, controls):
    adapter = make_adapter("gigachat", secrets={"user": "demo-user", "password": "demo-password"})
    result = await adapter.chat({"messages": [user("legacy")]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: legacy"
    assert len(ledger(controls, "gigachat", "/api/v1/token")) == 1


async def test_it_reports_oauth_refusals_as_our_credential_problem(make_adapter):
    adapter = make_adapter("gigachat", secrets={"authorization_key": "d3Jvbmc6a2V5"})  # base64("wrong:key")
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert caught.value.kind == "auth" and caught.value.status == 502
    assert "credentials doesn't match db data" in caught.value.message and "code 6" in caught.value.message
    assert "d3Jvbmc6a2V5" not in caught.value.message

    adapter = make_adapter("gigachat", secrets={"authorization_key": DEMO_AUTHORIZATION_KEY, "scope": "GIGACHAT_API_NOPE"})
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert caught.value.kind == "auth" and "scope data format invalid" in caught.value.message


@pytest.mark.parametrize(
    "fault, status, kind",
    [
        ({"status": 400}, 400, "bad_request"),
        ({"status": 422, "message": "Invalid params: repetition_penalty must be in range (0, +inf)"}, 400, "bad_request"),
        ({"status": 402}, 502, "quota"),
        ({"status": 429, "retry_after": 7}, 429, "rate_limited"),
        ({"status": 500}, 502, "server_error"),
        ({"status": 503}, 503, "unavailable"),
        ({"reset": True}, 502, "connection"),
    ],
)
async def test_it_maps_errors(make_adapter, controls, fault, status, kind):
    adapter = make_adapter("gigachat")
    controls["gigachat"].add_fault(path=CHAT, **fault)
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert (caught.value.status, caught.value.kind) == (status, kind)
    if fault.get("retry_after"):
        assert caught.value.retry_after == 7.0
    if fault.get("message"):
        assert "repetition_penalty" in caught.value.message


async def test_it_maps_an_unknown_model_to_404(make_adapter):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("gigachat").chat({"messages": [user("x")]}, "GigaChat-17")
    assert caught.value.status == 404 and caught.value.kind == "model_not_found" and "No such model" in caught.value.message


async def test_it_times_out(make_adapter, controls):
    adapter = make_adapter("gigachat", timeout=0.3)
    await adapter.chat({"messages": [user("token first")]}, MODEL)
    controls["gigachat"].add_fault(path=CHAT, latency_ms=1500)
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert caught.value.kind == "timeout" and caught.value.status == 504 and time.monotonic() - started < 1.2


async def test_a_stream_fails_before_its_first_chunk_on_an_error_status(make_adapter, controls):
    controls["gigachat"].add_fault(path=CHAT, status=429, retry_after=3)
    stream = make_adapter("gigachat").stream_chat({"messages": [user("x")], "stream": True}, MODEL)
    with pytest.raises(ProviderError) as caught:
        await stream.__anext__()
    assert caught.value.status == 429 and caught.value.retry_after == 3.0


@pytest.mark.parametrize("fault, kind", [({"cut_after_chunks": 3}, "stream_interrupted"), ({"malformed_chunk_at": 2}, "malformed_stream")])
async def test_a_broken_stream_raises_after_its_good_chunks(make_adapter, controls, fault, kind):
    controls["gigachat"].add_fault(path=CHAT, **fault)
    seen = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in make_adapter("gigachat").stream_chat({"messages": [user("x [long]")], "stream": True}, MODEL):
            seen.append(chunk)
    assert caught.value.kind == kind
    assert joined(seen)  # some text got through before the failure


async def test_a_stream_cut_before_any_data_fails_on_its_first_chunk(make_adapter, controls):
    """So the router can still fall back: nothing has reached the client yet."""
    controls["gigachat"].add_fault(path=CHAT, cut_after_chunks=0)
    stream = make_adapter("gigachat").stream_chat({"messages": [user("x")], "stream": True}, MODEL)
    with pytest.raises(ProviderError) as caught:
        await stream.__anext__()
    assert caught.value.kind == "stream_interrupted"


async def test_an_error_that_echoes_the_access_token_does_not_carry_it(make_adapter, emulators, controls):
    adapter = make_adapter("gigachat")
    await adapter.chat({"messages": [user("warm up")]}, MODEL)
    (token,) = list(emulators["gigachat"].state.tokens)
    controls["gigachat"].add_fault(path=CHAT, status=500, message=f"token {token} misbehaved", count=2)
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert "misbehaved" in caught.value.message and token not in caught.value.message
    with pytest.raises(ProviderError) as caught:
        await collect(adapter.stream_chat({"messages": [user("x")], "stream": True}, MODEL))
    assert "misbehaved" in caught.value.message and token not in caught.value.message
