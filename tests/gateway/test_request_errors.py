"""Bad requests get their documented 4xx in the OpenAI error envelope, naming the bad parameter;
no input makes the gateway answer 500."""

import httpx
import orjson
import pytest

from .support import assert_error, chat_body

GIGA = "gigachat/GigaChat-2-Max"
USER = [{"role": "user", "content": "hi"}]


def _post(http, body, path="/v1/chat/completions", **kw):
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return http.post(path, content=content, headers={"content-type": "application/json"}, **kw)


# --- the body ------------------------------------------------------------------------------


def test_it_refuses_malformed_json(http):
    error = assert_error(_post(http, b'{"model": "x", "messages": ['), 400, param=None, type_="invalid_request_error")
    assert "JSON" in error["message"]


def test_it_refuses_a_body_that_is_not_an_object(http):
    error = assert_error(_post(http, b'[{"model": "x"}]'), 400, param=None)
    assert "object" in error["message"]


def test_it_refuses_an_empty_body(http):
    assert_error(_post(http, b""), 400, param=None)


def test_it_names_a_missing_model(http):
    assert_error(_post(http, {"messages": USER}), 400, param="model", code="missing_required_parameter")


def test_it_names_missing_messages(http):
    assert_error(_post(http, {"model": GIGA}), 400, param="messages", code="missing_required_parameter")


def test_it_names_empty_messages(openai_client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=[])
    assert_error(caught.value.response, 400, param="messages", code="invalid_value")


def test_it_names_a_bad_role(openai_client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=[{"role": "robot", "content": "beep"}])
    assert_error(caught.value.response, 400, param="messages[0].role")


@pytest.mark.parametrize("temperature", [-0.1, 2.5, "hot"])
def test_it_names_a_bad_temperature(openai_client, temperature):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=USER, temperature=temperature)
    assert_error(caught.value.response, 400, param="temperature")


def test_it_names_an_unknown_parameter_instead_of_passing_it_on(openai_client):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=USER, extra_body={"frobnicate": True})
    error = assert_error(caught.value.response, 400, param="frobnicate")
    assert "frobnicate" in error["message"]


@pytest.mark.parametrize("n", [0, 17, 1000])
def test_it_names_n_out_of_range(openai_client, n):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=USER, n=n)
    assert_error(caught.value.response, 400, param="n")


@pytest.mark.parametrize("param, value", [("n", "2"), ("n", 1.5), ("stream", "true"), ("max_tokens", "100"), ("temperature", "0.5")])
def test_it_refuses_a_number_or_boolean_sent_as_a_string(openai_client, param, value):
    from openai import BadRequestError

    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=USER, extra_body={param: value})
    assert_error(caught.value.response, 400, param=param)


def test_it_refuses_a_tool_message_without_tool_call_id(openai_client):
    from openai import BadRequestError

    messages = [*USER, {"role": "tool", "content": "42"}]
    with pytest.raises(BadRequestError) as caught:
        openai_client.chat.completions.create(model=GIGA, messages=messages)
    error = assert_error(caught.value.response, 400)
    assert error["param"] in ("messages[1]", "messages[1].tool_call_id"), error
    assert "tool_call_id" in error["message"]


def test_it_refuses_stream_options_without_stream(http):
    assert_error(_post(http, chat_body(GIGA, stream_options={"include_usage": True})), 400)


def test_it_refuses_a_tool_choice_naming_an_absent_tool(http):
    tools = [{"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}}]
    body = chat_body(GIGA, tools=tools, tool_choice={"type": "function", "function": {"name": "b"}})
    assert_error(_post(http, body), 400, param="tool_choice")


def test_it_refuses_a_body_over_the_size_limit_with_413(http):
    huge = chat_body(GIGA, "x" * (4 * 1024 * 1024 + 10))
    assert_error(_post(http, huge), 413, code="request_too_large")


def test_it_refuses_a_chunked_body_over_the_size_limit_with_413(http):
    """Without a Content-Length the gateway counts the bytes as they come."""
    piece = b"x" * (256 * 1024)

    def body():
        yield b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "'
        for _ in range(17):  # 4.25 MiB
            yield piece
        yield b'"}]}'

    response = http.post("/v1/chat/completions", content=body(), headers={"content-type": "application/json"})
    assert_error(response, 413, code="request_too_large")


def test_it_accepts_a_body_just_under_the_size_limit(http):
    # Large, but within XROUTER_MAX_BODY_BYTES (4 MiB) and XROUTER_MAX_PROMPT_CHARS (a million
    # characters, here of four UTF-8 bytes each): the gateway takes it (the answer echoes it).
    text = "\U0001f600" * 1_000_000
    response = _post(http, chat_body(GIGA, text))
    assert response.status_code == 200, response.text[:300]


# --- keys and models -----------------------------------------------------------------------


def test_it_refuses_a_request_without_a_key(gateway):
    response = httpx.post(gateway.v1 + "/chat/completions", json=chat_body(GIGA))
    assert_error(response, 401, code="missing_api_key", type_="authentication_error")


def test_it_refuses_a_wrong_key(gateway):
    from openai import AuthenticationError, OpenAI

    client = OpenAI(base_url=gateway.v1, api_key="xr-wrongwrongwrongwrong", max_retries=0)
    with pytest.raises(AuthenticationError) as caught:
        client.chat.completions.create(model=GIGA, messages=USER)
    error = assert_error(caught.value.response, 401, code="invalid_api_key")
    assert "xr-wrongwrongwrongwrong" not in error["message"], "a presented key is never echoed whole"


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Bearer", "xr-no-scheme", "Bearer xr-a xr-b"])
def test_it_refuses_a_malformed_authorization_header(gateway, header):
    response = httpx.post(gateway.v1 + "/chat/completions", json=chat_body(GIGA), headers={"Authorization": header})
    assert_error(response, 401)


@pytest.mark.parametrize("path", ["/v1/models", "/v1/models/gpt-4o", "/v1/embeddings"])
def test_it_refuses_every_endpoint_without_a_key(gateway, path):
    if path == "/v1/embeddings":
        response = httpx.post(gateway.base_url + path, json={"model": "gigachat/Embeddings", "input": "x"})
    else:
        response = httpx.get(gateway.base_url + path)
    assert_error(response, 401)


def test_it_answers_404_for_an_unknown_model(openai_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        openai_client.chat.completions.create(model="gigachat/NoSuchModel", messages=USER)
    assert_error(caught.value.response, 404, param="model", code="model_not_found")


def test_it_answers_404_for_an_unknown_provider(openai_client):
    from openai import NotFoundError

    with pytest.raises(NotFoundError) as caught:
        openai_client.chat.completions.create(model="openai/gpt-5", messages=USER)
    assert_error(caught.value.response, 404, param="model")


def test_it_refuses_charlie_a_model_outside_his_allowed_list(charlie_client):
    from openai import PermissionDeniedError

    with pytest.raises(PermissionDeniedError) as caught:
        charlie_client.chat.completions.create(model=GIGA, messages=USER)
    assert_error(caught.value.response, 403, param="model", code="model_not_allowed", type_="permission_error")


def test_it_refuses_charlie_an_alias_of_a_model_he_may_not_use(charlie_client):
    from openai import PermissionDeniedError

    with pytest.raises(PermissionDeniedError) as caught:
        charlie_client.chat.completions.create(model="gpt-4o", messages=USER)
    assert_error(caught.value.response, 403, param="model")


def test_it_refuses_charlie_embeddings_outside_his_allowed_list(charlie_client):
    from openai import PermissionDeniedError

    with pytest.raises(PermissionDeniedError) as caught:
        charlie_client.embeddings.create(model="gigachat/Embeddings", input="x", encoding_format="float")
    assert_error(caught.value.response, 403, param="model")


def test_it_lets_charlie_use_the_models_his_key_allows(charlie_client):
    completion = charlie_client.chat.completions.create(model="tbank/t-tech/T-lite-it-2.1", messages=USER)
    assert completion.choices[0].message.content == "Echo: hi"


def test_it_refuses_a_residency_key_a_model_hosted_abroad(resident_client):
    from openai import PermissionDeniedError

    with pytest.raises(PermissionDeniedError) as caught:
        resident_client.chat.completions.create(model="mts/gpt-4o", messages=USER)
    error = assert_error(caught.value.response, 403, param="model", code="residency_violation")
    assert "RU" in error["message"]


def test_it_serves_a_residency_key_a_model_hosted_in_russia(resident_client):
    completion = resident_client.chat.completions.create(model="mts/mws-gpt-alpha", messages=USER)
    assert completion.choices[0].message.content == "Echo: hi"


# --- endpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/nope", "/v1/chat", "/v1/completions", "/v1/chat/completions/extra", "/v1"])
def test_it_answers_404_for_an_unknown_endpoint(http, path):
    assert_error(http.post(path, json={}), 404, code="unknown_url")


@pytest.mark.parametrize(("method", "path"), [("GET", "/v1/chat/completions"), ("DELETE", "/v1/chat/completions"),
                                              ("PUT", "/v1/embeddings"), ("POST", "/v1/models")])
def test_it_answers_405_for_a_wrong_method(http, method, path):
    response = http.request(method, path)
    assert_error(response, 405, code="method_not_allowed")
    assert response.headers["allow"]


# --- fuzz: odd bodies of every kind get a 4xx, never a 500 ----------------------------------

_M = {"role": "user", "content": "hi"}
ODD_CHAT_BODIES = [
    b"",
    b"null",
    b"true",
    b"123",
    b'"a string"',
    b"[]",
    b"{",
    b"\xff\xfe\x00{}",
    b'{"model": "\xff\xfe", "messages": []}',  # invalid UTF-8 inside a string
    b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "\\ud800"}]}',  # lone surrogate
    b'{"model": "\\udfff", "messages": [{"role": "user", "content": "hi"}]}',
    b"[" * 5000 + b"]" * 5000,
    b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1' + b"0" * 40 + b"}",
    b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "hi"}], "temperature": 1e999}',
    b'{"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "hi"}], "temperature": NaN}',
    {"model": 123, "messages": [_M]},
    {"model": None, "messages": [_M]},
    {"model": "", "messages": [_M]},
    {"model": "x" * 5000, "messages": [_M]},
    {"model": ["gigachat/GigaChat-2-Max"], "messages": [_M]},
    {"model": GIGA, "messages": None},
    {"model": GIGA, "messages": "hi"},
    {"model": GIGA, "messages": [None]},
    {"model": GIGA, "messages": [1, 2]},
    {"model": GIGA, "messages": [{"role": "user"}]},
    {"model": GIGA, "messages": [{"role": "user", "content": 5}]},
    {"model": GIGA, "messages": [{"role": "user", "content": [{"type": "audio", "data": "x"}]}]},
    {"model": GIGA, "messages": [{"role": "user", "content": [{"type": "text"}]}]},
    {"model": GIGA, "messages": [{"role": "user", "content": "hi", "extra": {"deep": [[[[{}]]]]}}]},
    {"model": GIGA, "messages": [{"role": None, "content": "hi"}]},
    {"model": GIGA, "messages": [{"role": "assistant"}]},
    {"model": GIGA, "messages": [{"role": "user", "content": "hi",
                                  "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}]},
    {"model": GIGA, "messages": [{"role": "user", "content": "hi", "": "empty key"}]},
    {"model": GIGA, "messages": [_M], "max_tokens": -1},
    {"model": GIGA, "messages": [_M], "max_tokens": 1.5},
    {"model": GIGA, "messages": [_M], "stream": "sometimes"},
    {"model": GIGA, "messages": [_M], "stream_options": "yes", "stream": True},
    {"model": GIGA, "messages": [_M], "stop": [1, 2]},
    {"model": GIGA, "messages": [_M], "stop": ["a", "b", "c", "d", "e"]},
    {"model": GIGA, "messages": [_M], "stop": [""]},
    {"model": GIGA, "messages": [_M], "tools": "all"},
    {"model": GIGA, "messages": [_M], "tools": [{"type": "function"}]},
    {"model": GIGA, "messages": [_M], "tools": [{"type": "function", "function": {"name": "has spaces"}}]},
    {"model": GIGA, "messages": [_M], "tool_choice": "sometimes"},
    {"model": GIGA, "messages": [_M], "functions": [{"name": "f"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
    {"model": GIGA, "messages": [_M], "response_format": {"type": "xml"}},
    {"model": GIGA, "messages": [_M], "response_format": {"type": "json_schema"}},
    {"model": GIGA, "messages": [_M], "metadata": {"a": {"b": [1, [2, [3]]]}}},
    {"model": GIGA, "messages": [_M], "logit_bias": {"50256": "never"}},
    {"model": GIGA, "messages": [_M], "top_p": 7},
    {"model": GIGA, "messages": [_M], "presence_penalty": -99},
    {"model": GIGA, "messages": [_M], "n": "many"},
    {"model": GIGA, "messages": [_M], "": 1},
    {"model": GIGA, "messages": [_M], "reasoning_effort": "maximal"},
]
ODD_EMBEDDING_BODIES = [
    b"",
    b"{}",
    b"[1]",
    {"model": "gigachat/Embeddings"},
    {"model": "gigachat/Embeddings", "input": None},
    {"model": "gigachat/Embeddings", "input": ""},
    {"model": "gigachat/Embeddings", "input": []},
    {"model": "gigachat/Embeddings", "input": [""]},
    {"model": "gigachat/Embeddings", "input": [1, 2, 3]},
    {"model": "gigachat/Embeddings", "input": {"text": "x"}},
    {"model": "gigachat/Embeddings", "input": ["x"] * 3000},
    {"model": "gigachat/Embeddings", "input": "x", "encoding_format": "hex"},
    {"model": "gigachat/Embeddings", "input": "x", "dimensions": 0},
    {"model": "gigachat/Embeddings", "input": "x", "dimensions": 64},
    {"model": 7, "input": "x"},
    {"model": "gigachat/Embeddings", "input": "x", "": 0},
]


def _ids(bodies):
    return [f"{i}:{(b if isinstance(b, bytes) else orjson.dumps(b))[:40]!r}" for i, b in enumerate(bodies)]


@pytest.mark.parametrize("body", ODD_CHAT_BODIES, ids=_ids(ODD_CHAT_BODIES))
def test_it_answers_odd_chat_bodies_with_a_4xx_never_a_500(http, body):
    response = _post(http, body)
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    assert_error(response, response.status_code)


@pytest.mark.parametrize("body", ODD_EMBEDDING_BODIES, ids=_ids(ODD_EMBEDDING_BODIES))
def test_it_answers_odd_embedding_bodies_with_a_4xx_never_a_500(http, body):
    response = _post(http, body, path="/v1/embeddings")
    assert 400 <= response.status_code < 500, f"{response.status_code}: {response.text[:300]}"
    assert_error(response, response.status_code)


@pytest.mark.parametrize("header", [b"Bearer \xff\xfe\xfd", b"Bearer xr-" + b"a" * 5000, b"Bearer xr-\xc3\xa9t\xc3\xa9"])
def test_it_answers_odd_authorization_headers_with_401(gateway, header):
    response = httpx.post(gateway.v1 + "/chat/completions", json=chat_body(GIGA), headers=[(b"authorization", header)])
    assert_error(response, 401)
