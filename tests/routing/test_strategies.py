"""Load-balancing strategies over a running gateway: weighted, round robin, cheapest, latency,
least busy (issue 3, "Rules")."""

import asyncio
import threading
import time
from collections import Counter

import httpx
import pytest
from openai import OpenAI

from .conftest import unique_model

GIGACHAT = "gigachat/GigaChat-2"
TBANK = "tbank/t-tech/T-lite-it-2.1"


def ask(gw, model, content="hi", key="alice") -> httpx.Response:
    r = httpx.post(
        gw.v1 + "/chat/completions",
        headers={"authorization": f"Bearer {gw.keys[key]}"},
        timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": content}]},
    )
    assert r.status_code == 200, r.text
    return r


async def _fire(gw, model, total, concurrency) -> Counter:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"authorization": f"Bearer {gw.keys['alice']}"}
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    providers: Counter = Counter()
    queue = iter(range(total))

    async with httpx.AsyncClient(base_url=gw.v1, limits=limits, timeout=30, headers=headers) as client:

        async def worker():
            for _ in queue:
                r = await client.post("/chat/completions", json=body)
                assert r.status_code == 200, r.text
                providers[r.headers["x-xrouter-provider"]] += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return providers


def test_a_weighted_rule_splits_traffic_by_its_weights(router_gateway, rules, ledgers):
    model = unique_model("weighted")
    rules.create(
        name="t-weighted",
        match_model=model,
        strategy="weighted",
        targets=[{"model": GIGACHAT, "weight": 3}, {"model": TBANK, "weight": 1}],
    )
    rules.settle()
    ask(router_gateway, model)  # the catalog is loaded before the burst

    providers = asyncio.run(_fire(router_gateway, model, total=1000, concurrency=20))

    assert sum(providers.values()) == 1000
    assert set(providers) <= {"gigachat", "tbank"}
    assert 0.70 <= providers["gigachat"] / 1000 <= 0.80, providers


def test_a_round_robin_rule_alternates_its_targets(router_gateway, rules):
    model = unique_model("round-robin")
    rules.create(name="t-round-robin", match_model=model, strategy="round_robin", targets=[{"model": GIGACHAT}, {"model": TBANK}])
    rules.settle()

    seen = [ask(router_gateway, model).headers["x-xrouter-provider"] for _ in range(6)]

    assert seen in (["gigachat", "tbank"] * 3, ["tbank", "gigachat"] * 3), seen


def test_a_cheapest_rule_picks_the_cheapest_target_and_falls_back_to_the_next_cheapest(router_gateway, rules, faults):
    # Prices per 1,000 tokens, in + out: GigaChat-2-Max 3.90, yandexgpt 2.40, T-lite 0.20.
    model = unique_model("cheapest")
    rules.create(
        name="t-cheapest",
        match_model=model,
        strategy="cheapest",
        targets=[{"model": "gigachat/GigaChat-2-Max"}, {"model": "yandexgpt/yandexgpt"}, {"model": TBANK}],
    )
    rules.settle()

    assert {ask(router_gateway, model).headers["x-xrouter-route"] for _ in range(4)} == {f"t-cheapest;{TBANK}"}

    faults("tbank", path="/v1/chat/completions", status=500, count=1)
    assert ask(router_gateway, model).headers["x-xrouter-route"] == "t-cheapest;yandexgpt/yandexgpt"


def test_a_latency_rule_measures_every_target_and_prefers_the_fastest(spawn, rules, faults):
    model = unique_model("latency")
    rules.create(
        name="t-latency", match_model=model, strategy="latency", targets=[{"model": GIGACHAT}, {"model": "mts/mws-gpt-alpha"}]
    )
    gw = spawn()  # latency averages are per process: start with none measured
    faults("gigachat", path="/api/v1/chat/completions", share=1.0, latency_ms=300)

    seen = [ask(gw, model).headers["x-xrouter-provider"] for _ in range(6)]

    # The first request may go to either; the unmeasured target must be tried right after, and
    # the slow one (300 ms against a few ms) must lose from then on.
    assert "mts" in seen[:2], seen
    assert seen[2:] == ["mts"] * 4, seen


def test_a_least_busy_rule_sends_to_the_target_with_fewer_requests_in_flight(router_gateway, rules, faults):
    model = unique_model("least-busy")
    rules.create(
        name="t-least-busy",
        match_model=model,
        strategy="least_busy",
        targets=[{"model": "yandexgpt/yandexgpt"}, {"model": "mts/mws-gpt-alpha"}],
    )
    rules.settle()
    faults("yandexgpt", share=1.0, latency_ms=1500)
    faults("mts", path="/v1/chat/completions", share=1.0, latency_ms=1500)

    results: dict[int, str] = {}

    def call(i):
        results[i] = ask(router_gateway, model, content=f"slow {i}").headers["x-xrouter-provider"]

    first = threading.Thread(target=call, args=(0,))
    first.start()
    time.sleep(0.5)  # request 0 is in flight on one target
    second = threading.Thread(target=call, args=(1,))
    second.start()
    first.join()
    second.join()

    assert sorted(results.values()) == ["mts", "yandexgpt"], results


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_a_weighted_rule_with_one_weight_zero_never_uses_that_target_first(router_gateway, rules, stream):
    model = unique_model("weight-zero")
    rules.create(
        name="t-weight-zero",
        match_model=model,
        strategy="weighted",
        targets=[{"model": GIGACHAT, "weight": 0}, {"model": TBANK, "weight": 1}],
    )
    rules.settle()
    client = OpenAI(base_url=router_gateway.v1, api_key=router_gateway.keys["alice"], max_retries=0)

    for _ in range(5):
        raw = client.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": "hi"}], stream=stream
        )
        assert raw.headers["x-xrouter-provider"] == "tbank"
        if stream:
            list(raw.parse())


def test_a_least_busy_rule_counts_a_stream_in_progress_as_busy(router_gateway, rules, faults):
    model = unique_model("least-busy-stream")
    rules.create(
        name="t-least-busy-stream",
        match_model=model,
        strategy="least_busy",
        targets=[{"model": "yandexgpt/yandexgpt"}, {"model": "mts/mws-gpt-alpha"}],
    )
    rules.settle()
    faults("yandexgpt", count=1, chunk_delay_ms=50)  # about two seconds of streaming
    faults("mts", path="/v1/chat/completions", count=1, chunk_delay_ms=50)
    headers = {"authorization": f"Bearer {router_gateway.keys['alice']}"}
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "[long] stream"}]}

    with httpx.stream("POST", router_gateway.v1 + "/chat/completions", json=body, headers=headers, timeout=30) as first:
        lines = first.iter_lines()
        next(line for line in lines if line.startswith("data: "))  # the stream is under way
        busy = first.headers["x-xrouter-provider"]
        second = httpx.post(
            router_gateway.v1 + "/chat/completions",
            headers=headers,
            timeout=30,
            json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
        )
        for _ in lines:
            pass

    assert second.headers["x-xrouter-provider"] != busy, f"both went to {busy} while its stream was in flight"
