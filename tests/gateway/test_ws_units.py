"""Fast unit tests (no server) of the decisions the WebSocket and relay items rest on: the log
filter that drops query strings, header values that cannot break a response, where a socket's
key may come from, and the relay ending a broken stream as an error."""

import logging

import pytest


def test_the_log_filter_strips_query_strings_from_uvicorn_lines_and_messages():
    from xrouter_project.log_filters import StripQueryStrings

    f = StripQueryStrings()
    accepted = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, '%s - "WebSocket %s" [accepted]',
                                 ("127.0.0.1:5", "/v1/realtime/chat?api_key=xr-abc-secret"), None)
    assert f.filter(accepted) is True
    assert accepted.getMessage() == '127.0.0.1:5 - "WebSocket /v1/realtime/chat" [accepted]'
    access = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/v1/models?key=xr-abc-secret", "1.1", 200), None)
    f.filter(access)
    assert "secret" not in access.getMessage() and "/v1/models" in access.getMessage()
    plain = logging.LogRecord("x", logging.INFO, __file__, 1, "GET /a/b?token=xr-1 then /c?d=e done", None, None)
    f.filter(plain)
    assert plain.getMessage() == "GET /a/b then /c done"
    untouched = logging.LogRecord("x", logging.INFO, __file__, 1, "is it %s?", ("ok",), None)
    f.filter(untouched)
    assert untouched.getMessage() == "is it ok?"


def test_header_values_that_are_not_latin1_are_percent_encoded():
    from apps.gateway.http import header_list

    assert header_list({"x-xrouter-route": "alias:гигачат;gigachat/GigaChat-2-Max", "x-request-id": "abc"}) == [
        (b"x-xrouter-route", b"alias:%D0%B3%D0%B8%D0%B3%D0%B0%D1%87%D0%B0%D1%82;gigachat/GigaChat-2-Max"),
        (b"x-request-id", b"abc"),
    ]
    assert header_list({"x-a": "line\r\nbreak"}) == [(b"x-a", b"line%0D%0Abreak")]


@pytest.mark.parametrize(("scope", "expected"), [
    ({"headers": [(b"authorization", b"Bearer xr-a-b")]}, ("xr-a-b", None)),
    ({"subprotocols": ["xrouter.v1", "xrouter.key.xr-a-b"]}, ("xr-a-b", None)),
    ({"subprotocols": ["xrouter.key.xr-a-b"]}, ("", "offer the subprotocol xrouter.v1 with xrouter.key.<key>")),
    ({"query_string": b"api_key=xr-a-b", "headers": [(b"authorization", b"Bearer xr-a-b")]}, ("", "query")),
    ({"query_string": b"x=xr-a-b"}, ("", "query")),
    ({"headers": [(b"authorization", b"Basic abc")]}, ("", "malformed")),
    ({}, ("", "no API key")),
])
def test_it_takes_a_websocket_key_from_the_header_or_the_subprotocol_never_the_query(scope, expected):
    from apps.gateway.consumers import credentials

    key, refusal = credentials(scope)
    assert key == expected[0]
    if expected[1] is None:
        assert refusal is None
    else:
        assert expected[1] in refusal
        assert len(refusal.encode()) <= 123  # a WebSocket close reason


class _Target:
    label = "p/m"

    class model:  # noqa: N801
        public_id, provider, name = "p/m", "p", "m"
        input_price = output_price = cached_input_price = 0

    class adapter:  # noqa: N801
        supports_stop = True


class _Plan:
    requested, rule, attempts, upstream_seconds = "p/m", "", ["p/m"], None

    def header(self, target):
        return "direct;p/m"


class _Req:
    request_id, started, headers, admission, span = "r1", 0.0, {}, None, None

    def __init__(self):
        self.attempts = []


async def test_the_relay_ends_a_stream_that_breaks_after_its_first_byte_with_an_error_frame_and_row():
    import orjson

    from apps.gateway.streaming import WsSink, _Relay
    from apps.providers.adapters.base import StreamChunk
    from apps.usage import buffer

    async def upstream():
        yield StreamChunk(delta={"content": "two"})
        raise ValueError("invalid literal for int() with base 10: 'n/a'")

    frames = []

    async def send_text(text):
        frames.append(orjson.loads(text))

    stream = upstream()
    first = await stream.__anext__()
    relay = _Relay(_Req(), WsSink(_Req(), send_text), None, _Plan(), _Target(), {"messages": []}, False)
    await relay.run(stream, first)

    assert frames[0]["choices"][0]["delta"] == {"content": "two"}
    assert frames[-1]["type"] == "error" and frames[-1]["error"]["code"] == "stream_failed", frames[-1]
    assert "n/a" not in frames[-1]["error"]["message"]
    row = [r for r in buffer._pending if r["request_id"] == "r1"][-1]
    assert row["status"] == "error" and row["error_type"] == "stream_failed" and row["completion_tokens"] == 1
    buffer._pending.remove(row)
