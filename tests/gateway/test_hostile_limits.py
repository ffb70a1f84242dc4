"""Unit tests (no server) for the request limits a hostile body meets: message count and prompt size
(issue 8 item 6), stop length and the stop cutter's window (item 7), deeply nested JSON (item 17)."""

import orjson
import pytest
from django.test import override_settings

from apps.common.errors import ApiError
from apps.gateway.capabilities import StopCutter
from apps.gateway.schemas import parse_chat
from apps.providers.adapters.gigachat import build_messages


@pytest.fixture(scope="session")
def _gateway_leaves_no_process_behind():
    """These are unit tests: no gateway process (the directory's autouse fixture would start one)."""


def chat(**fields) -> bytes:
    return orjson.dumps({"model": "gigachat/GigaChat-2-Max", "messages": [{"role": "user", "content": "hi"}], **fields})


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_chat(raw)
    assert caught.value.status == 400
    return caught.value


# --- item 6: message count and prompt size -----------------------------------------------------
def test_it_refuses_more_messages_than_the_cap_naming_it():
    messages = [{"role": "user", "content": "x"}] * 2049
    error = refused(chat(messages=messages))
    assert error.param == "messages"
    assert "2048" in error.message


def test_it_refuses_a_prompt_longer_than_the_cap_naming_it():
    messages = [{"role": "system", "content": "s" * 600_000}, {"role": "user", "content": [{"type": "text", "text": "u" * 400_001}]}]
    error = refused(chat(messages=messages))
    assert error.param == "messages"
    assert "1000000" in error.message


def test_the_caps_come_from_settings():
    from django.conf import settings

    with override_settings(XROUTER={**settings.XROUTER, "MAX_MESSAGES": 3, "MAX_PROMPT_CHARS": 10}):
        assert refused(chat(messages=[{"role": "user", "content": "x"}] * 4)).param == "messages"
        assert refused(chat(messages=[{"role": "user", "content": "x" * 11}])).param == "messages"
        assert len(parse_chat(chat(messages=[{"role": "user", "content": "x" * 5}] * 2))["messages"]) == 2


def test_a_body_at_the_caps_is_accepted():
    messages = [{"role": "user", "content": "x" * 488}] * 2048
    assert len(parse_chat(chat(messages=messages))["messages"]) == 2048


def test_gigachat_merges_many_same_role_messages_into_one():
    messages = [{"role": "user", "content": f"m{i}"} for i in range(5000)]
    out = build_messages(messages)
    assert out == [{"role": "user", "content": "\n\n".join(f"m{i}" for i in range(5000))}]


def test_gigachat_merging_keeps_roles_and_an_empty_first_text():
    messages = [
        {"role": "system", "content": "a"}, {"role": "developer", "content": "b"}, {"role": "user", "content": ""},
        {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}, {"role": "assistant", "content": "e"},
        {"role": "user", "content": "f"},
    ]
    assert build_messages(messages) == [
        {"role": "system", "content": "a\n\nb"}, {"role": "user", "content": "c"},
        {"role": "assistant", "content": "d\n\ne"}, {"role": "user", "content": "f"},
    ]


# --- item 7: stop strings -----------------------------------------------------------------------
@pytest.mark.parametrize("stop", ["x" * 257, ["ok", "y" * 1000]])
def test_it_refuses_a_stop_string_longer_than_256_characters(stop):
    error = refused(chat(stop=stop))
    assert error.param == "stop"
    assert "256" in error.message


def test_a_stop_string_of_256_characters_is_accepted():
    assert parse_chat(chat(stop="x" * 256))["stop"] == ["x" * 256]


# --- item 17: nesting ---------------------------------------------------------------------------
@pytest.mark.parametrize("depth", [100, 300, 2000, 100_000])
def test_deeply_nested_json_is_a_400(depth):
    nested = "[" * depth + "]" * depth
    for raw in (nested.encode(), b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": ' + nested.encode() + b"}",
                b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": ' + nested.encode() + b"}}"):
        refused(raw)


def _cut(stops, pieces):
    cutter = StopCutter(stops)
    out = []
    for piece in pieces:
        out.append(cutter.feed(piece))
        assert len(cutter.pending) < max(map(len, stops))
        if cutter.stopped:
            return "".join(out), True
    return "".join(out) + cutter.flush(), False


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_the_stop_cutter_finds_a_stop_split_anywhere(size):
    text = "abc END and more" * 3
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    assert _cut(["END", "never"], pieces) == ("abc ", True)
    assert _cut(["nope"], pieces) == (text, False)
    assert _cut(["ababc", "x" * 256], ["abab", "ab", "abc"]) == ("abab", True)


def test_the_stop_cutter_holds_back_only_what_may_begin_a_stop():
    cutter = StopCutter(["STOP" + "x" * 250])
    assert cutter.feed("hello world") == "hello world"
    assert cutter.feed("and ST") == "and "
    assert cutter.pending == "ST"
    assert cutter.feed("ay") == "STay"
