"""The MTS (MWS GPT) and T-Bank (vLLM) emulators: OpenAI wire shapes, reasoning variants, errors."""

import base64
import json
import struct

import pytest
from openai import OpenAI

from .wire import sse_json

MTS_KEY = {"Authorization": "Bearer sk-demo-mts-key"}
TBANK_KEY = {"Authorization": "Bearer sk-demo-tbank-key"}
T_PRO = "t-tech/T-pro-it-2.0"
T_LITE = "t-tech/T-lite-it-2.1"
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "hourly": {"type": "boolean"},
                "coords": {"type": "object", "properties": {"lat": {"type": "number"}}},
            },
            "required": ["city"],
        },
    },
}


def chat(http, emulator, headers, **body):
    return http.post(emulator.base_url + "/chat/completions", headers=headers, json=body)


def user(text):
    return [{"role": "user", "content": text}]


def content_of(events) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e["choices"])


# --- MTS ---


def test_mts_works_with_the_openai_sdk(mts):
    client = OpenAI(base_url=mts.base_url, api_key="sk-demo-mts-key", max_retries=0)
    completion = client.chat.completions.create(model="mws-gpt-alpha", messages=user("Привет"))
    assert completion.choices[0].message.content == "Echo: Привет"
    assert completion.usage.prompt_tokens == 2 and completion.usage.completion_tokens == 2
    stream = client.chat.completions.create(
        model="mws-gpt-alpha", messages=user("[long]"), stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert len("".join(c.choices[0].delta.content or "" for c in chunks if c.choices).split()) == 120
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 120
    embedding = client.embeddings.create(model="bge-m3", input=["a", "b"])  # the SDK asks for base64
    assert len(embedding.data[0].embedding) == 1024
    assert {m.id for m in client.models.list()} >= {"mws-gpt-alpha", "QwQ-32B", "gpt-4o", "bge-m3"}


def test_mts_tool_call_and_result(http, mts):
    first = chat(http, mts, MTS_KEY, model="qwen2.5-72b-instruct", messages=user("Weather?"), tools=[TOOL]).json()
    choice = first["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert json.loads(call["function"]["arguments"]) == {"city": "Moscow", "days": 3, "hourly": True, "coords": {"lat": 1.5}}
    assert choice["message"]["content"] is None
    messages = user("Weather?") + [choice["message"], {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]
    second = chat(http, mts, MTS_KEY, model="qwen2.5-72b-instruct", messages=messages, tools=[TOOL]).json()
    assert second["choices"][0]["message"]["content"] == "Tool result: sunny"


def test_mts_tool_choice_none_and_named(http, mts):
    plain = chat(http, mts, MTS_KEY, model="mws-gpt-alpha", messages=user("x"), tools=[TOOL], tool_choice="none").json()
    assert plain["choices"][0]["message"]["content"] == "Echo: x"
    named = {"type": "function", "function": {"name": "missing"}}
    bad = chat(http, mts, MTS_KEY, model="mws-gpt-alpha", messages=user("x"), tools=[TOOL], tool_choice=named)
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"


def test_qwq_reasons_in_reasoning_content(http, mts):
    message = chat(http, mts, MTS_KEY, model="QwQ-32B", messages=user("why")).json()["choices"][0]["message"]
    assert message["reasoning_content"] == "Thinking about: why"
    assert message["content"] == "Echo: why"


def test_deepseek_reasons_inline_after_the_prompts_think_and_splits_the_closing_tag_when_streaming(http, mts):
    # The template opened <think> in the prompt: only the closing tag is in the output.
    body = chat(http, mts, MTS_KEY, model="deepseek-r1-distill-qwen-32b", messages=user("why")).json()
    assert body["choices"][0]["message"]["content"] == "Thinking about: why\n</think>\n\nEcho: why"
    events = sse_json(chat(http, mts, MTS_KEY, model="deepseek-r1-distill-qwen-32b", messages=user("why"), stream=True).text)
    pieces = [e["choices"][0]["delta"].get("content") for e in events]
    assert "\n</th" in pieces and "ink>\n\n" in pieces
    assert content_of(events) == "Thinking about: why\n</think>\n\nEcho: why"


def test_mts_stream_chunks_stop_and_n(http, mts):
    events = sse_json(chat(http, mts, MTS_KEY, model="mws-gpt-alpha", messages=user("a b c d e f"), stream=True).text)
    assert all(e["object"] == "chat.completion.chunk" and e["id"] == events[0]["id"] for e in events)
    assert events[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert events[-1]["choices"][0]["finish_reason"] == "stop"
    assert all("usage" not in e for e in events)  # not asked for
    assert content_of(events) == "Echo: a b c d e f"
    stopped = chat(http, mts, MTS_KEY, model="mws-gpt-alpha", messages=user("a b STOP c"), stop=["STOP"]).json()
    assert stopped["choices"][0]["message"]["content"] == "Echo: a b "
    two = chat(http, mts, MTS_KEY, model="mws-gpt-alpha", messages=user("x"), n=2).json()
    assert [c["index"] for c in two["choices"]] == [0, 1] and two["usage"]["completion_tokens"] == 4


def test_mts_embeddings_float_and_base64(http, mts):
    url = mts.base_url + "/embeddings"
    floats = http.post(url, headers=MTS_KEY, json={"model": "bge-m3", "input": "hello world", "encoding_format": "float"}).json()
    vector = floats["data"][0]["embedding"]
    assert len(vector) == 1024 and abs(sum(v * v for v in vector) - 1) < 1e-3
    assert floats["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    packed = http.post(
        url, headers=MTS_KEY, json={"model": "bge-m3", "input": ["hello world"], "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<1024f", base64.b64decode(packed["data"][0]["embedding"]))
    assert decoded[0] == pytest.approx(vector[0], abs=1e-6)


@pytest.mark.parametrize(
    "headers, body, status, code",
    [
        ({"Authorization": "Bearer wrong"}, {"model": "mws-gpt-alpha", "messages": user("x")}, 401, "invalid_api_key"),
        (MTS_KEY, {"model": "gpt-9", "messages": user("x")}, 404, "model_not_found"),
        (MTS_KEY, {"model": "mws-gpt-alpha", "messages": []}, 400, None),
        (MTS_KEY, {"model": "bge-m3", "messages": user("x")}, 400, None),
    ],
)
def test_mts_errors_use_the_openai_envelope(http, mts, headers, body, status, code):
    response = http.post(mts.base_url + "/chat/completions", headers=headers, json=body)
    assert response.status_code == status
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["code"] == code


# --- T-Bank (vLLM) ---


def test_tpro_thinks_by_default_into_reasoning(http, tbank):
    body = chat(http, tbank, TBANK_KEY, model=T_PRO, messages=user("17*23?")).json()
    message = body["choices"][0]["message"]
    assert body["id"].startswith("chatcmpl-") and body["choices"][0]["stop_reason"] is None
    assert message == {"role": "assistant", "content": "Echo: 17*23?", "reasoning": "Thinking about: 17*23?", "tool_calls": []}
    assert body["usage"] == {"prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7}


def test_enable_thinking_false_answers_directly(http, tbank):
    body = chat(http, tbank, TBANK_KEY, model=T_PRO, messages=user("x"), chat_template_kwargs={"enable_thinking": False})
    message = body.json()["choices"][0]["message"]
    assert "reasoning" not in message and message["content"] == "Echo: x"


def test_tlite_answers_directly(http, tbank):
    message = chat(http, tbank, TBANK_KEY, model=T_LITE, messages=user("x")).json()["choices"][0]["message"]
    assert set(message) == {"role", "content", "tool_calls"}


@pytest.mark.parametrize("field", ["reasoning", "reasoning_content"])
def test_reasoning_field_is_switchable(http, tbank, fresh_emulators, field):
    fresh_emulators["tbank"].configure(reasoning_field=field)
    events = sse_json(chat(http, tbank, TBANK_KEY, model=T_PRO, messages=user("q"), stream=True).text)
    thoughts = "".join(e["choices"][0]["delta"].get(field) or "" for e in events)
    assert thoughts == "Thinking about: q"
    assert content_of(events) == "Echo: q"


def test_reasoning_field_inline(http, tbank, fresh_emulators):
    fresh_emulators["tbank"].configure(reasoning_field="inline")
    message = chat(http, tbank, TBANK_KEY, model=T_PRO, messages=user("q")).json()["choices"][0]["message"]
    assert message["content"] == "<think>\nThinking about: q\n</think>\n\nEcho: q"


def test_reasoning_spends_the_token_budget_first(http, tbank):
    choice = chat(http, tbank, TBANK_KEY, model=T_PRO, messages=user("q"), max_tokens=2).json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "" and choice["message"]["reasoning"] == "Thinking about:"


def test_stream_usage_only_when_asked(http, tbank):
    plain = sse_json(chat(http, tbank, TBANK_KEY, model=T_LITE, messages=user("x"), stream=True).text)
    assert all("usage" not in e for e in plain)
    assert plain[-1]["choices"][0]["delta"] == {"content": ""} and plain[-1]["choices"][0]["finish_reason"] == "stop"
    asked = sse_json(
        chat(http, tbank, TBANK_KEY, model=T_LITE, messages=user("x"), stream=True, stream_options={"include_usage": True}).text
    )
    assert asked[-1]["choices"] == [] and asked[-1]["usage"] == {"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4}


def test_tbank_streamed_tool_call_fragments(http, tbank):
    events = sse_json(chat(http, tbank, TBANK_KEY, model=T_LITE, messages=user("x"), tools=[TOOL], stream=True).text)
    calls = [e["choices"][0]["delta"]["tool_calls"][0] for e in events if "tool_calls" in e["choices"][0]["delta"]]
    assert calls[0]["id"].startswith("chatcmpl-tool-") and calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments)["city"] == "Moscow"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_context_overflow_uses_the_vllm_message(http, tbank, fresh_emulators):
    fresh_emulators["tbank"].configure(context_length=10)
    response = chat(http, tbank, TBANK_KEY, model=T_LITE, messages=user("a b c d e"), max_tokens=8)
    assert response.status_code == 400
    assert response.json() == {
        "object": "error",
        "message": "This model's maximum context length is 10 tokens. However, you requested 14 tokens "
        "(6 in the messages, 8 in the completion). Please reduce the length of the messages or completion.",
        "type": "BadRequestError",
        "param": "messages",
        "code": 400,
    }


def test_tbank_errors(http, tbank):
    unauthorized = chat(http, tbank, {"Authorization": "Bearer nope"}, model=T_LITE, messages=user("x"))
    assert unauthorized.status_code == 401 and unauthorized.json() == {"error": "Unauthorized"}
    missing = chat(http, tbank, TBANK_KEY, model="t-tech/T-ultra", messages=user("x"))
    assert missing.status_code == 404
    assert missing.json()["type"] == "NotFoundError" and missing.json()["message"] == "The model `t-tech/T-ultra` does not exist."
    assert http.get(tbank.origin + "/health").status_code == 200
    models = http.get(tbank.base_url + "/models", headers=TBANK_KEY).json()
    assert [m["id"] for m in models["data"]] == [T_PRO, T_LITE] and models["data"][0]["max_model_len"] == 32768
