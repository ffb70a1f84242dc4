import pytest

from tests.conftest import wait_for_usage


def test_it_answers_a_gigachat_chat_through_the_openai_sdk(openai_client, django_db_blocker):
    raw = openai_client.chat.completions.with_raw_response.create(
        model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "Привет"}]
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "Echo: Привет"
    assert raw.headers["x-xrouter-provider"] == "gigachat"
    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert record.provider == "gigachat" and record.prompt_tokens > 0


def test_it_refuses_a_missing_key(gateway):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=gateway.v1, api_key="nope", max_retries=0)
    with pytest.raises(AuthenticationError):
        client.models.list()
