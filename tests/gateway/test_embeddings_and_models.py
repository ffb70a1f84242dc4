"""Embeddings (every provider that has an embedding model) and the model list, via the openai SDK."""

import base64
import struct

import pytest

from tests.conftest import wait_for_usage

from .support import CHAT_MODELS, EMBEDDING_IDS, EMBEDDING_MODELS, assert_error, expected_cost


def _floats(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


@pytest.mark.parametrize(("provider", "model"), EMBEDDING_MODELS, ids=EMBEDDING_IDS)
def test_it_embeds_a_string_as_floats(openai_client, django_db_blocker, provider, model):
    raw = openai_client.embeddings.with_raw_response.create(model=model, input="Москва", encoding_format="float")
    result = raw.parse()

    assert result.object == "list"
    assert result.model == model
    assert len(result.data) == 1
    item = result.data[0]
    assert item.object == "embedding" and item.index == 0
    assert isinstance(item.embedding, list) and len(item.embedding) > 8
    assert all(isinstance(x, float) for x in item.embedding)
    assert result.usage.prompt_tokens > 0 and result.usage.total_tokens == result.usage.prompt_tokens
    assert raw.headers["x-xrouter-provider"] == provider

    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert (record.endpoint, record.provider, record.status) == ("embeddings", provider, "ok")
    assert record.prompt_tokens == result.usage.prompt_tokens
    assert record.cost == expected_cost(model, record.prompt_tokens, 0) > 0


@pytest.mark.parametrize(("provider", "model"), EMBEDDING_MODELS, ids=EMBEDDING_IDS)
def test_it_embeds_a_list_in_order(openai_client, provider, model):
    texts = ["первый", "second", "первый"]
    result = openai_client.embeddings.create(model=model, input=texts, encoding_format="float")
    assert [d.index for d in result.data] == [0, 1, 2]
    vectors = [d.embedding for d in result.data]
    assert vectors[0] == vectors[2], "the same text embeds to the same vector"
    assert vectors[0] != vectors[1]
    single = openai_client.embeddings.create(model=model, input="second", encoding_format="float")
    assert single.data[0].embedding == vectors[1], "a list item embeds as it does alone"


@pytest.mark.parametrize(("provider", "model"), EMBEDDING_MODELS, ids=EMBEDDING_IDS)
def test_it_embeds_as_base64_little_endian_float32(openai_client, provider, model):
    floats = openai_client.embeddings.create(model=model, input=["a", "b"], encoding_format="float")
    packed = openai_client.embeddings.create(model=model, input=["a", "b"], encoding_format="base64")
    for as_float, as_b64 in zip(floats.data, packed.data, strict=True):
        assert isinstance(as_b64.embedding, str)
        decoded = _floats(as_b64.embedding)
        assert len(decoded) == len(as_float.embedding)
        assert decoded == pytest.approx(as_float.embedding, rel=1e-6, abs=1e-6)
    # The SDK's own default (it asks for base64 and decodes it) gives the float vector back.
    default = openai_client.embeddings.create(model=model, input="a")
    assert default.data[0].embedding == pytest.approx(floats.data[0].embedding, rel=1e-6, abs=1e-6)


def test_it_refuses_a_chat_model_for_embeddings(openai_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        openai_client.embeddings.create(model="gigachat/GigaChat-2-Max", input="x", encoding_format="float")
    assert_error(caught.value.response, 404, param="model", code="model_not_found")


def test_it_refuses_an_embedding_model_for_chat(openai_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        openai_client.chat.completions.create(model="gigachat/Embeddings", messages=[{"role": "user", "content": "x"}])
    assert_error(caught.value.response, 404, param="model", code="model_not_found")


def test_it_lists_every_demo_model_and_alias_for_alice(openai_client):
    raw = openai_client.models.with_raw_response.list()
    page = raw.parse()
    assert raw.headers["x-request-id"]
    ids = {m.id for m in page.data}
    for _, model in CHAT_MODELS + EMBEDDING_MODELS:
        assert model in ids
    assert {"gpt-4o", "gpt-4o-mini", "text-embedding-3-small"} <= ids
    assert all(m.object == "model" and m.owned_by and m.created is not None for m in page.data)
    assert len(ids) == len(page.data), "no model is listed twice"


@pytest.mark.parametrize("model", [m for _, m in CHAT_MODELS + EMBEDDING_MODELS] + ["gpt-4o"])
def test_it_retrieves_one_model_by_its_slashed_id(openai_client, model):
    found = openai_client.models.retrieve(model)
    assert found.id == model and found.object == "model"


def test_it_retrieves_a_model_by_its_percent_encoded_id(http):
    response = http.get("/v1/models/tbank%2Ft-tech%2FT-lite-it-2.1")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == "tbank/t-tech/T-lite-it-2.1"


def test_it_answers_404_for_a_model_that_does_not_exist(openai_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        openai_client.models.retrieve("gigachat/GigaChat-9-Ultra")
    assert_error(caught.value.response, 404, param="model", code="model_not_found")


def test_it_lists_to_charlie_only_the_models_his_key_allows(charlie_client):
    ids = {m.id for m in charlie_client.models.list().data}
    assert ids == {"tbank/t-tech/T-pro-it-2.0", "tbank/t-tech/T-lite-it-2.1"}


def test_it_hides_from_charlie_a_model_his_key_does_not_allow(charlie_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError):
        charlie_client.models.retrieve("gigachat/GigaChat-2-Max")


def test_it_lists_to_a_residency_key_only_models_hosted_in_russia(resident_client):
    ids = {m.id for m in resident_client.models.list().data}
    assert "mts/gpt-4o" not in ids
    assert "gigachat/GigaChat-2-Max" in ids
