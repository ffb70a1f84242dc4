"""The Responses request's translation into chat (apps/gateway/responses.py), without a server."""

import orjson
import pytest

from apps.common.errors import ApiError
from apps.gateway.responses import Answer
from apps.gateway.responses_schema import parse_responses, responses_param


def _parse(**body):
    return parse_responses(orjson.dumps({"model": "gigachat/GigaChat-2-Max", **body}))


def test_a_conversation_of_items_becomes_chat_messages():
    _, chat = _parse(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Use metric units."},
            {"role": "user", "content": [{"type": "input_text", "text": "Weather "}, {"type": "input_text", "text": "in Paris?"}]},
            {"type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
             "content": [{"type": "output_text", "text": "Let me look.", "annotations": [], "logprobs": []}]},
            {"type": "function_call", "id": "fc_1", "call_id": "call_a", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}",
             "status": "completed"},
            {"type": "function_call", "call_id": "call_b", "name": "get_time", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "call_a", "output": "sunny"},
            {"type": "function_call_output", "call_id": "call_b", "output": [{"type": "input_text", "text": "noon"}]},
        ],
        max_output_tokens=100, temperature=0.5,
        tools=[{"type": "function", "name": "get_weather", "parameters": {"type": "object", "properties": {}}},
               {"type": "function", "name": "get_time"}],
        tool_choice="required",
    )
    assert chat["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": "Use metric units."},
        {"role": "user", "content": [{"type": "text", "text": "Weather "}, {"type": "text", "text": "in Paris?"}]},
        {"role": "assistant", "content": "Let me look.", "tool_calls": [
            {"id": "call_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
            {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "tool", "tool_call_id": "call_b", "content": "noon"},
    ]
    assert (chat["max_tokens"], chat["temperature"], chat["tool_choice"], chat["stream"]) == (100, 0.5, "required", False)
    assert chat["tools"][1] == {"type": "function", "function": {"name": "get_time"}}


def test_text_format_json_schema_becomes_response_format():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    _, chat = _parse(input="hi", text={"format": {"type": "json_schema", "name": "A", "schema": schema, "strict": True}})
    assert chat["response_format"] == {"type": "json_schema", "json_schema": {"name": "A", "schema": schema, "strict": True}}


def test_a_function_call_without_an_assistant_turn_opens_one():
    _, chat = _parse(input=[{"role": "user", "content": "hi"},
                            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"}])
    assert chat["messages"][1] == {"role": "assistant", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_an_image_url_becomes_an_image_part():
    _, chat = _parse(input=[{"role": "user", "content": [
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "low"}]}])
    assert chat["messages"][0]["content"] == [{"type": "image_url", "image_url": {"url": "https://example.com/a.png",
                                                                                  "detail": "low"}}]


@pytest.mark.parametrize(("body", "param"), [
    ({"store": True}, "store"),
    ({"previous_response_id": "resp_1"}, "previous_response_id"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"tools": [{"type": "file_search", "vector_store_ids": []}]}, "tools[0].type"),
    ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice.type"),
    ({"input": [{"type": "computer_call_output", "call_id": "c"}]}, "input[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}, "input[0].content[0].image_url"),
    ({"text": {"verbosity": "low"}}, "text.verbosity"),
])
def test_what_a_stateless_gateway_cannot_do_is_refused_by_name(body, param):
    with pytest.raises(ApiError) as caught:
        _parse(**{"input": "hi", **body})
    assert (caught.value.status, caught.value.param, caught.value.code) == (400, param, "unsupported_parameter")


def test_schema_errors_name_the_field():
    with pytest.raises(ApiError) as caught:
        _parse(input=[{"type": "function_call", "call_id": "c", "name": "bad name!", "arguments": "{}"}])
    assert caught.value.param == "input[0].name"


def test_store_false_and_ignored_fields_are_accepted():
    request, chat = _parse(input="hi", store=False, include=["reasoning.encrypted_content"], truncation="disabled",
                           prompt_cache_key="k", service_tier="auto")
    assert chat["messages"] == [{"role": "user", "content": "hi"}]
    assert "store" not in chat and request.store is False


def test_a_chat_answer_becomes_a_response_object():
    request, _ = _parse(input="hi", tools=[{"type": "function", "name": "f"}])
    payload = {"model": "gigachat/GigaChat-2-Max", "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5,
                                                              "prompt_tokens_details": {"cached_tokens": 1}},
               "choices": [{"index": 0, "finish_reason": "tool_calls", "message": {
                   "role": "assistant", "content": "", "tool_calls": [
                       {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}}]}
    response = Answer(request, "abc").shape(payload)
    assert response["status"] == "completed" and response["incomplete_details"] is None
    assert response["output"] == [{"type": "function_call", "id": "fc_abc_0", "call_id": "call_1", "name": "f",
                                   "arguments": "{}", "status": "completed"}]
    assert response["usage"] == {"input_tokens": 3, "input_tokens_details": {"cached_tokens": 1}, "output_tokens": 2,
                                 "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 5}
    assert response["tools"] == [{"type": "function", "name": "f"}]


def test_nulls_where_only_nulls_are_taken_are_accepted():
    """Clients that send every field (null when unset), as some proxies do."""
    _, chat = _parse(input="hi", store=None, previous_response_id=None, conversation=None, background=False, prompt=None,
                     max_tool_calls=None, tools=None, text=None)
    assert chat["messages"] == [{"role": "user", "content": "hi"}]


def test_items_that_are_not_objects_are_named_by_the_schema():
    with pytest.raises(ApiError) as caught:
        _parse(input=["hi"])
    assert caught.value.param == "input[0]" and caught.value.code == "invalid_value"


@pytest.mark.parametrize(("chat", "responses"), [
    ("response_format", "text.format"),
    ("response_format.json_schema.schema", "text.format.schema"),
    ("response_format.json_schema.schema.properties.a", "text.format.schema.properties.a"),
    ("max_tokens", "max_output_tokens"),
    ("reasoning_effort", "reasoning.effort"),
    ("tools[2].function.parameters", "tools[2].parameters"),
    ("tools[0].function", "tools[0]"),
    ("messages[3].content", "input"),
    ("messages", "input"),
    ("tool_choice", "tool_choice"),
    ("tool_choice.function.name", "tool_choice.name"),
    ("temperature", "temperature"),
    ("response_formats", "response_formats"),
    (None, None),
])
def test_a_refusal_names_the_field_the_responses_client_sent(chat, responses):
    assert responses_param(chat) == responses


def test_a_refusal_message_quotes_the_fields_the_responses_client_sent():
    from apps.gateway.responses_schema import responses_message

    message = ("GigaChat does not support the parameter 'response_format': json_object has no GigaChat equivalent; "
               "send a JSON schema in 'response_format.json_schema.schema' for model 'GigaChat-2-Max'")
    assert responses_message(message) == (
        "GigaChat does not support the parameter 'text.format': json_object has no GigaChat equivalent; "
        "send a JSON schema in 'text.format.schema' for model 'GigaChat-2-Max'")
