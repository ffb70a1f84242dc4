"""The official ``gigachat`` SDK (0.2.3) against the GigaChat emulator.

What the SDK sends (read from its source): OAuth as ``Authorization: Basic <key>``, a fresh
``RqUID`` uuid4 and form ``scope``; API calls relative to ``base_url`` (``/chat/completions``,
``/embeddings``, ``/models``, ``/tokens/count``, ``/token`` for user/password) with
``Authorization: Bearer``; streams add ``Accept: text/event-stream``. The classic
``client.chat(...)`` / ``client.stream(...)`` use v1; only ``client.chat.create`` /
``client.chat.stream`` go to ``/api/v2/chat/completions``, which is not emulated.
"""

import pytest
from gigachat import GigaChat, GigaChatAsyncClient
from gigachat.exceptions import AuthenticationError, NotFoundError, RateLimitError, UnprocessableEntityError
from gigachat.models import Chat, Function, FunctionParameters, Messages, MessagesRole

from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY


@pytest.fixture
def sdk_settings(gigachat):
    return {
        "base_url": gigachat.base_url,
        "auth_url": gigachat.auth_url,
        "credentials": DEMO_AUTHORIZATION_KEY,
        "scope": "GIGACHAT_API_PERS",
        "model": "GigaChat-2",
        "timeout": 10,
    }


@pytest.fixture
def client(sdk_settings):
    with GigaChat(**sdk_settings) as client:
        yield client


def test_sdk_fetches_a_token_and_chats(client, fresh_emulators):
    completion = client.chat("Hello from the SDK")
    assert completion.choices[0].message.content == "Echo: Hello from the SDK"
    assert completion.model == "GigaChat-2:2.0.28.2"
    assert completion.usage.precached_prompt_tokens == 0
    assert completion.x_headers["x-request-id"]
    paths = [e["path"] for e in fresh_emulators["gigachat"].ledger()]
    assert paths == ["/api/v2/oauth", "/api/v1/chat/completions"]


def test_sdk_streams(client):
    chunks = list(client.stream("[long] please"))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert len(text.split()) == 120
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == 120


def test_sdk_functions_round_trip(client):
    function = Function(
        name="weather_forecast",
        description="Forecast",
        parameters=FunctionParameters(
            type="object",
            properties={"location": {"type": "string"}, "num_days": {"type": "integer"}},
            required=["location", "num_days"],
        ),
    )
    messages = [Messages(role=MessagesRole.USER, content="Weather in Moscow for 3 days?")]
    first = client.chat(Chat(messages=messages, functions=[function], function_call="auto"))
    message = first.choices[0].message
    assert first.choices[0].finish_reason == "function_call"
    assert message.function_call.name == "weather_forecast"
    assert message.function_call.arguments == {"location": "Moscow", "num_days": 3}
    messages += [message, Messages(role=MessagesRole.FUNCTION, name="weather_forecast", content='{"temperature": 27}')]
    second = client.chat(Chat(messages=messages, functions=[function]))
    assert second.choices[0].message.content == 'Tool result: {"temperature": 27}'


def test_sdk_embeddings_models_and_token_count(client):
    embeddings = client.embeddings(["one", "two words"])
    assert [len(e.embedding) for e in embeddings.data] == [1024, 1024]
    assert embeddings.data[1].usage.prompt_tokens == 2
    assert "GigaChat-2-Max" in {m.id_ for m in client.get_models().data}
    assert client.get_model("Embeddings").id_ == "Embeddings"
    assert [c.tokens for c in client.tokens_count(["a b c"])] == [3]


def test_sdk_unknown_model_raises_not_found(sdk_settings):
    with GigaChat(**{**sdk_settings, "model": "GigaChat-9"}) as client:
        with pytest.raises(NotFoundError) as caught:
            client.chat("hi")
    assert caught.value.status_code == 404


def test_sdk_validation_error_is_unprocessable(client):
    payload = {"messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}]}
    with pytest.raises(UnprocessableEntityError):
        client.chat(payload)


def test_sdk_bad_credentials_raise_authentication_error(sdk_settings):
    with GigaChat(**{**sdk_settings, "credentials": "bm90LWEta2V5"}) as client:
        with pytest.raises(AuthenticationError) as caught:
            client.chat("hi")
    assert caught.value.status_code == 401


def test_sdk_refreshes_the_token_after_a_401(sdk_settings, fresh_emulators):
    with GigaChat(**sdk_settings, access_token="stale-token") as client:
        assert client.chat("again").choices[0].message.content == "Echo: again"
    statuses = [(e["path"], e["status"]) for e in fresh_emulators["gigachat"].ledger()]
    assert statuses == [
        ("/api/v1/chat/completions", 401),
        ("/api/v2/oauth", 200),
        ("/api/v1/chat/completions", 200),
    ]


def test_sdk_sees_retry_after_on_429(client, fresh_emulators):
    client.get_token()
    fresh_emulators["gigachat"].add_fault(status=429, retry_after=2, path="/api/v1/chat/completions")
    with pytest.raises(RateLimitError) as caught:
        client.chat("hi")
    assert caught.value.retry_after == 2.0


def test_sdk_user_password_auth(gigachat):
    with GigaChat(base_url=gigachat.base_url, user="demo-user", password="demo-password", model="GigaChat") as client:
        assert client.chat("pw").choices[0].message.content == "Echo: pw"


async def test_async_sdk_chat_and_stream(sdk_settings):
    async with GigaChatAsyncClient(**sdk_settings) as client:
        completion = await client.achat("async hello")
        assert completion.choices[0].message.content == "Echo: async hello"
        parts = [chunk.choices[0].delta.content async for chunk in client.astream("async stream")]
        assert "".join(p or "" for p in parts) == "Echo: async stream"
