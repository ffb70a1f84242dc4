"""Chat, streaming and tool calling through the official openai SDK, once per provider.

A real gateway process (`manage.py serve`) talks HTTP to the four provider emulators, whose
answers are deterministic: "Echo: " + the last user text, a call of the first offered tool,
"Tool result: " + the tool's answer (apps/emulators/behaviour.py).
"""

import json

import pytest

from tests.conftest import wait_for_usage

from .support import CHAT_IDS, CHAT_MODELS, expected_cost

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
WEATHER_FUNCTION = WEATHER_TOOL["function"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_a_chat_in_the_openai_shape(openai_client, django_db_blocker, provider, model):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Привет, мир"}]
    )
    completion = raw.parse()

    assert completion.object == "chat.completion"
    assert completion.id.startswith("chatcmpl-")
    assert completion.created > 0
    assert completion.model == model
    assert len(completion.choices) == 1
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.message.role == "assistant"
    assert choice.message.content == "Echo: Привет, мир"
    assert choice.finish_reason == "stop"
    assert completion.usage.prompt_tokens > 0 and completion.usage.completion_tokens > 0
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert raw.headers["x-xrouter-provider"] == provider
    assert raw.headers["x-request-id"]

    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert (record.provider, record.status, record.endpoint, record.stream) == (provider, "ok", "chat", False)
    assert f"{record.provider}/{record.model}" == model
    assert record.prompt_tokens == completion.usage.prompt_tokens
    assert record.completion_tokens == completion.usage.completion_tokens
    details = completion.usage.prompt_tokens_details
    assert record.cached_tokens == (details.cached_tokens if details else 0)
    assert record.cost > 0
    assert record.cost == expected_cost(model, record.prompt_tokens, record.completion_tokens, record.cached_tokens)


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_accepts_content_as_an_array_of_text_parts(openai_client, provider, model):
    completion = openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": [{"type": "text", "text": "part one"}]}]
    )
    assert completion.choices[0].message.content == "Echo: part one"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_streams_deltas_that_add_up_to_the_answer(openai_client, django_db_blocker, provider, model):
    raw = openai_client.chat.completions.with_raw_response.create(
        model=model,
        messages=[{"role": "user", "content": "stream this please [long]"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-xrouter-provider"] == provider
    request_id = raw.headers["x-request-id"]
    chunks = list(raw.parse())  # the SDK stops at `data: [DONE]`; an error event would raise

    choice_chunks = [c for c in chunks if c.choices]
    usage_chunks = [c for c in chunks if c.usage is not None]
    assert all(c.object == "chat.completion.chunk" and c.model == model for c in chunks)
    assert len({c.id for c in chunks}) == 1
    assert choice_chunks[0].choices[0].delta.role == "assistant"
    assert len(choice_chunks) > 3, "a long answer arrives in several deltas"
    text = "".join(c.choices[0].delta.content or "" for c in choice_chunks)
    from apps.emulators.behaviour import LONG_ANSWER

    assert text == LONG_ANSWER
    finishes = [c.choices[0].finish_reason for c in choice_chunks]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    assert len(usage_chunks) == 1 and chunks[-1] is usage_chunks[0], "one usage chunk, after the last choice"
    assert usage_chunks[0].choices == []
    usage = usage_chunks[0].usage
    assert usage.completion_tokens > 0 and usage.total_tokens == usage.prompt_tokens + usage.completion_tokens

    record = wait_for_usage(django_db_blocker, request_id)
    assert (record.provider, record.status, record.stream) == (provider, "ok", True)
    assert (record.prompt_tokens, record.completion_tokens) == (usage.prompt_tokens, usage.completion_tokens)
    assert record.cost == expected_cost(model, record.prompt_tokens, record.completion_tokens, record.cached_tokens) > 0
    assert record.ttft_ms is not None


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_ends_a_stream_with_done_and_no_usage_chunk_unless_asked(gateway, provider, model):
    import httpx

    with httpx.stream("POST", gateway.v1 + "/chat/completions", timeout=30,
                      headers={"Authorization": f"Bearer {gateway.keys['alice']}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi there"}], "stream": True}) as r:
        assert r.status_code == 200
        lines = list(r.iter_lines())
    events = [line[6:] for line in lines if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    payloads = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in p or p["usage"] is None for p in payloads)
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in payloads) == "Echo: hi there"
    assert payloads[-1]["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_completes_a_tool_calling_round_trip(openai_client, provider, model):
    messages = [{"role": "user", "content": "What is the weather in Moscow?"}]
    first = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])

    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert len(choice.message.tool_calls) == 1
    call = choice.message.tool_calls[0]
    assert call.type == "function" and call.id
    assert call.function.name == "get_weather"
    assert isinstance(call.function.arguments, str), "OpenAI sends arguments as a JSON string"
    assert json.loads(call.function.arguments) == {"city": "Moscow"}

    messages.append(choice.message.model_dump(exclude_none=True))
    # JSON, as GigaChat requires of a function result (plain text would be wrapped for it).
    messages.append({"role": "tool", "tool_call_id": call.id, "content": '{"forecast":"sunny"}'})
    second = openai_client.chat.completions.create(model=model, messages=messages, tools=[WEATHER_TOOL])
    assert second.choices[0].message.content == 'Tool result: {"forecast":"sunny"}'
    assert second.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_calls_the_tool_named_by_tool_choice(openai_client, provider, model):
    other = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}}}
    completion = openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "time?"}], tools=[WEATHER_TOOL, other],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "get_time"
    assert json.loads(call.function.arguments) == {"zone": "Moscow"}


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_streams_a_tool_call_with_json_string_arguments(openai_client, provider, model):
    stream = openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Moscow?"}], tools=[WEATHER_TOOL], stream=True
    )
    name, arguments, call_ids, finish = "", "", set(), None
    for chunk in stream:
        for choice in chunk.choices:
            for call in choice.delta.tool_calls or ():
                assert call.index == 0
                if call.id:
                    call_ids.add(call.id)
                name += call.function.name or "" if call.function else ""
                arguments += call.function.arguments or "" if call.function else ""
            finish = choice.finish_reason or finish
    assert name == "get_weather"
    assert json.loads(arguments) == {"city": "Moscow"}
    assert len(call_ids) == 1
    assert finish == "tool_calls"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_speaks_the_legacy_functions_api(openai_client, provider, model):
    messages = [{"role": "user", "content": "What is the weather in Moscow?"}]
    first = openai_client.chat.completions.create(model=model, messages=messages, functions=[WEATHER_FUNCTION],
                                                  function_call="auto")
    choice = first.choices[0]
    assert choice.finish_reason == "function_call"
    assert not choice.message.tool_calls
    assert choice.message.function_call.name == "get_weather"
    assert json.loads(choice.message.function_call.arguments) == {"city": "Moscow"}

    messages.append({"role": "assistant", "content": None, "function_call": choice.message.function_call.model_dump()})
    messages.append({"role": "function", "name": "get_weather", "content": '{"forecast":"rainy"}'})
    second = openai_client.chat.completions.create(model=model, messages=messages, functions=[WEATHER_FUNCTION])
    assert second.choices[0].message.content == 'Tool result: {"forecast":"rainy"}'


def test_it_answers_through_an_operator_alias(openai_client):
    raw = openai_client.chat.completions.with_raw_response.create(model="gpt-4o", messages=[{"role": "user", "content": "alias"}])
    assert raw.parse().choices[0].message.content == "Echo: alias"
    assert raw.headers["x-xrouter-provider"] == "gigachat"


def test_the_clients_session_id_earns_gigachats_prompt_cache(openai_client):
    """X-Session-ID on /v1 reaches GigaChat (tenant-scoped), whose prompt cache then bills the
    repeated prefix as cached tokens (README, GigaChat)."""
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    second = [*first, {"role": "assistant", "content": "Echo: Hi"}, {"role": "user", "content": "Again"}]
    session = {"X-Session-ID": "conversation-42"}
    openai_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=first, extra_headers=session)
    completion = openai_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=second, extra_headers=session)
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    with pytest.raises(Exception) as caught:
        openai_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=first, extra_headers={"X-Session-ID": "x" * 129})
    assert caught.value.status_code == 400 and "X-Session-ID" in str(caught.value)
