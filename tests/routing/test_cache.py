"""The response cache through a running gateway: hit and miss, streamed replay, no-cache,
tenant scope, rule TTL, and a cache hit billed at zero (issue 3, "Response cache")."""

import uuid
from decimal import Decimal

import httpx
import orjson
import pytest

from tests.conftest import wait_for_usage

from .conftest import unique_model

TBANK = "tbank/t-tech/T-lite-it-2.1"


def chat(gw, body, key="alice", **headers) -> httpx.Response:
    r = httpx.post(
        gw.v1 + "/chat/completions", json=body, timeout=30, headers={"authorization": f"Bearer {gw.keys[key]}", **headers}
    )
    assert r.status_code == 200, r.text
    return r


def stream_text(gw, body, key="alice") -> tuple[httpx.Headers, str, list[dict]]:
    with httpx.stream(
        "POST",
        gw.v1 + "/chat/completions",
        json={**body, "stream": True},
        timeout=30,
        headers={"authorization": f"Bearer {gw.keys[key]}"},
    ) as r:
        assert r.status_code == 200
        events = [line[6:] for line in r.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [orjson.loads(e) for e in events[:-1]]
    assert not any("error" in c for c in chunks), chunks
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices"))
    return r.headers, text, chunks


def fresh_body(**extra) -> dict:
    """A prompt no earlier run asked (a Redis cache outlives test databases)."""
    return {"model": TBANK, "temperature": 0, "messages": [{"role": "user", "content": f"cache me {uuid.uuid4().hex}"}], **extra}


def test_a_deterministic_request_is_answered_from_the_cache_the_second_time(router_gateway, ledgers, django_db_blocker):
    body = fresh_body()

    first = chat(router_gateway, body)
    second = chat(router_gateway, body)

    assert first.headers["x-xrouter-cache"] == "miss"
    assert second.headers["x-xrouter-cache"] == "hit"
    assert second.json()["choices"] == first.json()["choices"]
    assert second.json()["usage"] == first.json()["usage"]
    assert second.headers["x-xrouter-route"] == first.headers["x-xrouter-route"]
    assert ledgers.calls("tbank") == 1
    record = wait_for_usage(django_db_blocker, second.headers["x-request-id"])
    assert record.cache_hit and record.cost == Decimal("0") and record.status == "cache_hit"
    original = wait_for_usage(django_db_blocker, first.headers["x-request-id"])
    assert not original.cache_hit and original.cost > 0


def test_a_streamed_replay_of_a_cached_answer_equals_the_original_stream(router_gateway, ledgers, django_db_blocker):
    body = fresh_body(messages=[{"role": "user", "content": f"[long] {uuid.uuid4().hex}"}])

    _, original, _ = stream_text(router_gateway, body)
    headers, replayed, chunks = stream_text(router_gateway, body)
    as_json = chat(router_gateway, body)

    assert headers["x-xrouter-cache"] == "hit"
    assert replayed == original and len(original) > 200
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert as_json.headers["x-xrouter-cache"] == "hit"
    assert as_json.json()["choices"][0]["message"]["content"] == original
    assert ledgers.calls("tbank") == 1
    record = wait_for_usage(django_db_blocker, headers["x-request-id"])
    assert record.cache_hit and record.stream and record.cost == Decimal("0")


def test_a_streamed_first_answer_says_it_was_a_cache_miss(router_gateway):
    headers, _, _ = stream_text(router_gateway, fresh_body())

    assert headers.get("x-xrouter-cache") == "miss"


def test_no_cache_bypasses_the_lookup(router_gateway, ledgers):
    body = fresh_body()
    chat(router_gateway, body)

    bypassed = chat(router_gateway, body, **{"cache-control": "no-cache"})

    assert bypassed.headers["x-xrouter-cache"] == "miss"
    assert ledgers.calls("tbank") == 2


def test_another_tenant_never_gets_alices_cached_answer(router_gateway, ledgers):
    body = fresh_body()
    chat(router_gateway, body, key="alice")

    theirs = chat(router_gateway, body, key="charlie")  # another user, no organisation: the key is the scope

    assert theirs.headers["x-xrouter-cache"] == "miss"
    assert ledgers.calls("tbank") == 2
    assert chat(router_gateway, body, key="charlie").headers["x-xrouter-cache"] == "hit"


@pytest.mark.parametrize("temperature", [None, 0.7], ids=["default", "0.7"])
def test_a_request_that_is_not_deterministic_is_not_cached(router_gateway, ledgers, temperature):
    body = (
        fresh_body(temperature=temperature)
        if temperature is not None
        else {k: v for k, v in fresh_body().items() if k != "temperature"}
    )

    chat(router_gateway, body)
    again = chat(router_gateway, body)

    assert "x-xrouter-cache" not in again.headers
    assert ledgers.calls("tbank") == 2


def test_a_rule_with_a_cache_ttl_caches_non_deterministic_requests(router_gateway, rules, ledgers):
    model = unique_model("cache-rule")
    rules.create(name="t-cache-rule", match_model=model, cache_ttl=60, targets=[{"model": TBANK}])
    rules.settle()
    body = {"model": model, "temperature": 0.9, "messages": [{"role": "user", "content": f"rule cache {uuid.uuid4().hex}"}]}

    first = chat(router_gateway, body)
    second = chat(router_gateway, body)

    assert (first.headers["x-xrouter-cache"], second.headers["x-xrouter-cache"]) == ("miss", "hit")
    assert second.headers["x-xrouter-route"] == f"t-cache-rule;{TBANK}"
    assert ledgers.calls("tbank") == 1


def test_an_answer_cut_mid_stream_is_not_cached(router_gateway, ledgers, faults):
    body = fresh_body(messages=[{"role": "user", "content": f"[long] {uuid.uuid4().hex}"}])
    faults("tbank", path="/v1/chat/completions", count=1, cut_after_chunks=3)

    with httpx.stream(
        "POST",
        router_gateway.v1 + "/chat/completions",
        json={**body, "stream": True},
        timeout=30,
        headers={"authorization": f"Bearer {router_gateway.keys['alice']}"},
    ) as r:
        events = [line for line in r.iter_lines() if line.startswith("data: ")]
    assert '"error"' in events[-2]

    again = chat(router_gateway, body)
    assert again.headers["x-xrouter-cache"] == "miss"
    assert ledgers.calls("tbank") == 2
