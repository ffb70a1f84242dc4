"""YandexGPT adapter: translation, then real HTTP against the YandexGPT emulator (NDJSON, IAM)."""

import asyncio
import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from apps.emulators.behaviour import LONG_ANSWER, embedding_vector
from apps.providers.adapters.base import CredentialConfig, ProviderConfig, ProviderError, StreamRevisedError
from apps.providers.adapters.yandexgpt import (
    IAM_URL,
    CumulativeText,
    YandexGPTAdapter,
    _iam_expiry,
    build_request,
    model_uri,
    parse_alternative,
    service_account_jwt,
)

from .conftest import YANDEX_API_KEY, YANDEX_FOLDER, collect, joined, ledger, user

MODEL = "yandexgpt"
COMPLETION = "/foundationModels/v1/completion"
IAM = "/iam/v1/tokens"
WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
}


# --- translation -----------------------------------------------------------------------------
def test_it_builds_model_uris():
    assert model_uri("yandexgpt", "b1g") == "gpt://b1g/yandexgpt/latest"
    assert model_uri("yandexgpt-lite/rc", "b1g") == "gpt://b1g/yandexgpt-lite/rc"
    assert model_uri("gpt://other/llama/latest", "b1g") == "gpt://other/llama/latest"
    assert model_uri("text-search-doc", "b1g", "emb") == "emb://b1g/text-search-doc/latest"


def test_it_translates_a_request():
    body = {
        "messages": [
            {"role": "developer", "content": "Be brief."},
            user("Weather?"),
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_0_get_weather", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Moscow"}'}},
                {"id": "abc", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
            ]},
            {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "sunny"},
            {"role": "tool", "tool_call_id": "abc", "content": "noon"},
        ],
        "temperature": 1.6,
        "max_tokens": 100,
        "n": 2,
        "stop": ["x"],
        "tools": [WEATHER],
        "tool_choice": "required",
        "response_format": {"type": "json_object"},
        "reasoning_effort": "high",
    }
    payload = build_request(body, MODEL, "b1g")
    assert payload["modelUri"] == "gpt://b1g/yandexgpt/latest"
    assert payload["completionOptions"] == {
        "stream": False, "temperature": 1.0, "maxTokens": "100", "reasoningOptions": {"mode": "ENABLED_HIDDEN"},
    }
    assert payload["tools"] == [{"function": WEATHER["function"]}]
    assert payload["toolChoice"] == {"mode": "REQUIRED"} and payload["jsonObject"] is True
    assert payload["messages"] == [
        {"role": "system", "text": "Be brief."},
        {"role": "user", "text": "Weather?"},
        {"role": "assistant", "toolCallList": {"toolCalls": [
            {"functionCall": {"name": "get_weather", "arguments": {"city": "Moscow"}}},
            {"functionCall": {"name": "get_time", "arguments": {}}},
        ]}},
        {"role": "user", "toolResultList": {"toolResults": [
            {"functionResult": {"name": "get_weather", "content": "sunny"}},
            {"functionResult": {"name": "get_time", "content": "noon"}},
        ]}},
    ]


@pytest.mark.parametrize("extra, param", [({"top_p": 0.9}, "top_p"), ({"presence_penalty": 1}, "presence_penalty")])
def test_it_refuses_what_it_cannot_honour(extra, param):
    with pytest.raises(ProviderError) as caught:
        build_request({"messages": [user("x")], **extra}, MODEL, "b1g")
    assert caught.value.kind == "unsupported_parameter" and param in caught.value.message


def test_it_reads_alternatives():
    choice = parse_alternative(
        {"message": {"role": "assistant", "toolCallList": {"toolCalls": [{"functionCall": {"name": "get_weather", "arguments": {"n": 5}}}]}},
         "status": "ALTERNATIVE_STATUS_TOOL_CALLS"},
        0,
    )
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"] == [{"id": "call_0_get_weather", "type": "function", "function": {"name": "get_weather", "arguments": '{"n":5}'}}]
    assert parse_alternative({"message": {"text": "t"}, "status": "ALTERNATIVE_STATUS_TRUNCATED_FINAL"}, 0)["finish_reason"] == "length"
    assert parse_alternative({"message": {"text": "t"}, "status": "ALTERNATIVE_STATUS_CONTENT_FILTER"}, 0)["finish_reason"] == "content_filter"


def test_it_turns_cumulative_text_into_deltas_and_refuses_rewrites():
    text = CumulativeText()
    assert [text.delta("Hel"), text.delta("Hello"), text.delta("Hello"), text.delta("Hello!")] == ["Hel", "lo", "", "!"]
    assert text.delta("Hello! ") == " " and text.delta("Hello!") == ""  # a trimmed final line is no revision
    with pytest.raises(StreamRevisedError):
        text.delta("Help!")


def test_it_parses_nanosecond_expiry_capped_at_an_hour():
    import time

    assert abs(_iam_expiry("2030-01-15T21:04:05.123456789Z") - (time.time() + 3600)) < 5
    assert _iam_expiry("2000-01-15T21:04:05.123456789Z") == pytest.approx(947970245.123456, abs=1e-3)


def service_account(kid="ajekeyid0001", account="ajeserviceacc01"):
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()
    public_pem = private.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    key = {
        "id": kid,
        "service_account_id": account,
        # As downloaded from the console, with Yandex's warning line first.
        "private_key": f"PLEASE DO NOT REMOVE THIS LINE! Yandex.Cloud SA Key ID <{kid}>\n{private_pem}",
    }
    return key, public_pem


def test_it_signs_the_service_account_jwt_with_ps256():
    key, public_pem = service_account()
    token = service_account_jwt(key, now=1_700_000_000)
    assert jwt.get_unverified_header(token) == {"alg": "PS256", "typ": "JWT", "kid": "ajekeyid0001"}
    claims = jwt.decode(token, public_pem, algorithms=["PS256"], audience=IAM_URL, options={"verify_exp": False})
    assert claims == {"iss": "ajeserviceacc01", "aud": IAM_URL, "iat": 1_700_000_000, "exp": 1_700_003_600}


# --- over HTTP -------------------------------------------------------------------------------
async def test_it_chats(make_adapter):
    result = await make_adapter("yandexgpt").chat({"messages": [user("Привет")], "max_tokens": 50}, MODEL)
    assert result.choices == [{"index": 0, "message": {"role": "assistant", "content": "Echo: Привет"}, "finish_reason": "stop"}]
    assert result.usage.prompt_tokens == 2 and result.usage.completion_tokens == 2
    assert result.upstream_model == "yandexgpt:09.02.2025" and result.provider_request_id


async def test_it_streams_cumulative_text_as_deltas(make_adapter):
    chunks = await collect(make_adapter("yandexgpt").stream_chat({"messages": [user("go [long]")], "stream": True}, MODEL))
    assert chunks[0].delta == {"role": "assistant"} and chunks[0].provider_request_id
    assert joined(chunks) == LONG_ANSWER
    assert len([c for c in chunks if c.delta and c.delta.get("content")]) > 10
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert [c.usage.completion_tokens for c in chunks if c.usage] == [120]


async def test_it_reports_reasoning_tokens(make_adapter):
    result = await make_adapter("yandexgpt").chat({"messages": [user("think")], "thinking": True}, MODEL)
    assert result.usage.reasoning_tokens == 3 and result.choices[0]["message"]["content"] == "Echo: think"


async def test_it_round_trips_a_tool_call(make_adapter):
    adapter = make_adapter("yandexgpt")
    body = {"messages": [user("Weather?")], "tools": [WEATHER]}
    first = await adapter.chat(body, MODEL)
    message = first.choices[0]["message"]
    assert first.choices[0]["finish_reason"] == "tool_calls"
    assert message["tool_calls"][0]["id"] == "call_0_get_weather"
    assert json.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Moscow"}
    history = body["messages"] + [message, {"role": "tool", "tool_call_id": "call_0_get_weather", "content": "sunny"}]
    second = await adapter.chat({"messages": history, "tools": [WEATHER]}, MODEL)
    assert second.choices[0]["message"]["content"] == "Tool result: sunny"

    chunks = await collect(adapter.stream_chat({**body, "stream": True}, MODEL))
    assert [c.delta["tool_calls"][0]["function"]["name"] for c in chunks if c.delta and "tool_calls" in c.delta] == ["get_weather"]
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["tool_calls"]


async def test_it_answers_json_for_a_schema(make_adapter):
    schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    result = await make_adapter("yandexgpt").chat(
        {"messages": [user("x")], "response_format": {"type": "json_schema", "json_schema": {"name": "c", "schema": schema}}}, MODEL
    )
    assert json.loads(result.choices[0]["message"]["content"]) == {"city": "Moscow"}


async def test_it_embeds_one_text_per_call_concurrently(make_adapter, controls):
    texts = ["alpha", "beta gamma", "delta"]
    result = await make_adapter("yandexgpt").embeddings(texts, "text-search-doc", {})
    assert result.vectors == [embedding_vector(t, 256) for t in texts]
    assert result.usage.prompt_tokens == 4
    assert len(ledger(controls, "yandexgpt", "/foundationModels/v1/textEmbedding")) == 3


async def test_it_raises_when_a_stream_revises_sent_text(make_adapter, controls):
    controls["yandexgpt"].add_fault(path=COMPLETION, revise_at_chunk=2)
    seen = []
    with pytest.raises(StreamRevisedError):
        async for chunk in make_adapter("yandexgpt").stream_chat({"messages": [user("x [long]")], "stream": True}, MODEL):
            seen.append(chunk)
    assert joined(seen) == "".join(LONG_ANSWER.split(" ")[i] + " " for i in range(6))  # two good lines of 3 words


@pytest.mark.parametrize("fault, kind", [({"cut_after_chunks": 3}, "stream_interrupted"), ({"malformed_chunk_at": 2}, "malformed_stream")])
async def test_a_broken_stream_raises(make_adapter, controls, fault, kind):
    controls["yandexgpt"].add_fault(path=COMPLETION, **fault)
    with pytest.raises(ProviderError) as caught:
        await collect(make_adapter("yandexgpt").stream_chat({"messages": [user("x [long]")], "stream": True}, MODEL))
    assert caught.value.kind == kind


async def test_it_raises_an_in_band_stream_error(scripted):
    line = {"result": {"alternatives": [{"message": {"role": "assistant", "text": "Hel"}, "status": "ALTERNATIVE_STATUS_PARTIAL"}]}}
    error = {"error": {"grpcCode": 8, "httpCode": 429, "message": "gauge quota limit exceed", "httpStatus": "Too Many Requests"}}
    scripted.answer(json.dumps(line) + "\n", json.dumps(error) + "\n")
    adapter = YandexGPTAdapter(ProviderConfig("y", "yandexgpt", scripted.origin, credentials=(CredentialConfig("c", {"api_key": "k", "folder_id": "f"}),)))
    seen = []
    try:
        with pytest.raises(ProviderError) as caught:
            async for chunk in adapter.stream_chat({"messages": [user("x")], "stream": True}, MODEL):
                seen.append(chunk)
    finally:
        await adapter.close()
    assert joined(seen) == "Hel" and caught.value.status == 429 and "gauge quota" in caught.value.message
    sent = json.loads(scripted.requests[0]["body"])
    assert scripted.requests[0]["headers"]["Authorization"] == "Api-Key k"
    assert scripted.requests[0]["headers"]["x-data-logging-enabled"] == "false"
    assert sent["completionOptions"]["stream"] is True


async def test_its_health_check_is_a_free_tokenize_call(make_adapter, controls):
    adapter = make_adapter("yandexgpt")
    await adapter.health_check()
    assert [e["path"] for e in ledger(controls, "yandexgpt")] == ["/foundationModels/v1/tokenize"]
    with pytest.raises(ProviderError):
        await make_adapter("yandexgpt", secrets={"api_key": "wrong-key-0000", "folder_id": YANDEX_FOLDER}).health_check()


@pytest.mark.parametrize(
    "fault, status, kind",
    [
        ({"status": 400, "message": "Number of input tokens must be no more than 8192, got 9136"}, 400, "context_length"),
        ({"status": 403}, 502, "auth"),
        ({"status": 429, "retry_after": 4}, 429, "rate_limited"),
        ({"status": 500}, 502, "server_error"),
        ({"reset": True}, 502, "connection"),
    ],
)
async def test_it_maps_errors(make_adapter, controls, fault, status, kind):
    controls["yandexgpt"].add_fault(path=COMPLETION, **fault)
    with pytest.raises(ProviderError) as caught:
        await make_adapter("yandexgpt").chat({"messages": [user("x")]}, MODEL)
    assert (caught.value.status, caught.value.kind) == (status, kind)
    if status == 429:
        assert "gauge quota limit exceed" in caught.value.message and caught.value.retry_after == 4.0


async def test_it_times_out(make_adapter, controls):
    controls["yandexgpt"].add_fault(path=COMPLETION, latency_ms=1500)
    with pytest.raises(ProviderError) as caught:
        await make_adapter("yandexgpt", timeout=0.3).chat({"messages": [user("x")]}, MODEL)
    assert (caught.value.status, caught.value.kind) == (504, "timeout")


async def test_a_stalled_stream_times_out_on_the_read_timeout(make_adapter, controls, settings):
    settings.XROUTER = {**settings.XROUTER, "READ_TIMEOUT": 0.3}
    controls["yandexgpt"].add_fault(path=COMPLETION, first_byte_delay_ms=1500)
    stream = make_adapter("yandexgpt").stream_chat({"messages": [user("x")], "stream": True}, MODEL)
    with pytest.raises(ProviderError) as caught:
        await stream.__anext__()  # headers came, the body did not: still before the first chunk
    assert caught.value.kind == "timeout"


async def test_it_maps_an_unknown_model_to_404(make_adapter):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("yandexgpt").chat({"messages": [user("x")]}, "yandexgpt-ultra")
    assert caught.value.status == 404


async def test_it_never_echoes_its_api_key(make_adapter):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("yandexgpt", secrets={"api_key": "AQVN-wrong-key-123456", "folder_id": YANDEX_FOLDER}).chat({"messages": [user("x")]}, MODEL)
    assert caught.value.kind == "auth" and "Unknown api key" in caught.value.message
    assert "AQVN-wrong-key-123456" not in caught.value.message


async def test_it_exchanges_a_service_account_key_once_and_refreshes_on_401(make_adapter, controls):
    key, public_pem = service_account()
    controls["yandexgpt"].configure(
        service_accounts={key["id"]: {"service_account_id": key["service_account_id"], "public_key": public_pem, "folder_id": YANDEX_FOLDER}}
    )
    adapter = make_adapter("yandexgpt", secrets={"service_account_key": json.dumps(key), "folder_id": YANDEX_FOLDER})
    results = await asyncio.gather(*(adapter.chat({"messages": [user(f"q{i}")]}, MODEL) for i in range(30)))
    assert {r.choices[0]["message"]["content"] for r in results} == {f"Echo: q{i}" for i in range(30)}
    assert len(ledger(controls, "yandexgpt", IAM)) == 1

    controls["yandexgpt"].add_fault(path=COMPLETION, status=401)
    chunks = await collect(adapter.stream_chat({"messages": [user("after 401")], "stream": True}, MODEL))
    assert joined(chunks) == "Echo: after 401"
    assert len(ledger(controls, "yandexgpt", IAM)) == 2

    await adapter.health_check()  # a fresh exchange, no completion
    assert len(ledger(controls, "yandexgpt", IAM)) == 3
    assert len(ledger(controls, "yandexgpt", COMPLETION)) == 32


async def test_it_exchanges_a_user_oauth_token_and_names_the_folder(make_adapter, controls):
    adapter = make_adapter("yandexgpt", secrets={"oauth_token": "y0_demo-oauth-token", "folder_id": YANDEX_FOLDER})
    result = await adapter.chat({"messages": [user("user account")]}, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: user account"


async def test_an_iam_refusal_is_our_credential_problem(make_adapter):
    adapter = make_adapter("yandexgpt", secrets={"oauth_token": "y0_not-a-token", "folder_id": YANDEX_FOLDER})
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("x")]}, MODEL)
    assert caught.value.kind == "auth" and caught.value.status == 502 and "YandexGPT IAM" in caught.value.message


async def test_it_lists_configured_models(make_adapter):
    adapter = make_adapter("yandexgpt", options={"models": ["yandexgpt", {"id": "yandexgpt-lite", "owned_by": "yandex"}]})
    assert await adapter.list_models() == [{"id": "yandexgpt", "owned_by": "yandex"}, {"id": "yandexgpt-lite", "owned_by": "yandex"}]


# --- embeddings within the account's quota (issue 11) ---
EMBEDDING = "/foundationModels/v1/textEmbedding"


async def test_the_emulator_enforces_the_embeddings_quota_of_ten_a_second(emulators, controls):
    import httpx

    url = emulators["yandexgpt"].base_url + EMBEDDING
    body = {"modelUri": "emb://b1gdemofolder/text-search-doc/latest", "text": "x"}
    async with httpx.AsyncClient(headers={"Authorization": f"Api-Key {YANDEX_API_KEY}"}) as client:
        answers = await asyncio.gather(*(client.post(url, json=body) for _ in range(15)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 10 + [429] * 5
    refused = next(a for a in answers if a.status_code == 429).json()
    assert refused["code"] == 8 and "rate quota limit exceed: allowed 10 requests" in refused["message"]


async def test_a_batch_larger_than_the_quota_is_paced_instead_of_refused(make_adapter, controls):
    texts = [f"text number {n}" for n in range(25)]
    started = time.monotonic()
    result = await make_adapter("yandexgpt").embeddings(texts, "text-search-doc", {})
    assert result.vectors == [embedding_vector(t, 256) for t in texts]
    assert time.monotonic() - started >= 1.0  # 25 calls at 10 a second: the third ten waits two windows
    statuses = [c["status"] for c in ledger(controls, "yandexgpt", EMBEDDING)]
    # Paced, not refused: at most a stray 429 where the network's jitter put an 11th call into Yandex's
    # second (the fan-out sends it again), against 15 of 25 unpaced.
    assert statuses.count(200) == 25 and statuses.count(429) <= 2


async def test_two_adapters_on_one_account_share_its_pace(make_adapter, controls):
    """Two adapters (as two gateway processes would hold) on the same account: one shared window (Redis
    with REDIS_URL, as in CI), so together they still never exceed the quota."""
    first, second = make_adapter("yandexgpt"), make_adapter("yandexgpt")
    texts = [f"shared {n}" for n in range(12)]
    await asyncio.gather(first.embeddings(texts, "text-search-doc", {}), second.embeddings(texts, "text-search-doc", {}))
    statuses = [c["status"] for c in ledger(controls, "yandexgpt", EMBEDDING)]
    assert statuses.count(200) == 24 and statuses.count(429) <= 2


async def test_a_text_answered_429_is_sent_again_by_the_fan_out(make_adapter, controls):
    controls["yandexgpt"].add_fault(path=EMBEDDING, status=429, retry_after=1, count=2)
    texts = ["one", "two", "three"]
    result = await make_adapter("yandexgpt", options={"embedding_rate": ""}).embeddings(texts, "text-search-doc", {})
    assert result.vectors == [embedding_vector(t, 256) for t in texts]
    assert [c["status"] for c in ledger(controls, "yandexgpt", EMBEDDING)].count(429) == 2


async def test_a_text_refused_past_its_resends_fails_the_request(make_adapter, controls):
    controls["yandexgpt"].add_fault(path=EMBEDDING, status=429, count=10)
    with pytest.raises(ProviderError) as caught:
        await make_adapter("yandexgpt", options={"embedding_rate": ""}).embeddings(["only"], "text-search-doc", {})
    assert caught.value.kind == "rate_limited"
    assert len(ledger(controls, "yandexgpt", EMBEDDING)) == 4  # the call and its three re-sends


async def test_a_credentials_own_rate_is_a_capacity_failure_past_the_wait(make_adapter, controls, settings):
    """Any provider account may carry a rate (Credential.requests_rate): a call beyond it waits up to
    XROUTER_CONCURRENCY_WAIT, then fails as `concurrency` (class capacity: the router falls back)."""
    settings.XROUTER = {**settings.XROUTER, "CONCURRENCY_WAIT": 0.3}
    credential = CredentialConfig("paced", {"api_key": YANDEX_API_KEY, "folder_id": YANDEX_FOLDER}, requests_rate="2/min")
    adapter = make_adapter("yandexgpt", name=f"paced-{time.monotonic_ns()}", credentials=(credential,))
    body = {"messages": [user("x")]}
    await adapter.chat(body, MODEL)
    await adapter.chat(body, MODEL)
    with pytest.raises(ProviderError) as caught:
        await adapter.chat(body, MODEL)
    assert (caught.value.kind, caught.value.status) == ("concurrency", 429) and caught.value.retry_after >= 1
