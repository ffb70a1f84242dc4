"""`POST /v1/xrouter/tokenize` against the emulators: GigaChat's /tokens/count and Yandex's
tokenizeCompletion give `source: "provider"`; providers without a tokenizer (MTS, T-Bank), or one that
fails, give the gateway's estimate. A chat request never calls a tokenizer."""

import httpx
import pytest

from apps.emulators.behaviour import count_tokens
from apps.emulators.control import EmulatorControl
from apps.gateway.accounting import estimate_tokens

from .support import assert_error

TOKENIZERS = {"/api/v1/tokens/count", "/foundationModels/v1/tokenize", "/foundationModels/v1/tokenizeCompletion"}
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "да, нет, да, нет, да, нет"}]
CHARS = sum(len(m["content"]) for m in MESSAGES)


def _tokenize(http, model, messages=MESSAGES, **extra):
    response = http.post("/v1/xrouter/tokenize", json={"model": model, "messages": messages, **extra})
    assert response.status_code == 200, response.text
    assert response.headers["x-request-id"]
    return response.json()


def test_gigachat_counts_the_texts_it_would_be_sent(http, emulators):
    control = EmulatorControl(emulators["gigachat"].origin)
    control.clear_ledger()
    answer = _tokenize(http, "gigachat/GigaChat-2-Max")
    assert answer == {"object": "xrouter.tokenize", "model": "gigachat/GigaChat-2-Max", "source": "provider",
                      "prompt_tokens": sum(count_tokens(m["content"]) for m in MESSAGES)}
    assert answer["prompt_tokens"] != estimate_tokens(CHARS)
    assert [e["path"] for e in control.ledger() if "oauth" not in e["path"]] == ["/api/v1/tokens/count"]


def test_gigachat_counts_tool_calls_and_definitions_too(http):
    tool = {"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}}}}
    history = [*MESSAGES, {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Moscow"}'}}]}]
    plain = _tokenize(http, "gigachat/GigaChat-2-Max", history)["prompt_tokens"]
    with_tools = _tokenize(http, "gigachat/GigaChat-2-Max", history, tools=[tool])["prompt_tokens"]
    assert plain > _tokenize(http, "gigachat/GigaChat-2-Max")["prompt_tokens"]
    assert with_tools > plain


def test_yandex_counts_the_completion_request_as_its_chat_would(http, openai_client, emulators):
    control = EmulatorControl(emulators["yandexgpt"].origin)
    control.clear_ledger()
    answer = _tokenize(http, "yandexgpt/yandexgpt-lite")
    assert answer["source"] == "provider"
    assert [e["path"] for e in control.ledger() if "/iam/" not in e["path"]] == ["/foundationModels/v1/tokenizeCompletion"]
    chat = openai_client.chat.completions.create(model="yandexgpt/yandexgpt-lite", messages=MESSAGES)
    assert answer["prompt_tokens"] == chat.usage.prompt_tokens != estimate_tokens(CHARS)


@pytest.mark.parametrize("model", ["mts/mws-gpt-alpha", "tbank/t-tech/T-lite-it-2.1"])
def test_providers_without_a_tokenizer_get_the_estimate(http, model):
    answer = _tokenize(http, model)
    assert (answer["source"], answer["prompt_tokens"]) == ("estimate", estimate_tokens(CHARS))


def test_a_failing_tokenizer_gives_the_estimate(http, emulator_control):
    emulator_control("gigachat", status=500, path="/api/v1/tokens/count")
    answer = _tokenize(http, "gigachat/GigaChat-2-Max")
    assert (answer["source"], answer["prompt_tokens"]) == ("estimate", estimate_tokens(CHARS))


def test_a_chat_request_never_calls_a_tokenizer(openai_client, emulators):
    for name, model in (("gigachat", "gigachat/GigaChat-2-Max"), ("yandexgpt", "yandexgpt/yandexgpt-lite")):
        control = EmulatorControl(emulators[name].origin)
        control.clear_ledger()
        openai_client.chat.completions.create(model=model, messages=MESSAGES)
        paths = [e["path"] for e in control.ledger()]
        assert paths and not TOKENIZERS & set(paths), paths


def test_refusals(http, gateway, django_db_blocker):
    assert_error(http.post("/v1/xrouter/tokenize", json={"model": "gigachat/GigaChat-2-Max"}), 400, param="messages")
    assert_error(http.post("/v1/xrouter/tokenize", json={"model": "nope/none", "messages": MESSAGES}), 404)
    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        _, plaintext = key_create(user=User.objects.get(username="alice"), name="tokenize-no-chat", scopes=["models:read"])
    response = httpx.post(gateway.v1 + "/xrouter/tokenize", json={"model": "gigachat/GigaChat-2-Max", "messages": MESSAGES},
                          headers={"Authorization": f"Bearer {plaintext}"}, timeout=10)
    assert_error(response, 403, code="missing_scope")
