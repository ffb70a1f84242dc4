"""Generated /v1 requests against the running gateway: bodies built from the request schema's
shapes plus junk (wrong types, huge and nested values, odd unicode, invalid UTF-8), random
headers, paths and methods. No answer is a 500 and each comes within 5 s (issue 8, "Done means":
at least 2,000 requests; 1,200 + 500 + 300 here)."""

import json
import re
import time
from collections import Counter
from urllib.parse import quote

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .support import CHAT_MODELS, EMBEDDING_MODELS

MODELS = [m for _, m in CHAT_MODELS] + ["gpt-4o", "gpt-4o-mini"]
EMBEDDERS = [m for _, m in EMBEDDING_MODELS] + ["text-embedding-3-small"]

odd_text = (st.text(st.characters(codec="utf-8"), max_size=30)
            | st.sampled_from(["", " ", "[long]", "[blocked]", "гигачат", "😀", "\u202e", "\x00", "a" * 300, "<think>x</think>"]))
numbers = st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0, 1, 2, 16, 17, -1])
scalars = st.none() | st.booleans() | numbers | odd_text
junk = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4), max_leaves=10)
deep = st.integers(10, 3000).map(lambda d: f"__DEEP_{d}__")  # becomes d nested arrays in encode()


def maybe(valid):
    """Mostly a valid value, sometimes junk (a wrong type, a huge or nested value)."""
    return st.one_of(valid, valid, valid, junk, deep)


def chat_bodies(maybe):
    """Chat bodies in the request schema's shape; `maybe` decides how often a value is junk."""
    fn_name = maybe(st.sampled_from(["get_weather", "f", "x" * 64]))
    # Mostly JSON objects; a list, non-JSON and deeply nested arguments are refused by some providers.
    arguments = maybe(st.sampled_from(['{"city": "Moscow"}', "{}", "{}", "{}", "{}", "[1]", "not json", "[" * 2000 + "]" * 2000]))
    tool_call = st.fixed_dictionaries({"id": maybe(st.just("call_0_get_weather")), "type": maybe(st.just("function")),
                                       "function": maybe(st.fixed_dictionaries({"name": maybe(fn_name), "arguments": maybe(arguments)}))})
    part = st.one_of(
        st.fixed_dictionaries({"type": st.just("text"), "text": maybe(odd_text)}),
        st.fixed_dictionaries({"type": st.just("image_url"), "image_url": maybe(st.fixed_dictionaries({"url": odd_text}))}),
        maybe(st.nothing()),
    )
    text_message = st.fixed_dictionaries({"role": maybe(st.sampled_from(["system", "developer", "user", "assistant"])),
                                          "content": maybe(odd_text.filter(bool) | st.lists(part, min_size=1, max_size=3))})
    tool_turn = st.tuples(
        st.fixed_dictionaries({"role": st.just("assistant"), "content": st.none(), "tool_calls": maybe(st.lists(tool_call, min_size=1, max_size=2))}),
        st.fixed_dictionaries({"role": maybe(st.just("tool")), "tool_call_id": maybe(st.just("call_0_get_weather")), "content": maybe(odd_text)}),
    ).map(list)
    messages = st.lists(text_message.map(lambda m: [m]) | tool_turn, min_size=1, max_size=3).map(lambda ms: [m for t in ms for m in t])
    tool = st.fixed_dictionaries({"type": maybe(st.just("function")), "function": maybe(st.fixed_dictionaries(
        {"name": maybe(fn_name)}, optional={"description": odd_text, "parameters": maybe(st.just({"type": "object"}))}))})
    return st.fixed_dictionaries(
        {"model": maybe(st.sampled_from(MODELS)), "messages": maybe(messages)},
        optional={
            "stream": maybe(st.booleans()),
            "n": maybe(st.integers(1, 3)),
            "stop": maybe(st.text(min_size=1, max_size=8) | st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=4)),
            "temperature": maybe(st.floats(0, 2)),
            "top_p": maybe(st.floats(0, 1)),
            "max_tokens": maybe(st.integers(1, 100)),
            "presence_penalty": maybe(st.floats(-2, 2)),
            "tools": maybe(st.lists(tool, max_size=2)),
            "tool_choice": maybe(st.sampled_from(["none", "auto", "required"]) | st.just({"type": "function", "function": {"name": "f"}})),
            "response_format": maybe(st.sampled_from([{"type": "text"}, {"type": "json_object"},
                                                      {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}}])),
            "stream_options": maybe(st.just({"include_usage": True})),
            "reasoning_effort": maybe(st.sampled_from(["minimal", "low", "medium", "high"])),
            "thinking": maybe(st.booleans()),
            "metadata": maybe(st.dictionaries(odd_text, odd_text, max_size=3)),
            "user": maybe(odd_text),
            "seed": maybe(st.integers(0, 2**31)),
        },
    )


# Two thirds of the bodies are valid and reach a provider; the rest carry junk anywhere.
chat_body = st.one_of(chat_bodies(lambda valid: valid), chat_bodies(lambda valid: valid), chat_bodies(maybe))
embeddings_body = st.fixed_dictionaries(
    {"model": maybe(st.sampled_from(EMBEDDERS) | odd_text), "input": maybe(odd_text | st.lists(odd_text, max_size=4))},
    optional={"encoding_format": maybe(st.sampled_from(["float", "base64"])), "dimensions": maybe(st.integers(1, 2048)),
              "user": maybe(odd_text)},
)
header_value = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c >= 0x20 and c != 0x7F).strip(b" "))
headers = st.fixed_dictionaries({}, optional={
    "content-type": st.sampled_from([b"application/json", b"text/plain", b"application/json; charset=latin-1"]) | header_value,
    "x-xrouter-tags": header_value,
    "x-request-id": header_value,
    "accept": header_value,
    "x-xrouter-cache": st.sampled_from([b"bypass", b"no-store"]) | header_value,
})
auth = st.sampled_from(["alice"] * 6 + ["charlie", "resident", None, "junk"])


def encode(body) -> bytes:
    try:
        raw = orjson.dumps(body, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:  # a number past 64 bits: json writes it as JSON allows
        raw = json.dumps(body).encode()
    return re.sub(rb'"__DEEP_(\d+)__"', lambda m: b"[" * int(m[1]) + b"]" * int(m[1]), raw)


STATUSES: Counter = Counter()
RUN = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), database=None)


@pytest.fixture(scope="module")
def client(gateway):
    with httpx.Client(base_url=gateway.base_url, timeout=10) as c:
        yield c


def _send(client, gateway, method: str, path: str, content: bytes, extra: dict, who):
    sent = {k: v for k, v in extra.items()}
    if who == "junk":
        sent["authorization"] = b"Bearer xr-junkjunk-" + b"x" * 20
    elif who is not None:
        sent["authorization"] = f"Bearer {gateway.keys[who]}".encode()
    started = time.monotonic()
    with client.stream(method, path, content=content, headers=sent) as response:
        body = response.read()
    elapsed = time.monotonic() - started
    STATUSES[response.status_code] += 1
    assert response.status_code != 500, body[:500]
    assert b"Internal error" not in body, body[:500]
    assert elapsed < 5, f"{method} {path} took {elapsed:.1f}s"
    return response


@settings(RUN, max_examples=1200)
@given(body=chat_body, extra=headers, who=auth)
def test_generated_chat_requests_never_get_a_500(client, gateway, body, extra, who):
    _send(client, gateway, "POST", "/v1/chat/completions", encode(body), extra, who)


raw = st.one_of(
    st.binary(max_size=200),
    st.sampled_from([b"", b"{", b"null", b"[]", b'"x"', b"1e400", b"NaN", b'{"model": "gpt-4o", "messages": [}',
                     b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\xff\xfe"}]}',
                     b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "\\ud800"}]}',
                     b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 1e400}',
                     b'{"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "n": 99999999999999999999999}']),
    st.integers(1, 200_000).map(lambda d: b'{"model": "gpt-4o", "messages": ' + b"[" * d + b"]" * d + b"}"),
)
paths = st.sampled_from(["/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/models", "/v1/models/gpt-4o",
                         "/v1/", "/v1/chat/completions/", "/v1/completions"]) | odd_text.map(lambda t: "/v1/models/" + quote(t, safe=""))


@settings(RUN, max_examples=500)
@given(method=st.sampled_from(["POST", "POST", "GET", "PUT", "DELETE", "PATCH"]), path=paths, content=raw, extra=headers, who=auth)
def test_generated_raw_bodies_paths_and_methods_never_get_a_500(client, gateway, method, path, content, extra, who):
    _send(client, gateway, method, path, content, extra, who)


@settings(RUN, max_examples=300)
@given(body=embeddings_body, extra=headers, who=auth)
def test_generated_embeddings_requests_never_get_a_500(client, gateway, body, extra, who):
    _send(client, gateway, "POST", "/v1/embeddings", encode(body), extra, who)


def test_the_gateway_survived_the_generated_requests(client):
    assert client.get("/healthz").status_code == 200
    if sum(STATUSES.values()) >= 2000:  # the whole module ran: the generated requests reached the providers too
        assert STATUSES[200] >= 200, STATUSES
