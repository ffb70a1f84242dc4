"""Streams that go wrong: an upstream cut mid-stream and a revised YandexGPT text end with an explicit
error event and `data: [DONE]` (never a silent truncation); a client that goes away cancels the
upstream call and still leaves a usage record."""

import json
import time

import httpx
import pytest

from apps.emulators.behaviour import LONG_ANSWER
from tests.conftest import wait_for_usage

from .support import CHAT_IDS, CHAT_MODELS, LONG_PROMPT, assert_no_secrets, chat_body


def _stream(gateway, body, timeout=30):
    return httpx.stream("POST", gateway.v1 + "/chat/completions", json=body, timeout=timeout,
                        headers={"Authorization": f"Bearer {gateway.keys['alice']}"})


def _read_events(gateway, body) -> tuple[httpx.Response, list[str]]:
    with _stream(gateway, body) as response:
        assert response.status_code == 200, response.read()
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    return response, events


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_ends_a_stream_cut_upstream_with_an_error_event_then_done(
    gateway, emulator_control, django_db_blocker, provider, model
):
    emulator_control(provider, cut_after_chunks=4)
    response, events = _read_events(gateway, chat_body(model, LONG_PROMPT, stream=True))

    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])
    assert list(error) == ["error"], error
    assert set(error["error"]) == {"message", "type", "param", "code"}
    assert error["error"]["message"]
    assert_no_secrets(events[-2])
    chunks = [json.loads(e) for e in events[:-2]]
    assert chunks, "what came before the cut was relayed"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
    assert LONG_ANSWER.startswith(text) and len(text) < len(LONG_ANSWER)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks), "a cut stream never claims to have finished"

    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert record.status == "error" and record.stream
    assert record.completion_tokens > 0, "what was produced before the cut is still accounted"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_makes_the_sdk_raise_when_the_stream_is_cut(openai_client, emulator_control, provider, model):
    from openai import APIError

    emulator_control(provider, cut_after_chunks=4)
    stream = openai_client.chat.completions.create(model=model, messages=[{"role": "user", "content": LONG_PROMPT}],
                                                   stream=True)
    received = []
    with pytest.raises(APIError):
        for chunk in stream:
            received.append(chunk)
    assert received, "the deltas before the cut arrived first"


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_ends_a_stream_with_a_malformed_chunk_with_an_error_event(gateway, emulator_control, provider, model):
    emulator_control(provider, malformed_chunk_at=3)
    _, events = _read_events(gateway, chat_body(model, LONG_PROMPT, stream=True))
    assert events[-1] == "[DONE]"
    assert "error" in json.loads(events[-2])


def test_it_ends_a_revised_yandexgpt_stream_with_an_error_event(gateway, emulator_control, django_db_blocker):
    emulator_control("yandexgpt", revise_at_chunk=3)
    response, events = _read_events(gateway, chat_body("yandexgpt/yandexgpt-lite", LONG_PROMPT, stream=True))

    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "stream_revised"
    text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-2])
    assert text and LONG_ANSWER.startswith(text), "no garbled (revised) text reached the client"
    assert "(revised)" not in text
    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert record.status == "error" and record.error_type == "stream_revised"


def test_it_counts_revised_yandexgpt_streams(gateway, emulator_control):
    def revisions() -> float:
        metrics = httpx.get(gateway.base_url + "/metrics", timeout=10).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
                   if line.startswith("xrouter_stream_revisions") and 'provider="yandexgpt"' in line and "_created" not in line)

    before = revisions()
    emulator_control("yandexgpt", revise_at_chunk=2)
    _read_events(gateway, chat_body("yandexgpt/yandexgpt-lite", LONG_PROMPT, stream=True))
    assert revisions() == before + 1


def _ledger(emulators, name):
    return httpx.get(emulators[name].control_url + "/ledger", timeout=5).json()["entries"]


@pytest.mark.parametrize(("provider", "model"), CHAT_MODELS, ids=CHAT_IDS)
def test_it_cancels_upstream_and_records_estimated_usage_when_the_client_disconnects(
    gateway, emulators, emulator_control, django_db_blocker, provider, model
):
    emulator_control(provider, chunk_delay_ms=200)  # 40 chunks: 8 s if nobody stops it
    started = time.time()
    with _stream(gateway, chat_body(model, LONG_PROMPT, stream=True)) as response:
        request_id = response.headers["x-request-id"]
        lines = response.iter_lines()
        received = 0
        for line in lines:
            if line.startswith("data: "):
                received += 1
                if received == 3:
                    break
    # Leaving the block closed the connection mid-stream.

    record = wait_for_usage(django_db_blocker, request_id)
    assert record.status == "client_disconnected"
    assert record.estimated, "the provider sent no usage before the end: the counts are estimated"
    assert record.prompt_tokens > 0 and record.completion_tokens > 0
    assert record.completion_tokens < 120, "only what was produced before the disconnect"
    assert record.cost > 0

    deadline = time.monotonic() + 4
    cancelled = []
    while time.monotonic() < deadline and not cancelled:
        cancelled = [e for e in _ledger(emulators, provider) if e["ts"] >= started and e.get("stream")
                     and e["note"] == "client_disconnected"]
        time.sleep(0.1)
    assert cancelled, "the gateway closed the upstream stream instead of reading it to the end"
    assert time.time() - started < 6, "the upstream stream was not left to run its 8 s"
