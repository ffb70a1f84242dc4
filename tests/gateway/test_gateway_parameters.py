"""Parameters the gateway honours itself where a provider cannot: `n` > 1 by parallel calls, `stop`
by cutting the answer (also mid-stream), structured output, and `max_completion_tokens`."""

import json

import openai
import pytest

from .support import CHAT_IDS, CHAT_MODELS, assert_error

SENTENCE = "one two three four five six seven"  # answered "Echo: one two three ..."


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_n_2_with_two_choices(openai_client, provider, model):
    completion = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": "twice"}], n=2)
    assert [c.index for c in completion.choices] == [0, 1]
    assert [c.message.content for c in completion.choices] == ["Echo: twice", "Echo: twice"]
    assert all(c.finish_reason == "stop" for c in completion.choices)
    single = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": "twice"}])
    assert completion.usage.completion_tokens == 2 * single.usage.completion_tokens, "both answers are billed"


def test_it_refuses_to_stream_n_2_where_the_provider_cannot(openai_client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "x"}],
                                              n=2, stream=True)
    assert_error(caught.value.response, 400, param="n")


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_cuts_the_answer_at_a_stop_sequence(openai_client, provider, model):
    completion = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": SENTENCE}],
                                                       stop=[" four", "zzz"])
    assert completion.choices[0].message.content == "Echo: one two three"
    assert completion.choices[0].finish_reason == "stop"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_cuts_a_stream_at_a_stop_sequence_split_across_chunks(openai_client, provider, model):
    # The emulators stream three words a chunk: "Echo: one two " | "three four five " | ...
    # so "two three" straddles two chunks.
    stream = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": SENTENCE}],
                                                   stop="two three", stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    choice_chunks = [c for c in chunks if c.choices]
    text = "".join(c.choices[0].delta.content or "" for c in choice_chunks)
    assert text == "Echo: one "
    assert choice_chunks[-1].choices[0].finish_reason == "stop"
    assert sum(1 for c in choice_chunks if c.choices[0].finish_reason) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_leaves_an_answer_without_the_stop_sequence_whole(openai_client, provider, model):
    stream = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": SENTENCE}],
                                                   stop=["nowhere"], stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "Echo: " + SENTENCE


def _json_mode(client, model):
    return client.chat.completions.create(
        model=model, messages=[{"role": "system", "content": "Answer in JSON."}, {"role": "user", "content": "capital"}],
        response_format={"type": "json_object"},
    )


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS[1:], ids=CHAT_IDS[1:])
def test_it_answers_json_object_mode_with_a_json_object(openai_client, provider, model):
    assert isinstance(json.loads(_json_mode(openai_client, model).choices[0].message.content), dict)


def test_it_refuses_json_object_mode_for_gigachat(openai_client):
    # GigaChat has no schema-less JSON mode (gpt2giga refuses it too): a json_schema is the way.
    with pytest.raises(openai.BadRequestError) as caught:
        _json_mode(openai_client, "gigachat/GigaChat-2-Max")
    error = assert_error(caught.value.response, 400, param="response_format", code="unsupported_parameter")
    assert "json_schema" in error["message"]


def test_it_puts_yandexgpt_in_json_mode(openai_client):
    completion = _json_mode(openai_client, "yandexgpt/yandexgpt-lite")
    assert json.loads(completion.choices[0].message.content) == {"answer": "Echo: capital"}


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_answers_json_schema_mode_with_a_conforming_object_or_names_the_parameter(openai_client, provider, model):
    from openai import BadRequestError

    schema = {"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    try:
        completion = openai_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": "biggest city"}],
            response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": True}},
        )
    except BadRequestError as exc:  # refused, naming it, is allowed where it cannot be honoured faithfully
        assert_error(exc.response, 400, param="response_format")
        return
    message = completion.choices[0].message
    assert not message.tool_calls, "structured output through function calling must come back as content"
    assert json.loads(message.content) == {"city": "Moscow", "population": 3}


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_truncates_at_max_completion_tokens(openai_client, provider, model):
    completion = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": SENTENCE}],
                                                       max_completion_tokens=3)
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    assert choice.message.content == "Echo: one two"
    assert completion.usage.completion_tokens == 3


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_truncates_a_stream_at_max_tokens(openai_client, provider, model):
    stream = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": SENTENCE}],
                                                   max_tokens=3, stream=True)
    chunks = [c for c in stream if c.choices]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Echo: one two"
    assert chunks[-1].choices[0].finish_reason == "length"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_accepts_the_parameters_that_do_not_change_the_answer(openai_client, provider, model):
    # user: forwarded where the provider has the field (MTS, T-Bank), dropped elsewhere.
    completion = openai_client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "same"}], user="alice-42", metadata={"team": "qa"},
        store=False, parallel_tool_calls=True,
    )
    assert completion.choices[0].message.content == "Echo: same"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_seed_and_logit_bias_reach_the_providers_that_have_them_and_are_refused_elsewhere(openai_client, provider, model):
    for extra in ({"seed": 7}, {"logit_bias": {"50256": -100}}):
        if provider in ("mts", "tbank"):  # vLLM takes both
            completion = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": "same"}], **extra)
            assert completion.choices[0].message.content == "Echo: same"
            continue
        with pytest.raises(openai.BadRequestError) as caught:
            openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": "same"}], **extra)
        assert_error(caught.value.response, 400, param=next(iter(extra)), code="unsupported_parameter")


def test_gigachat_takes_pydantic_tools_and_structured_output_from_the_sdk(openai_client):
    """What the openai SDK sends for nested pydantic models (strict $defs/$ref, Optional as anyOf with
    null, lists, enums) reaches GigaChat in the schema subset it accepts (issue 11)."""
    import enum

    import pydantic

    class Unit(enum.Enum):
        C = "celsius"
        F = "fahrenheit"

    class Place(pydantic.BaseModel):
        city: str
        district: str | None = None

    class Forecast(pydantic.BaseModel):
        place: Place
        unit: Unit
        hours: list[int]
        nearby: list[Place]

    completion = openai_client.beta.chat.completions.parse(
        model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "forecast"}], response_format=Forecast)
    forecast = completion.choices[0].message.parsed
    assert forecast.place.city == "Moscow" and forecast.unit is Unit.C

    tool = openai.pydantic_function_tool(Forecast, name="save_forecast")
    called = openai_client.chat.completions.create(
        model="gigachat/GigaChat-2-Max", messages=[{"role": "user", "content": "save it"}], tools=[tool])
    call = called.choices[0].message.tool_calls[0]
    assert call.function.name == "save_forecast" and json.loads(call.function.arguments)["place"]["city"] == "Moscow"
