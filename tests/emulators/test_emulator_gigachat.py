"""The GigaChat emulator over raw HTTP: auth, chat, streams, functions, embeddings, errors."""

import base64
import json
import time
import uuid

import pytest

from apps.emulators.behaviour import LONG_ANSWER
from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY

from .wire import sse_json, sse_payloads

WEATHER = {
    "name": "weather_forecast",
    "description": "Forecast",
    "parameters": {
        "type": "object",
        "properties": {
            "location": {"type": "string"},
            "num_days": {"type": "integer"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "detailed": {"type": "boolean"},
        },
        "required": ["location", "num_days"],
    },
}


def oauth(http, gigachat, key=DEMO_AUTHORIZATION_KEY, scope="GIGACHAT_API_PERS", rquid=None, scheme="Basic"):
    headers = {"Authorization": f"{scheme} {key}", "RqUID": rquid or str(uuid.uuid4())}
    return http.post(gigachat.auth_url, headers=headers, data={"scope": scope} if scope is not None else {})


def chat(http, gigachat, headers, **body):
    body.setdefault("model", "GigaChat")
    return http.post(gigachat.base_url + "/chat/completions", headers=headers, json=body)


def test_oauth_issues_a_30_minute_token_in_milliseconds(http, gigachat):
    response = oauth(http, gigachat)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    assert set(body) == {"access_token", "expires_at"}
    assert abs(body["expires_at"] - (time.time() + 1800) * 1000) < 5000
    uuid.UUID(response.headers["X-Request-Id"])
    uuid.UUID(response.headers["X-Session-Id"])


@pytest.mark.parametrize(
    "kwargs, status, code",
    [
        ({"rquid": "not-a-uuid"}, 400, None),
        ({"rquid": str(uuid.uuid1())}, 400, None),
        ({"key": "bm90LWEta2V5"}, 401, 6),
        ({"key": "%%%not base64%%%"}, 401, 4),
        ({"scheme": "Bearer"}, 401, 4),
        ({"scope": None}, 400, 5),
        ({"scope": "GIGACHAT_API_NOPE"}, 400, 1),
    ],
)
def test_oauth_errors_use_the_code_message_shape(http, gigachat, kwargs, status, code):
    response = oauth(http, gigachat, **kwargs)
    assert response.status_code == status
    body = response.json()
    assert set(body) == {"code", "message"}
    if code is not None:
        assert body["code"] == code


def test_oauth_refuses_a_scope_the_key_was_not_issued_for(http, gigachat, fresh_emulators):
    fresh_emulators["gigachat"].configure(authorization_keys={DEMO_AUTHORIZATION_KEY: ["GIGACHAT_API_PERS"]})
    response = oauth(http, gigachat, scope="GIGACHAT_API_CORP")
    assert response.status_code == 400
    assert response.json() == {"code": 7, "message": "scope from db not fully includes consumed scope"}


def test_user_password_token(http, gigachat):
    auth = base64.b64encode(b"demo-user:demo-password").decode()
    response = http.post(gigachat.base_url + "/token", headers={"Authorization": f"Basic {auth}"})
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"tok", "exp"}
    models = http.get(gigachat.base_url + "/models", headers={"Authorization": f"Bearer {body['tok']}"})
    assert models.status_code == 200


def test_unknown_bearer_is_401(http, gigachat):
    response = http.get(gigachat.base_url + "/models", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"status": 401, "message": "Unauthorized"}


def test_token_expires_after_the_configured_lifetime(http, gigachat, fresh_emulators):
    fresh_emulators["gigachat"].configure(token_lifetime_s=0.2)
    token = oauth(http, gigachat).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert http.get(gigachat.base_url + "/models", headers=headers).status_code == 200
    time.sleep(0.3)
    assert http.get(gigachat.base_url + "/models", headers=headers).status_code == 401


def test_models_list_and_get(http, gigachat, giga_headers):
    listing = http.get(gigachat.base_url + "/models", headers=giga_headers).json()
    assert listing["object"] == "list"
    kinds = {m["id"]: m["type"] for m in listing["data"]}
    assert kinds["GigaChat-2-Max"] == "chat" and kinds["Embeddings"] == "embedder"
    one = http.get(gigachat.base_url + "/models/GigaChat-2", headers=giga_headers)
    assert one.json() == {"id": "GigaChat-2", "object": "model", "owned_by": "salutedevices", "type": "chat"}
    missing = http.get(gigachat.base_url + "/models/GPT-5", headers=giga_headers)
    assert missing.status_code == 404


def test_chat_has_the_exact_v1_shape(http, gigachat, giga_headers):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}]
    response = chat(http, gigachat, giga_headers, model="GigaChat-2-Max", messages=messages)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    uuid.UUID(response.headers["X-Request-Id"])
    body = response.json()
    assert "id" not in body and "system_fingerprint" not in body
    assert body["object"] == "chat.completion"
    assert body["model"] == "GigaChat-2-Max:2.0.28.2"
    assert body["choices"] == [
        {"message": {"content": "Echo: Hello there", "role": "assistant"}, "index": 0, "finish_reason": "stop"}
    ]
    # 2 words + 1 per message, twice; nothing is precached without an earlier request of the session.
    assert body["usage"] == {"prompt_tokens": 6, "completion_tokens": 3, "total_tokens": 9, "precached_prompt_tokens": 0}
    assert b": " not in response.content.split(b'"content"')[0]  # compact JSON


def test_a_session_reuses_the_prompt_prefix_of_its_previous_request(http, gigachat, giga_headers):
    first = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    second = [*first, {"role": "assistant", "content": "Echo: Hi"}, {"role": "user", "content": "Again"}]
    session = {**giga_headers, "X-Session-ID": "6d0f0a1e-5f47-4e0e-9d55-0b1c3a4f0001"}
    assert chat(http, gigachat, session, messages=first).json()["usage"]["precached_prompt_tokens"] == 0
    usage = chat(http, gigachat, session, messages=second).json()["usage"]
    assert usage["precached_prompt_tokens"] == 3 + 2  # "Be brief." and "Hi", each + 1
    # Without the header the same request is a miss (the emulator's deterministic reading).
    assert chat(http, gigachat, giga_headers, messages=second).json()["usage"]["precached_prompt_tokens"] == 0


@pytest.mark.parametrize(
    "messages, extra, message",
    [
        (
            [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            {},
            "Invalid params: system message must be the first message",
        ),
        ([{"role": "tool", "content": "{}"}], {}, None),
        ([{"role": "developer", "content": "x"}], {}, None),
        ([{"role": "user", "content": "x"}], {"temperature": 0}, None),
        ([{"role": "user", "content": "x"}], {"repetition_penalty": 0}, None),
        ([{"role": "user", "content": [{"type": "text", "text": "x"}]}], {}, None),
        ([{"role": "user", "content": "x"}, {"role": "function", "name": "f", "content": "plain"}], {}, None),
    ],
)
def test_invalid_params_are_422(http, gigachat, giga_headers, messages, extra, message):
    response = chat(http, gigachat, giga_headers, messages=messages, **extra)
    assert response.status_code == 422
    body = response.json()
    assert body["status"] == 422 and body["message"].startswith("Invalid params")
    if message:
        assert body["message"] == message


def test_unknown_model_is_404_with_the_recorded_body(http, gigachat, giga_headers):
    response = chat(http, gigachat, giga_headers, model="GigaChat-9", messages=[{"role": "user", "content": "x"}])
    assert response.status_code == 404
    assert response.text == '{"status":404,"message":"No such model"}\n'


def test_max_tokens_truncates_with_length(http, gigachat, giga_headers):
    body = chat(http, gigachat, giga_headers, max_tokens=2, messages=[{"role": "user", "content": "one two three"}]).json()
    assert body["choices"][0]["message"]["content"] == "Echo: one"
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


def test_stream_framing(http, gigachat, giga_headers):
    response = chat(http, gigachat, giga_headers, stream=True, messages=[{"role": "user", "content": "Count to three please"}])
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    events = sse_json(response.text)
    assert all("id" not in e and e["object"] == "chat.completion" and e["model"] == "GigaChat:2.0.28.2" for e in events)
    deltas = [e["choices"][0]["delta"] for e in events]
    assert deltas[0]["role"] == "assistant"
    assert all("role" not in d for d in deltas[1:])
    final = events[-1]
    assert final["choices"][0] == {"delta": {"content": ""}, "index": 0, "finish_reason": "stop"}
    assert final["usage"]["completion_tokens"] == 5 and "precached_prompt_tokens" in final["usage"]
    assert all("finish_reason" not in e["choices"][0] and "usage" not in e for e in events[:-1])
    assert "".join(d["content"] for d in deltas) == "Echo: Count to three please"


def test_long_marker_streams_120_words_in_many_chunks(http, gigachat, giga_headers):
    response = chat(http, gigachat, giga_headers, stream=True, messages=[{"role": "user", "content": "[long]"}])
    events = sse_json(response.text)
    text = "".join(e["choices"][0]["delta"]["content"] for e in events)
    assert text == LONG_ANSWER and len(text.split()) == 120
    assert len(events) > 10


def test_function_call_has_object_arguments_and_state_id(http, gigachat, giga_headers):
    response = chat(
        http, gigachat, giga_headers, functions=[WEATHER], messages=[{"role": "user", "content": "Weather in Moscow?"}]
    )
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "function_call"
    message = choice["message"]
    assert message["content"] == "" and message["role"] == "assistant"
    assert message["function_call"] == {
        "name": "weather_forecast",
        "arguments": {"location": "Moscow", "num_days": 3, "unit": "celsius", "detailed": True},
    }
    uuid.UUID(message["functions_state_id"])


def test_forced_function_merges_partial_arguments(http, gigachat, giga_headers):
    other = {"name": "noop", "parameters": {"type": "object", "properties": {}}}
    response = chat(
        http,
        gigachat,
        giga_headers,
        functions=[other, WEATHER],
        function_call={"name": "weather_forecast", "partial_arguments": {"location": "Kazan"}},
        messages=[{"role": "user", "content": "x"}],
    )
    call = response.json()["choices"][0]["message"]["function_call"]
    assert call["name"] == "weather_forecast" and call["arguments"]["location"] == "Kazan"


def test_function_call_none_answers_text(http, gigachat, giga_headers):
    body = chat(
        http, gigachat, giga_headers, functions=[WEATHER], function_call="none", messages=[{"role": "user", "content": "x"}]
    ).json()
    assert body["choices"][0]["message"]["content"] == "Echo: x"


def test_function_result_round_trip(http, gigachat, giga_headers):
    first = chat(http, gigachat, giga_headers, functions=[WEATHER], messages=[{"role": "user", "content": "Weather?"}])
    assistant = first.json()["choices"][0]["message"]
    messages = [
        {"role": "user", "content": "Weather?"},
        assistant,
        {"role": "function", "name": "weather_forecast", "content": '{"temperature": 27}'},
    ]
    body = chat(http, gigachat, giga_headers, functions=[WEATHER], messages=messages).json()
    assert body["choices"][0]["message"]["content"] == 'Tool result: {"temperature": 27}'
    assert body["choices"][0]["finish_reason"] == "stop"


def test_streamed_function_call_arrives_whole(http, gigachat, giga_headers):
    response = chat(http, gigachat, giga_headers, stream=True, functions=[WEATHER], messages=[{"role": "user", "content": "x"}])
    events = sse_json(response.text)
    assert len(events) == 2
    delta = events[0]["choices"][0]["delta"]
    assert delta["role"] == "assistant" and delta["function_call"]["arguments"]["num_days"] == 3
    assert "functions_state_id" in delta
    assert events[1]["choices"][0]["finish_reason"] == "function_call" and "usage" in events[1]


def test_embeddings_have_per_item_usage_and_no_top_level_usage(http, gigachat, giga_headers):
    body = {"model": "Embeddings", "input": ["First text", "Second text here"]}
    first = http.post(gigachat.base_url + "/embeddings", headers=giga_headers, json=body).json()
    assert set(first) == {"object", "model", "data"}
    assert [d["usage"] for d in first["data"]] == [{"prompt_tokens": 2}, {"prompt_tokens": 3}]
    assert [d["index"] for d in first["data"]] == [0, 1]
    assert len(first["data"][0]["embedding"]) == 1024
    again = http.post(gigachat.base_url + "/embeddings", headers=giga_headers, json=body).json()
    assert again["data"][0]["embedding"] == first["data"][0]["embedding"]
    assert first["data"][0]["embedding"] != first["data"][1]["embedding"]


def test_embeddings_unknown_model_is_404(http, gigachat, giga_headers):
    response = http.post(gigachat.base_url + "/embeddings", headers=giga_headers, json={"model": "GigaChat", "input": ["x"]})
    assert response.status_code == 404


def test_tokens_count_is_a_bare_array(http, gigachat, giga_headers):
    response = http.post(
        gigachat.base_url + "/tokens/count", headers=giga_headers, json={"model": "GigaChat", "input": ["First text", "Second"]}
    )
    assert response.json() == [
        {"object": "tokens", "tokens": 2, "characters": 10},
        {"object": "tokens", "tokens": 1, "characters": 6},
    ]


def test_chat_ledger_records_usage(http, gigachat, giga_headers, fresh_emulators):
    chat(http, gigachat, giga_headers, messages=[{"role": "user", "content": "a b c"}])
    entry = fresh_emulators["gigachat"].ledger()[-1]
    assert entry["path"] == "/api/v1/chat/completions"
    assert entry["model"] == "GigaChat"
    assert (entry["prompt_tokens"], entry["completion_tokens"], entry["status"], entry["stream"]) == (4, 4, 200, False)


def test_raw_sse_has_no_event_or_id_fields(http, gigachat, giga_headers):
    response = chat(http, gigachat, giga_headers, stream=True, messages=[{"role": "user", "content": "x"}])
    payloads = sse_payloads(response.text)
    assert payloads[-1] == "[DONE]"
    assert all(json.loads(p) for p in payloads[:-1])
