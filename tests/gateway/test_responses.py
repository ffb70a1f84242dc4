"""`POST /v1/responses` through the official openai SDK, against a served gateway and the emulators
(their answers: "Echo: " + the last user text, a call of the first offered tool, "Tool result: " +
the tool's answer; apps/emulators/behaviour.py). The same router, limits and usage rows as chat."""

import json
import uuid

import httpx
import pytest
from pydantic import BaseModel

from apps.emulators.behaviour import LONG_ANSWER
from tests.conftest import wait_for_usage

from .support import CHAT_IDS, CHAT_MODELS, assert_error

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_create_answers_a_response_object_and_records_usage(openai_client, django_db_blocker, provider, model):
    raw = openai_client.responses.with_raw_response.create(model=model, instructions="Be brief.", input="Привет, мир")
    response = raw.parse()

    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.error is None
    assert response.model == model
    assert response.output_text == "Echo: Привет, мир"
    [message] = response.output
    assert (message.type, message.role, message.status) == ("message", "assistant", "completed")
    assert message.content[0].type == "output_text"
    usage = response.usage
    assert usage.input_tokens > 0 and usage.output_tokens > 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    assert response.instructions == "Be brief." and response.store is False
    assert raw.headers["x-xrouter-provider"] == provider

    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert (record.provider, record.status, record.stream) == (provider, "ok", False)
    assert (record.prompt_tokens, record.completion_tokens) == (usage.input_tokens, usage.output_tokens)
    assert record.cost > 0


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_stream_helper_gives_the_text_and_the_final_response(openai_client, django_db_blocker, provider, model):
    with openai_client.responses.stream(model=model, input="tell me [long]") as stream:
        events = list(stream)
        final = stream.get_final_response()

    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert len(deltas) > 3
    assert "".join(d.delta for d in deltas) == LONG_ANSWER
    assert all(d.output_index == 0 and d.content_index == 0 and d.item_id == final.output[0].id for d in deltas)
    assert final.output_text == LONG_ANSWER and final.status == "completed"
    assert final.usage.output_tokens > 0

    record = wait_for_usage(django_db_blocker, stream._response.headers["x-request-id"])  # the SDK keeps the HTTP response there
    assert (record.provider, record.status, record.stream) == (provider, "ok", True)
    assert record.completion_tokens == final.usage.output_tokens


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_stream_helper_streams_a_function_call(openai_client, provider, model):
    with openai_client.responses.stream(model=model, input="Weather in Paris?", tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()

    [call] = [item for item in final.output if item.type == "function_call"]
    assert call.name == "get_weather" and call.call_id
    assert isinstance(json.loads(call.arguments)["city"], str)
    args_done = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert [e.arguments for e in args_done] == [call.arguments]
    deltas = [e for e in events if e.type == "response.function_call_arguments.delta"]
    assert "".join(d.delta for d in deltas) == call.arguments
    assert all(d.item_id == call.id and d.output_index == final.output.index(call) for d in deltas)
    assert events[-1].type == "response.completed"


def test_create_with_stream_true_yields_the_raw_events(openai_client):
    events = list(openai_client.responses.create(model="gigachat/GigaChat-2-Max", input="Hi there", stream=True))
    assert events[0].type == "response.created" and events[0].response.status == "in_progress"
    assert events[-1].type == "response.completed"
    assert events[-1].response.output[0].content[0].text == "Echo: Hi there"
    assert events[-1].response.usage.total_tokens > 0


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_a_tool_round_trip(openai_client, provider, model):
    first = openai_client.responses.create(model=model, input="Weather in Paris?", tools=[WEATHER])
    [call] = [item for item in first.output if item.type == "function_call"]
    follow_up = [{"role": "user", "content": "Weather in Paris?"}, *first.output,
                 {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 21 C"}]
    second = openai_client.responses.create(model=model, input=follow_up, tools=[WEATHER])
    # GigaChat's adapter wraps a result that is not JSON as {"result": ...} (its API takes JSON only).
    assert second.output_text.startswith("Tool result: ") and "sunny, 21 C" in second.output_text


class City(BaseModel):
    name: str
    population: int
    districts: list[str]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_json_schema_output_parses(openai_client, provider, model):
    parsed = openai_client.responses.parse(model=model, input="Describe Paris", text_format=City)
    assert isinstance(parsed.output_parsed, City)


def test_refusals_name_the_parameter(http):
    cases = [
        ({"store": True}, "store"),
        ({"previous_response_id": "resp_123"}, "previous_response_id"),
        ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": []}]}, "input[0].type"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input[0].type"),
        ({"background": True}, "background"),
        # Refused by GigaChat's adapter for the chat request's response_format: named as the client sent it.
        ({"text": {"format": {"type": "json_object"}}}, "text.format"),
    ]
    for extra, param in cases:
        body = {"model": "gigachat/GigaChat-2-Max", "input": "hi", **extra}
        error = assert_error(http.post("/v1/responses", json=body), 400, param=param, code="unsupported_parameter")
        assert error["message"] and "response_format" not in error["message"]


def test_unknown_fields_are_refused(http):
    body = {"model": "gigachat/GigaChat-2-Max", "input": "hi", "frobnicate": 1}
    assert_error(http.post("/v1/responses", json=body), 400, param="frobnicate")


def test_a_key_without_the_chat_scope_is_refused(gateway, django_db_blocker):
    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        user = User.objects.get(username="alice")
        _, plaintext = key_create(user=user, name="models-only", scopes=["models:read"])
    response = httpx.post(gateway.v1 + "/responses", json={"model": "gigachat/GigaChat-2-Max", "input": "hi"},
                          headers={"Authorization": f"Bearer {plaintext}"}, timeout=10)
    assert_error(response, 403)


def test_a_stream_cut_upstream_ends_with_response_failed_and_an_error_usage_row(openai_client, emulator_control,
                                                                                 django_db_blocker):
    emulator_control("mts", cut_after_chunks=4)
    with openai_client.responses.stream(model="mts/mws-gpt-alpha", input="tell me [long]") as stream:
        events = list(stream)
    failed = events[-1]
    assert failed.type == "response.failed"
    assert failed.response.status == "failed" and failed.response.error.message
    assert failed.response.output[0].status == "incomplete"
    assert [e.type for e in events[-4:]] == ["response.output_text.done", "response.content_part.done",
                                             "response.output_item.done", "response.failed"]
    done = [e for e in events if e.type == "response.output_item.done"]
    assert len(done) == 1 and done[0].sequence_number < failed.sequence_number
    with pytest.raises(RuntimeError):
        stream.get_final_response()  # the SDK's own verdict: no response.completed came
    record = wait_for_usage(django_db_blocker, stream._response.headers["x-request-id"])
    assert (record.status, record.stream) == ("error", True)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_max_output_tokens_makes_an_incomplete_response(openai_client, stream):
    kwargs = {"model": "tbank/t-tech/T-lite-it-2.1", "input": "tell me [long]", "max_output_tokens": 5}
    if stream:
        events = list(openai_client.responses.create(stream=True, **kwargs))
        assert events[-1].type == "response.incomplete"
        response = events[-1].response
    else:
        response = openai_client.responses.create(**kwargs)
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert response.output[0].status == "incomplete"
    assert response.usage.output_tokens <= 5


def test_a_forced_function_and_json_object_mode(openai_client):
    response = openai_client.responses.create(
        model="yandexgpt/yandexgpt-lite", input="Weather?", tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"})
    assert [item.type for item in response.output] == ["function_call"]
    assert response.tool_choice.name == "get_weather"
    answer = openai_client.responses.create(model="mts/mws-gpt-alpha", input="Answer in JSON: hi",
                                            text={"format": {"type": "json_object"}})
    assert json.loads(answer.output_text) == {"answer": "Echo: Answer in JSON: hi"}


def test_a_cached_answer_is_replayed_as_a_response_and_as_events(openai_client):
    """temperature 0 answers are cached (XROUTER_CACHE_TTL); the second ask is a hit, in either shape."""
    prompt = "cache me, please " + uuid.uuid4().hex
    kwargs = {"model": "mts/mws-gpt-alpha", "input": prompt, "temperature": 0}
    first = openai_client.responses.with_raw_response.create(**kwargs)
    second = openai_client.responses.with_raw_response.create(**kwargs)
    assert (first.headers["x-xrouter-cache"], second.headers["x-xrouter-cache"]) == ("miss", "hit")
    assert second.parse().output_text == first.parse().output_text == "Echo: " + prompt
    with openai_client.responses.stream(**kwargs) as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert stream._response.headers["x-xrouter-cache"] == "hit"
    assert final.output_text == "Echo: " + prompt
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_prompt_cache_key_earns_gigachats_prompt_cache(openai_client):
    """prompt_cache_key goes to GigaChat as X-Session-ID (tenant-scoped), as the header does for chat."""
    key = "conversation-" + uuid.uuid4().hex[:8]
    first = [{"role": "user", "content": "Hi"}]
    openai_client.responses.create(model="gigachat/GigaChat-2-Max", instructions="Be brief.", input=first, prompt_cache_key=key)
    second = [*first, {"role": "assistant", "content": "Echo: Hi"}, {"role": "user", "content": "Again"}]
    again = openai_client.responses.create(model="gigachat/GigaChat-2-Max", instructions="Be brief.", input=second,
                                           prompt_cache_key=key)
    assert again.usage.input_tokens_details.cached_tokens == 5
    without = openai_client.responses.create(model="gigachat/GigaChat-2-Max", instructions="Be brief.", input=second)
    assert without.usage.input_tokens_details.cached_tokens == 0


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_failing_primary_falls_back_and_each_attempt_has_its_row(openai_client, emulator_control, django_db_blocker,
                                                                   stream):
    import time

    from apps.routing.models import RoutingRule
    from apps.routing.services import rule_save, rules_delete

    suffix = uuid.uuid4().hex[:6]
    model, name = f"test/responses-{suffix}", f"t-responses-{suffix}"
    with django_db_blocker.unblock():
        rule_save(RoutingRule(name=name, match_model=model, strategy="fallback", priority=1, retries=0,
                              targets=[{"model": "gigachat/GigaChat-2-Max"}, {"model": "yandexgpt/yandexgpt-lite"}]))
    try:
        time.sleep(0.3)  # the bus tells the gateway
        emulator_control("gigachat", status=500, path="/api/v1/chat/completions", count=1)
        if stream:
            with openai_client.responses.stream(model=model, input="hi") as events:
                text = events.get_final_response().output_text
                headers = events._response.headers
        else:
            raw = openai_client.responses.with_raw_response.create(model=model, input="hi")
            text, headers = raw.parse().output_text, raw.headers
    finally:
        with django_db_blocker.unblock():
            rules_delete(RoutingRule.objects.filter(name=name))
    assert text == "Echo: hi"
    assert (headers["x-xrouter-provider"], headers["x-xrouter-route"]) == ("yandexgpt", f"{name};yandexgpt/yandexgpt-lite")
    failed = wait_for_usage(django_db_blocker, headers["x-request-id"], attempt=0)
    served = wait_for_usage(django_db_blocker, headers["x-request-id"], attempt=1)
    assert (failed.provider, failed.status, served.provider, served.status) == ("gigachat", "error", "yandexgpt", "ok")


def test_the_keys_limits_admit_responses_as_chat(gateway, django_db_blocker):
    from apps.accounts.models import User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        _, plaintext = key_create(user=User.objects.get(username="alice"), name="responses-limited", requests_rate="1/min")
    headers = {"Authorization": f"Bearer {plaintext}"}
    body = {"model": "mts/mws-gpt-alpha", "input": "hi"}
    assert httpx.post(gateway.v1 + "/responses", json=body, headers=headers, timeout=10).status_code == 200
    assert_error(httpx.post(gateway.v1 + "/responses", json=body, headers=headers, timeout=10), 429)
