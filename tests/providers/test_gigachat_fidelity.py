"""GigaChat as it really is (issue 11): schemas it refuses, json_object, finish_reason "error",
non-SSE answers to a stream, the built-in web_search, X-Session-ID, late system messages."""

import enum
import json

import pytest
from pydantic import BaseModel, Field

from apps.providers.adapters.base import ProviderError
from apps.providers.adapters.gigachat import build_request
from apps.providers.adapters.gigachat_schema import gigachat_schema

from .conftest import collect, joined, ledger, user

MODEL = "GigaChat-2-Max"
CHAT = "/api/v1/chat/completions"


# --- schemas as pydantic v2 writes them -----------------------------------------------------
class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Priority(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Address(BaseModel):
    city: str
    street: str | None = None


class Person(BaseModel):
    """A person and where they live."""

    name: str = Field(description="Full name")
    email: str = Field(json_schema_extra={"format": "email"})
    born: str = Field(json_schema_extra={"format": "date"})
    address: Address
    previous: list[Address] = []
    favourite: Colour | None = None
    priority: Priority = Priority.LOW
    tags: list[str] | None = None
    extra: dict = {}


def tool(name: str, parameters: dict) -> dict:
    return {"type": "function", "function": {"name": name, "description": "d", "parameters": parameters}}


def test_pydantic_schemas_are_cut_down_to_what_gigachat_accepts():
    schema = gigachat_schema(Person.model_json_schema(), "p")
    assert "$defs" not in json.dumps(schema) and "$ref" not in json.dumps(schema) and "anyOf" not in json.dumps(schema)
    props = schema["properties"]
    assert props["address"]["type"] == "object" and props["address"]["properties"]["city"] == {"title": "City", "type": "string"}
    assert props["address"]["properties"]["street"]["type"] == "string"  # Optional[str] collapsed
    assert props["previous"]["items"]["properties"]["city"]["type"] == "string"  # list of a nested model
    assert props["favourite"]["enum"] == ["red", "green"] and props["favourite"]["type"] == "string"
    assert props["priority"]["type"] == "integer" and "enum" not in props["priority"]
    assert "One of: 1, 2." in props["priority"]["description"]
    assert props["tags"] == {"items": {"type": "string"}, "type": "array", "title": "Tags", "default": None}
    assert props["extra"]["type"] == "object" and props["extra"]["properties"] == {}  # dict → empty properties
    assert "format" not in props["email"] and props["born"]["format"] == "date"
    assert props["name"]["description"] == "Full name"


def test_mcp_style_schemas_are_normalised():
    schema = gigachat_schema(
        {
            "type": "object",
            "properties": {
                "q": {"type": ["string", "null"], "format": "uri"},
                "opts": {"type": "object"},
                "mode": {"const": "fast"},
                "both": {"allOf": [{"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
                                   {"properties": {"b": {"type": "integer"}}}]},
                "any": {},
            },
        },
        "p",
    )
    props = schema["properties"]
    assert props["q"] == {"type": "string"}
    assert props["opts"] == {"type": "object", "properties": {}}
    assert props["mode"] == {"enum": ["fast"], "type": "string"}
    assert props["both"] == {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}, "required": ["a"]}
    assert props["any"] == {"type": "object", "properties": {}}


@pytest.mark.parametrize(
    "schema, why",
    [
        ({"type": "object", "properties": {"x": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}}, "several types"),
        ({"type": "object", "properties": {"x": {"type": ["string", "integer"]}}}, "several types"),
        ({"$defs": {"N": {"type": "object", "properties": {"next": {"$ref": "#/$defs/N"}}}}, "$ref": "#/$defs/N"}, "recursive"),
        ({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}}, "does not point"),
    ],
)
def test_schemas_gigachat_cannot_express_are_refused(schema, why):
    with pytest.raises(ProviderError) as caught:
        build_request({"messages": [user("x")], "tools": [tool("f", schema)]}, MODEL)
    assert caught.value.status == 400 and caught.value.kind == "unsupported_parameter"
    assert caught.value.param == "tools[0].function.parameters" and why in caught.value.message


def test_a_schema_that_explodes_when_inlined_is_refused():
    defs = {f"L{i}": {"type": "object", "properties": {"a": {"$ref": f"#/$defs/L{i + 1}"}, "b": {"$ref": f"#/$defs/L{i + 1}"}}} for i in range(30)}
    defs["L30"] = {"type": "string"}
    with pytest.raises(ProviderError) as caught:
        build_request({"messages": [user("x")], "tools": [tool("f", {"$defs": defs, "$ref": "#/$defs/L0"})]}, MODEL)
    assert "nodes" in caught.value.message


async def test_pydantic_tools_and_structured_output_reach_gigachat(make_adapter, controls):
    adapter = make_adapter("gigachat")
    result = await adapter.chat({"messages": [user("Who?")], "tools": [tool("save_person", Person.model_json_schema())]}, MODEL)
    call = result.choices[0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "save_person" and json.loads(call["function"]["arguments"])["address"]["city"] == "Moscow"
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": Person.model_json_schema()}}
    answer = await adapter.chat({"messages": [user("Who?")], "response_format": fmt}, MODEL)
    content = json.loads(answer.choices[0]["message"]["content"])
    assert content["address"] == {"city": "Moscow", "street": "Moscow"} and content["previous"] == []


async def test_the_emulator_refuses_what_gigachat_refuses(make_adapter, emulators):
    import aiohttp

    from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY

    base = emulators["gigachat"].base_url
    async with aiohttp.ClientSession() as session:
        async with session.post(emulators["gigachat"].auth_url, data={"scope": "GIGACHAT_API_PERS"},
                                headers={"Authorization": f"Basic {DEMO_AUTHORIZATION_KEY}", "RqUID": "6f0b1291-c7f3-43c6-bb2e-9f3efb2dc98e"}) as resp:
            token = (await resp.json())["access_token"]
        body = {"model": MODEL, "messages": [user("x")], "functions": [{"name": "f", "parameters": Person.model_json_schema()}]}
        async with session.post(base + "/chat/completions", json=body, headers={"Authorization": f"Bearer {token}"}) as resp:
            assert resp.status == 422 and "not supported" in (await resp.json())["message"]


# --- (2) json_object ----------------------------------------------------------------------------
async def test_json_object_is_refused_with_a_pointer_to_json_schema(make_adapter, controls):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("gigachat").chat({"messages": [user("x")], "response_format": {"type": "json_object"}}, MODEL)
    assert caught.value.status == 400 and caught.value.param == "response_format" and "json_schema" in caught.value.message
    assert ledger(controls, "gigachat", CHAT) == []  # refused before any call


# --- (3) finish_reason "error" ------------------------------------------------------------------
WEATHER = tool("get_weather", {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]})


async def test_an_unparsable_call_fails_an_answer_that_has_not_started(make_adapter):
    with pytest.raises(ProviderError) as caught:
        await make_adapter("gigachat").chat({"messages": [user("weather [bad_call]")], "tools": [WEATHER]}, MODEL)
    assert caught.value.kind == "bad_response" and caught.value.status == 502


async def test_an_unparsable_call_after_streamed_text_ends_the_stream_with_stop(make_adapter):
    from apps.emulators.gigachat import BAD_CALL_TEXT

    body = {"messages": [user("weather [bad_call]")], "tools": [WEATHER], "stream": True}
    chunks = await collect(make_adapter("gigachat").stream_chat(body, MODEL))
    assert joined(chunks) == BAD_CALL_TEXT
    assert [c.finish_reason for c in chunks if c.finish_reason] == ["stop"]
    assert not any("tool_calls" in (c.delta or {}) for c in chunks)
    assert [c.usage for c in chunks if c.usage]  # usage still arrives


async def test_an_unparsable_call_before_any_text_fails_the_stream_before_its_first_chunk(make_adapter, scripted):
    scripted.answer(
        'data: {"choices":[{"delta":{"content":"","role":"assistant"},"index":0}],"object":"chat.completion"}\n\n',
        'data: {"choices":[{"delta":{"content":""},"index":0,"finish_reason":"error"}],"object":"chat.completion"}\n\n',
        "data: [DONE]\n\n",
        content_type="text/event-stream",
    )
    adapter = make_adapter("gigachat", secrets={"access_token": "t"}, base_url=scripted.origin + "/api/v1")
    stream = adapter.stream_chat({"messages": [user("x")], "tools": [WEATHER], "stream": True}, MODEL)
    with pytest.raises(ProviderError) as caught:
        await stream.__anext__()
    assert caught.value.kind == "bad_response"


# --- (4) a 200 that is not an event stream ----------------------------------------------------------
@pytest.mark.parametrize(
    "body, content_type, kind",
    [
        ('{"choices":[{"message":{"content":"whole"},"index":0,"finish_reason":"stop"}],"object":"chat.completion"}', "application/json", "bad_response"),
        ('{"status":429,"message":"Too many requests"}', "application/json; charset=utf-8", "rate_limited"),
        ("<html>maintenance</html>", "text/html", "bad_response"),
    ],
)
async def test_a_stream_answered_without_an_event_stream_fails_before_its_first_chunk(make_adapter, scripted, body, content_type, kind):
    scripted.answer(body, content_type=content_type)
    adapter = make_adapter("gigachat", secrets={"access_token": "t"}, base_url=scripted.origin + "/api/v1")
    stream = adapter.stream_chat({"messages": [user("x")], "stream": True}, MODEL)
    with pytest.raises(ProviderError) as caught:
        await stream.__anext__()
    assert caught.value.kind == kind
    if kind == "bad_response":
        assert content_type.split(";")[0] in caught.value.message


# --- (5) a client function named web_search -------------------------------------------------------
SEARCH = tool("web_search", {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})


def test_a_function_named_like_a_built_in_travels_under_another_name():
    body = {
        "messages": [
            user("find"),
            {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "web_search", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "found"},
        ],
        "tools": [SEARCH],
        "tool_choice": {"type": "function", "function": {"name": "web_search"}},
    }
    payload = build_request(body, MODEL)
    assert "web_search" not in json.dumps(payload).replace("__xrouter_user_web_search", "")
    with pytest.raises(ProviderError):
        build_request({"messages": [user("x")], "tools": [tool("__xrouter_user_web_search", {})]}, MODEL)


async def test_a_function_named_web_search_round_trips(make_adapter, controls):
    adapter = make_adapter("gigachat")
    first = await adapter.chat({"messages": [user("find cats")], "tools": [SEARCH]}, MODEL)
    message = first.choices[0]["message"]
    call = message["tool_calls"][0]
    assert call["function"]["name"] == "web_search"
    history = [user("find cats"), message, {"role": "tool", "tool_call_id": call["id"], "content": "cats"}]
    second = await adapter.chat({"messages": history, "tools": [SEARCH]}, MODEL)
    assert second.choices[0]["message"]["content"] == 'Tool result: {"result": "cats"}'
    streamed = await collect(adapter.stream_chat({"messages": [user("find")], "tools": [SEARCH], "stream": True}, MODEL))
    assert [c.delta["tool_calls"][0]["function"]["name"] for c in streamed if "tool_calls" in (c.delta or {})] == ["web_search"]


# --- (6) X-Session-ID -----------------------------------------------------------------------------
async def test_the_session_id_reaches_gigachat_and_earns_the_prompt_cache(make_adapter):
    from apps.providers.adapters.base import session_id

    adapter = make_adapter("gigachat")
    first = [{"role": "system", "content": "Be brief."}, user("Hi")]
    second = [*first, {"role": "assistant", "content": "Echo: Hi"}, user("Again")]
    token = session_id.set("0f8e2a4c-1b7d-5e3f-9a6c-2d4b8e0f1a3c")
    try:
        await adapter.chat({"messages": first}, MODEL)
        streamed = await collect(adapter.stream_chat({"messages": second, "stream": True}, MODEL))
    finally:
        session_id.reset(token)
    assert [c.usage.cached_tokens for c in streamed if c.usage] == [5]
    again = await adapter.chat({"messages": second}, MODEL)  # no session: no hit
    assert again.usage.cached_tokens == 0


# --- (7) a system message that is not first ------------------------------------------------------------
def test_a_system_message_that_is_not_first_moves_to_the_front():
    body = {"messages": [user("Hi"), {"role": "assistant", "content": "Hello"}, {"role": "system", "content": "Answer in Russian."},
                         user("How are you?"), {"role": "developer", "content": "Be brief."}]}
    assert build_request(body, MODEL)["messages"] == [
        {"role": "system", "content": "Answer in Russian."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "How are you?\n\nBe brief."},  # a second system message stays a user turn
    ]


async def test_a_late_system_message_is_accepted_by_gigachat(make_adapter):
    body = {"messages": [user("Hi"), {"role": "system", "content": "Be brief."}]}
    result = await make_adapter("gigachat").chat(body, MODEL)
    assert result.choices[0]["message"]["content"] == "Echo: Hi"


# --- (16) parameters decided per provider --------------------------------------------------------
@pytest.mark.parametrize("name, value", [("seed", 7), ("logit_bias", {"1": -100})])
def test_gigachat_refuses_seed_and_logit_bias(name, value):
    with pytest.raises(ProviderError) as caught:
        build_request({"messages": [user("x")], name: value}, MODEL)
    assert caught.value.param == name and caught.value.kind == "unsupported_parameter"


def test_gigachat_drops_user_and_parallel_tool_calls():
    payload = build_request({"messages": [user("x")], "user": "u-1", "parallel_tool_calls": False, "tools": [WEATHER]}, MODEL)
    assert "user" not in payload and "parallel_tool_calls" not in payload


def test_refs_to_refs_and_unions_of_refs_are_inlined_whole():
    schema = gigachat_schema({
        "$defs": {"A": {"$ref": "#/$defs/B"}, "B": {"type": "object", "properties": {"x": {"anyOf": [{"$ref": "#/$defs/C"}, {"type": "null"}]}}},
                  "C": {"anyOf": [{"type": "string", "format": "uuid"}, {"type": "null"}]}},
        "type": "object", "properties": {"a": {"$ref": "#/$defs/A"}, "b": {"oneOf": [{"allOf": [{"$ref": "#/$defs/B"}]}, {"type": "null"}]}},
    }, "p")
    assert schema["properties"]["a"] == {"type": "object", "properties": {"x": {"type": "string"}}}
    assert schema["properties"]["b"] == schema["properties"]["a"]
