"""Provider failures reach the client as 502/429/504 in the OpenAI envelope, with the provider's own
message and never its credentials. Faults are injected through each emulator's control API.

These run on `faulty_gateway`: upstream timeouts of about a second and a breaker that stays shut.
"""

import httpx
import pytest

from tests.conftest import wait_for_usage

from .support import CHAT_IDS, CHAT_MODELS, DEMO, EMBEDDING_IDS, EMBEDDING_MODELS, assert_error, assert_no_secrets, chat_body

USER = [{"role": "user", "content": "hi"}]


def _secrets_of(provider: str) -> list[str]:
    creds = DEMO["providers"][provider]["credentials"]
    entries = creds if isinstance(creds, list) else [{"secrets": creds}]
    return [v for e in entries for v in e["secrets"].values() if isinstance(v, str) and v != "GIGACHAT_API_PERS"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_502_with_the_providers_message_when_the_provider_fails(
    faulty_client, emulator_control, django_db_blocker, provider, model
):
    from openai import InternalServerError

    emulator_control(provider, status=500, message="the model server is on fire")
    with pytest.raises(InternalServerError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    error = assert_error(caught.value.response, 502, type_="upstream_error")
    assert "the model server is on fire" in error["message"]

    record = wait_for_usage(django_db_blocker, caught.value.response.headers["x-request-id"])
    assert (record.status, record.http_status, record.provider) == ("error", 502, provider)
    assert record.cost == 0


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_503_when_the_provider_is_unavailable(faulty_client, emulator_control, provider, model):
    from openai import InternalServerError

    emulator_control(provider, status=503, message="maintenance window")
    with pytest.raises(InternalServerError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    error = assert_error(caught.value.response, 503)
    assert "maintenance window" in error["message"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_passes_a_providers_429_on_with_retry_after(faulty_client, emulator_control, provider, model):
    from openai import RateLimitError

    emulator_control(provider, status=429, retry_after=7, message="slow down please")
    with pytest.raises(RateLimitError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    response = caught.value.response
    error = assert_error(response, 429, type_="rate_limit_error")
    assert "slow down please" in error["message"]
    assert response.headers["retry-after"] == "7"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_504_when_the_provider_does_not_answer_in_time(faulty_client, emulator_control, provider, model):
    from openai import APIStatusError

    emulator_control(provider, latency_ms=2500)  # the faulty gateway reads for 1 s at most
    with pytest.raises(APIStatusError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    assert_error(caught.value.response, 504, type_="timeout_error")


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_504_when_a_stream_never_starts(faulty_gateway, emulator_control, provider, model):
    emulator_control(provider, latency_ms=2500)
    response = httpx.post(faulty_gateway.v1 + "/chat/completions", json=chat_body(model, stream=True), timeout=30,
                          headers={"Authorization": f"Bearer {faulty_gateway.keys['alice']}"})
    assert_error(response, 504)


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_502_when_the_provider_resets_the_connection(faulty_client, emulator_control, provider, model):
    from openai import InternalServerError

    emulator_control(provider, reset=True)
    with pytest.raises(InternalServerError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    assert_error(caught.value.response, 502, type_="upstream_error")


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_502_as_json_when_a_stream_fails_before_its_first_byte(faulty_gateway, emulator_control, provider, model):
    emulator_control(provider, status=500, message="stream refused")
    response = httpx.post(faulty_gateway.v1 + "/chat/completions", json=chat_body(model, stream=True), timeout=30,
                          headers={"Authorization": f"Bearer {faulty_gateway.keys['alice']}"})
    error = assert_error(response, 502)
    assert "stream refused" in error["message"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_502_when_the_provider_sends_a_truncated_answer(faulty_client, emulator_control, provider, model):
    from openai import InternalServerError

    emulator_control(provider, malformed_chunk_at=0)  # a 200 whose JSON body is cut in half
    with pytest.raises(InternalServerError) as caught:
        faulty_client.chat.completions.create(model=model, messages=USER)
    assert_error(caught.value.response, 502)


@pytest.mark.parametrize(("provider", "model"), EMBEDDING_MODELS, ids=EMBEDDING_IDS)
def test_it_answers_502_when_embeddings_fail_upstream(faulty_client, emulator_control, provider, model):
    from openai import InternalServerError

    emulator_control(provider, status=500, message="vectors unavailable")
    with pytest.raises(InternalServerError) as caught:
        faulty_client.embeddings.create(model=model, input="x", encoding_format="float")
    error = assert_error(caught.value.response, 502)
    assert "vectors unavailable" in error["message"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
@pytest.mark.parametrize("status", [400, 401, 403, 500])
def test_it_never_shows_a_providers_credentials_that_its_error_echoes(faulty_gateway, emulator_control, provider, model, status):
    """Some providers echo the key they were sent (Yandex does for unknown API keys)."""
    secrets = _secrets_of(provider)
    message = "rejected credentials " + " and ".join(secrets)
    # count=2: a 401 makes the adapter refresh its token and try once more.
    emulator_control(provider, status=status, message=message, count=2)
    for stream in (False, True):
        response = httpx.post(faulty_gateway.v1 + "/chat/completions", json=chat_body(model, stream=stream), timeout=30,
                              headers={"Authorization": f"Bearer {faulty_gateway.keys['alice']}"})
        assert response.status_code >= 400
        error = assert_error(response, response.status_code)  # asserts no demo secret in the body
        assert "rejected credentials" in error["message"], "the provider's own message still reaches the client"
        emulator_control(provider, status=status, message=message, count=2)


def test_it_never_shows_the_gigachat_access_token_that_an_error_echoes(faulty_client, emulators, emulator_control):
    from openai import InternalServerError

    tokens = emulators["gigachat"].state.tokens
    others = dict(tokens)
    tokens.clear()  # so the token the faulty gateway fetches next is the only one issued
    try:
        faulty_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=USER)  # 401, refresh, answer
        issued = list(tokens)
    finally:
        tokens.update(others)  # the other gateways' tokens stay valid
    assert len(issued) == 1
    emulator_control("gigachat", status=500, message="token " + " ".join(issued) + " misbehaved")
    with pytest.raises(InternalServerError) as caught:
        faulty_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=USER)
    text = caught.value.response.text
    assert "misbehaved" in text
    for token in issued:
        assert token not in text, "the gateway's GigaChat access token reached the client"


def test_it_recovers_once_the_fault_is_gone(faulty_client, emulator_control):
    from openai import InternalServerError

    emulator_control("mts", status=500, count=1)
    with pytest.raises(InternalServerError):
        faulty_client.chat.completions.create(model="mts/mws-gpt-alpha", messages=USER)
    completion = faulty_client.chat.completions.create(model="mts/mws-gpt-alpha", messages=USER)
    assert completion.choices[0].message.content == "Echo: hi"
    assert_no_secrets(completion.model_dump_json())


@pytest.mark.parametrize(("fault", "status", "estimated"), [
    ({"malformed_chunk_at": 0}, 502, True),  # a 200 whose JSON is cut in half
    ({"cut_after_chunks": 0}, 502, True),  # a 200 whose body ends before its length
    ({"latency_ms": 2500}, 504, True),  # no answer in time: the provider may still be working on it
    ({"status": 500}, 502, False),  # the provider's own error: nothing to charge
], ids=["malformed", "cut", "timeout", "500"])
def test_an_attempt_the_provider_had_is_billed_with_its_prompt_estimated(faulty_gateway, emulator_control,
                                                                          django_db_blocker, fault, status, estimated):
    emulator_control("mts", **fault)
    response = httpx.post(faulty_gateway.v1 + "/chat/completions", json=chat_body("mts/mws-gpt-alpha"), timeout=30,
                          headers={"Authorization": f"Bearer {faulty_gateway.keys['alice']}"})
    assert_error(response, status)
    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert (record.status, record.estimated) == ("error", estimated)
    assert (record.prompt_tokens > 0) is estimated and record.completion_tokens == 0
