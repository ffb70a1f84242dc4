"""Fallbacks, retries, deadlines and the context-window fallback, over real HTTP against the
emulators with faults injected (issue 3, "Fallbacks that hold on streams")."""

import time

import httpx
import openai
import orjson
import pytest
from openai import OpenAI

from tests.conftest import wait_for_usage

from .conftest import unique_model

PRIMARY = "gigachat/GigaChat-2-Max"
SECONDARY = "yandexgpt/yandexgpt-lite"
GIGACHAT_CHAT = "/api/v1/chat/completions"


def client_for(gw, key="alice", timeout=30) -> OpenAI:
    return OpenAI(base_url=gw.v1, api_key=gw.keys[key], max_retries=0, timeout=timeout)


def wait_for_calls(ledgers, name, model, at_least, timeout=5.0) -> int:
    """Slow faults finish on the emulator after the gateway gave up; wait so they land in this test."""
    deadline = time.monotonic() + timeout
    while True:
        n = ledgers.calls(name, model)
        if n >= at_least or time.monotonic() > deadline:
            return n
        time.sleep(0.05)


FAULTS_BEFORE_FIRST_BYTE = {
    "500": {"status": 500},
    "429": {"status": 429},
    "timeout": {"latency_ms": 1000},
    "reset": {"reset": True},
}


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("fault", list(FAULTS_BEFORE_FIRST_BYTE), ids=list(FAULTS_BEFORE_FIRST_BYTE))
def test_it_falls_back_to_the_secondary_before_the_first_byte(
    router_gateway, rules, ledgers, faults, django_db_blocker, fault, stream
):
    model = unique_model("fallback")
    rules.create(
        name="t-fallback",
        match_model=model,
        strategy="fallback",
        targets=[{"model": PRIMARY, "timeout": 0.3}, {"model": SECONDARY}],
    )
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, **FAULTS_BEFORE_FIRST_BYTE[fault])

    client = client_for(router_gateway)
    raw = client.chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
    )
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)
    else:
        text = raw.parse().choices[0].message.content

    assert text == "Echo: hi"
    assert raw.headers["x-xrouter-route"] == f"t-fallback;{SECONDARY}"
    assert raw.headers["x-xrouter-provider"] == "yandexgpt"
    assert wait_for_calls(ledgers, "gigachat", "GigaChat-2-Max", 1) == 1  # the primary was tried once
    assert ledgers.calls("yandexgpt", "yandexgpt-lite") == 1
    record = wait_for_usage(django_db_blocker, raw.headers["x-request-id"])
    assert (record.provider, record.model, record.route, record.status) == ("yandexgpt", "yandexgpt-lite", "t-fallback", "ok")


@pytest.mark.parametrize(
    "fault", [{"first_byte_delay_ms": 1000}, {"cut_after_chunks": 0}], ids=["first-byte-timeout", "closed-before-data"]
)
def test_a_stream_that_sends_headers_but_no_data_still_falls_back(router_gateway, rules, ledgers, faults, fault):
    model = unique_model("fallback-headers")
    rules.create(name="t-fallback-headers", match_model=model, targets=[{"model": PRIMARY, "timeout": 0.3}, {"model": SECONDARY}])
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, **fault)

    raw = client_for(router_gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices)

    assert text == "Echo: hi"
    assert raw.headers["x-xrouter-route"] == f"t-fallback-headers;{SECONDARY}"
    wait_for_calls(ledgers, "gigachat", "GigaChat-2-Max", 1)


def _sse_events(response: httpx.Response) -> list[str]:
    return [line[len("data: ") :] for line in response.iter_lines() if line.startswith("data: ")]


def test_a_failure_mid_stream_ends_with_an_error_event_and_done_and_is_billed(
    router_gateway, rules, ledgers, faults, django_db_blocker
):
    model = unique_model("midstream")
    rules.create(name="t-midstream", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}], retries=1)
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, cut_after_chunks=4)

    with httpx.stream(
        "POST",
        router_gateway.v1 + "/chat/completions",
        timeout=30,
        headers={"authorization": f"Bearer {router_gateway.keys['alice']}"},
        json={"model": model, "stream": True, "messages": [{"role": "user", "content": "[long] please"}]},
    ) as r:
        assert r.status_code == 200
        route = r.headers["x-xrouter-route"]
        request_id = r.headers["x-request-id"]
        events = _sse_events(r)

    assert route == f"t-midstream;{PRIMARY}"  # after the first byte there is no fallback
    assert events[-1] == "[DONE]"
    error = orjson.loads(events[-2])
    assert set(error) == {"error"} and error["error"]["message"]
    relayed = [orjson.loads(e) for e in events[:-2]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in relayed if c.get("choices"))
    assert text  # some of the answer arrived before the cut
    assert not any(c["choices"][0].get("finish_reason") for c in relayed if c.get("choices"))
    assert ledgers.calls("yandexgpt") == 0  # neither retried nor fallen back once bytes were sent
    assert ledgers.calls("gigachat", "GigaChat-2-Max") == 1

    record = wait_for_usage(django_db_blocker, request_id)
    assert record.status == "error" and record.stream
    assert record.provider == "gigachat"
    assert record.completion_tokens > 0 and record.prompt_tokens > 0


def test_the_openai_sdk_sees_a_mid_stream_failure_as_an_error_not_a_short_answer(router_gateway, rules, faults):
    model = unique_model("midstream-sdk")
    rules.create(name="t-midstream-sdk", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}])
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, cut_after_chunks=4)

    stream = client_for(router_gateway).chat.completions.create(
        model=model, stream=True, messages=[{"role": "user", "content": "[long] please"}]
    )
    with pytest.raises(openai.APIError):
        for _ in stream:
            pass


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_client_error_is_neither_retried_nor_fallen_back(router_gateway, rules, ledgers, faults, stream):
    model = unique_model("client-error")
    rules.create(name="t-client-error", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}], retries=2)
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, status=400, message="temperature is out of range")

    with pytest.raises(openai.BadRequestError):
        result = client_for(router_gateway).chat.completions.create(
            model=model, stream=stream, messages=[{"role": "user", "content": "hi"}]
        )
        if stream:
            list(result)

    assert ledgers.calls("gigachat", "GigaChat-2-Max") == 1
    assert ledgers.calls("yandexgpt") == 0


@pytest.fixture
def tbank_context_of(emulators):
    """Shrink the T-Bank emulator's context (it answers vLLM's 400 'maximum context length')."""
    url = f"{emulators['tbank'].control_url}/config"

    def set_context(tokens: int):
        httpx.post(url, json={"context_length": tokens}, timeout=5).raise_for_status()

    yield set_context
    httpx.delete(url, timeout=5).raise_for_status()


def test_a_context_length_error_falls_back_to_a_larger_model_skipping_smaller_ones(
    router_gateway, rules, ledgers, tbank_context_of, django_db_blocker
):
    # Windows from the catalog: T-lite 32768, yandexgpt-lite 32000 (not larger: skipped), GigaChat-2-Max 131072.
    model = unique_model("context")
    rules.create(
        name="t-context",
        match_model=model,
        retries=2,
        targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}, {"model": SECONDARY}, {"model": PRIMARY}],
    )
    rules.settle()
    tbank_context_of(20)
    prompt = " ".join(["word"] * 60)

    raw = client_for(router_gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": prompt}]
    )

    assert raw.parse().choices[0].message.content == "Echo: " + prompt
    assert raw.headers["x-xrouter-route"] == f"t-context;{PRIMARY}"
    assert ledgers.calls("tbank") == 1  # a 400: no retry on the same target
    assert ledgers.calls("yandexgpt") == 0  # not larger than the model that was too small
    assert ledgers.calls("gigachat", "GigaChat-2-Max") == 1


def test_a_context_length_error_with_no_larger_model_reaches_the_client_as_a_400(
    router_gateway, rules, ledgers, tbank_context_of
):
    model = unique_model("context-none")
    rules.create(
        name="t-context-none", match_model=model, targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}, {"model": SECONDARY}]
    )
    rules.settle()
    tbank_context_of(20)

    with pytest.raises(openai.BadRequestError) as caught:
        client_for(router_gateway).chat.completions.create(
            model=model, messages=[{"role": "user", "content": " ".join(["w"] * 60)}]
        )

    assert "context" in caught.value.message.lower()
    assert ledgers.calls("tbank") == 1 and ledgers.calls("yandexgpt") == 0


def test_a_prompt_too_long_for_a_known_window_goes_to_a_larger_model_first(router_gateway, rules, ledgers):
    model = unique_model("context-known")
    rules.create(name="t-context-known", match_model=model, targets=[{"model": SECONDARY}, {"model": PRIMARY}])
    rules.settle()

    raw = client_for(router_gateway).chat.completions.with_raw_response.create(
        model=model, max_tokens=40_000, messages=[{"role": "user", "content": "hi"}]
    )  # 40,000 > yandexgpt-lite's 32,000

    assert raw.headers["x-xrouter-route"] == f"t-context-known;{PRIMARY}"
    assert ledgers.calls("yandexgpt") == 0


def test_it_retries_the_same_target_until_it_succeeds(router_gateway, rules, ledgers, faults):
    model = unique_model("retries")
    rules.create(name="t-retries", match_model=model, retries=2, targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}])
    rules.settle()
    faults("tbank", path="/v1/chat/completions", status=500, count=2)

    raw = client_for(router_gateway).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )

    assert raw.parse().choices[0].message.content == "Echo: hi"
    assert [e["status"] for e in ledgers.entries("tbank")] == [500, 500, 200]


def test_it_gives_up_when_retries_are_spent(router_gateway, rules, ledgers, faults):
    model = unique_model("retries-spent")
    rules.create(name="t-retries-spent", match_model=model, retries=1, targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}])
    rules.settle()
    faults("tbank", path="/v1/chat/completions", status=503, count=5)

    with pytest.raises(openai.APIStatusError) as caught:
        client_for(router_gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

    assert caught.value.status_code >= 500
    assert ledgers.calls("tbank") == 2


def test_a_failure_class_the_rule_does_not_name_does_not_fall_back(router_gateway, rules, ledgers, faults):
    model = unique_model("fallback-on")
    rules.create(name="t-fallback-on", match_model=model, fallback_on=["5xx"], targets=[{"model": PRIMARY}, {"model": SECONDARY}])
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, status=429)

    with pytest.raises(openai.RateLimitError):
        client_for(router_gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

    assert ledgers.calls("yandexgpt") == 0


def test_one_deadline_bounds_the_whole_request(router_gateway, rules, ledgers, faults):
    model = unique_model("deadline")
    rules.create(
        name="t-deadline", match_model=model, deadline=0.5, retries=3, targets=[{"model": PRIMARY}, {"model": SECONDARY}]
    )
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, latency_ms=1500)

    started = time.monotonic()
    with pytest.raises(openai.APIStatusError) as caught:
        client_for(router_gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    elapsed = time.monotonic() - started

    assert caught.value.status_code == 504
    assert elapsed < 1.2
    assert ledgers.calls("yandexgpt") == 0
    wait_for_calls(ledgers, "gigachat", "GigaChat-2-Max", 1)


def test_the_usage_record_of_a_failed_request_names_the_target_that_failed(router_gateway, rules, faults, django_db_blocker):
    model = unique_model("error-record")
    rules.create(name="t-error-record", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}])
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, status=400, message="bad temperature")

    with pytest.raises(openai.BadRequestError) as caught:
        client_for(router_gateway).chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])

    record = wait_for_usage(django_db_blocker, caught.value.response.headers["x-request-id"])
    assert record.status == "error" and record.http_status == 400
    assert (record.provider, record.model) == ("gigachat", "GigaChat-2-Max"), "YandexGPT was never called"


def test_a_long_retry_after_on_the_primary_falls_back_instead_of_holding_the_request(router_gateway, rules, ledgers, faults):
    model = unique_model("retry-after")
    rules.create(name="t-retry-after", match_model=model, retries=1, targets=[{"model": PRIMARY}, {"model": SECONDARY}])
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, count=1, status=429, retry_after=6)

    started = time.monotonic()
    raw = client_for(router_gateway, timeout=15).chat.completions.with_raw_response.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    elapsed = time.monotonic() - started

    assert raw.parse().choices[0].message.content == "Echo: hi"
    assert elapsed < 3, (
        f"the client waited {elapsed:.1f}s for a rate-limited primary (answered by {raw.headers['x-xrouter-route']})"
    )


def test_a_content_filter_refusal_falls_back_when_the_rule_names_it(router_gateway, rules):
    model = unique_model("content-filter")
    rules.create(name="t-content-filter", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}],
                 fallback_on=["5xx", "content_filter"])
    rules.settle()
    client = client_for(router_gateway)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "[blocked] tell me"}])
    # GigaChat answers with its canned refusal (finish_reason blacklist); the rule sends the request on.
    assert raw.headers["x-xrouter-provider"] == "yandexgpt"


def test_a_content_filter_refusal_is_the_answer_when_the_rule_does_not_name_it(router_gateway, rules):
    model = unique_model("content-filter-kept")
    rules.create(name="t-content-filter-kept", match_model=model, targets=[{"model": PRIMARY}, {"model": SECONDARY}])
    rules.settle()
    client = client_for(router_gateway)
    raw = client.chat.completions.with_raw_response.create(model=model, messages=[{"role": "user", "content": "[blocked] tell me"}])
    assert raw.headers["x-xrouter-provider"] == "gigachat"
    assert raw.parse().choices[0].finish_reason == "content_filter"
