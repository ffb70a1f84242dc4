"""What the end-to-end gateway tests share: the provider table, the demo secrets and prices,
and the checks every error answer must pass (the OpenAI envelope, no credentials)."""

from decimal import Decimal

import orjson
import yaml

from tests.conftest import ROOT

DEMO = yaml.safe_load((ROOT / "config" / "demo.yaml").read_text())

# (provider, chat model) once per provider; ids are the provider names.
CHAT_MODELS = [
    ("gigachat", "gigachat/GigaChat-2-Max"),
    ("yandexgpt", "yandexgpt/yandexgpt-lite"),
    ("mts", "mts/mws-gpt-alpha"),
    ("tbank", "tbank/t-tech/T-lite-it-2.1"),
]
CHAT_IDS = [p for p, _ in CHAT_MODELS]
EMBEDDING_MODELS = [
    ("gigachat", "gigachat/Embeddings"),
    ("yandexgpt", "yandexgpt/text-search-doc"),
    ("mts", "mts/bge-m3"),
]
EMBEDDING_IDS = [p for p, _ in EMBEDDING_MODELS]

# A 120-word answer the emulators give to any prompt holding "[long]" (apps/emulators/behaviour.py).
LONG_PROMPT = "Tell me a long story [long]"


def _demo_secrets() -> list[str]:
    found = []
    for provider in DEMO["providers"].values():
        creds = provider.get("credentials") or {}
        entries = creds if isinstance(creds, list) else [{"secrets": creds}]
        for entry in entries:
            for value in (entry.get("secrets") or {}).values():
                if isinstance(value, str) and value not in ("GIGACHAT_API_PERS",):
                    found.append(value)
    return found


# Every credential value of config/demo.yaml (the GigaChat scope name is not a secret).
DEMO_SECRETS = _demo_secrets()
# The GigaChat authorization key decodes to client_id:client_secret; neither half may leak either.
DEMO_SECRETS.append("demo-secret")


def price(model: str) -> tuple[Decimal, Decimal]:
    provider, _, name = model.partition("/")
    spec = DEMO["providers"][provider]["models"][name]
    return Decimal(spec["input_price"]), Decimal(spec["output_price"])


def expected_cost(model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Decimal:
    """Roubles per 1,000 tokens; the demo sets no cached-input price, so cached prompt tokens
    (GigaChat's precached_prompt_tokens) are free."""
    input_price, output_price = price(model)
    billed = (prompt_tokens - cached_tokens) * input_price + completion_tokens * output_price
    return (billed / 1000).quantize(Decimal("0.000001"))


def assert_no_secrets(text: str) -> None:
    for secret in DEMO_SECRETS:
        assert secret not in text, f"a provider credential leaked to the client: {secret!r} in {text[:300]!r}"


_ANY = object()


def assert_error(response, status: int, *, param=_ANY, code=_ANY, type_=_ANY) -> dict:
    """The answer is `status` with exactly the OpenAI error envelope; returns the inner error.

    `response` is an httpx (or the SDK's httpx2) response, e.g. `exc.response` of an SDK error.
    """
    text = response.text
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {text[:500]}"
    assert response.headers.get("content-type", "").startswith("application/json"), response.headers
    assert response.headers.get("x-request-id"), "every /v1 answer carries x-request-id"
    body = orjson.loads(text)
    assert isinstance(body, dict) and list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and error["type"], error
    assert error["param"] is None or isinstance(error["param"], str), error
    assert error["code"] is None or isinstance(error["code"], str), error
    if param is not _ANY:
        assert error["param"] == param, error
    if code is not _ANY:
        assert error["code"] == code, error
    if type_ is not _ANY:
        assert error["type"] == type_, error
    assert_no_secrets(text)
    return error


def sse_events(lines) -> list[str]:
    """The `data:` payloads of a server-sent event stream, in order."""
    events = []
    for line in lines:
        if line.startswith("data:"):
            events.append(line[5:].strip())
    return events


def chat_body(model: str, text: str = "Привет", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
