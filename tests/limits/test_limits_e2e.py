"""Limits across gateway processes: two real gateways (`manage.py serve`) sharing real Redis and
PostgreSQL, against the provider emulators, driven over loopback HTTP by many clients at once."""

import asyncio
import time
import uuid
from decimal import Decimal

import httpx
import orjson
import pytest
from django.conf import settings

from tests.conftest import need, start_gateway
from tests.gateway.conftest import _stop_with_children
from tests.gateway.support import assert_error, chat_body

MODEL = "mts/mws-gpt-alpha"
BURST = 200
TRIALS = 20  # as the issue asks: 20 × 200 simultaneous requests, each trial with a fresh key (a fresh window)


@pytest.fixture(scope="module")
def two_gateways(gateway):
    need("Redis", bool(settings.REDIS_URL))
    # Failing closed, with a timeout a loaded test machine cannot hit: an answer the limiter did not
    # give (a fail-open fallback) would show as a 503, never as a silent extra admission.
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
           "XROUTER_LIMITS_FAIL": "closed", "XROUTER_LIMITS_TIMEOUT": "10"}
    started = [start_gateway(env) for _ in range(2)]
    yield [base + "/v1" for _, base in started]
    for process, _ in started:
        _stop_with_children(process)


@pytest.fixture
def limited_key(committed_db):
    from apps.accounts.models import User
    from apps.keys.services import key_create

    owner, _ = User.objects.get_or_create(username="limits-e2e")

    def make(**limits) -> str:
        return key_create(user=owner, name=f"limited-{uuid.uuid4().hex[:6]}", **limits)[1]

    return make


async def _burst(bases: list[str], key: str, count: int, body: dict) -> list[httpx.Response]:
    """`count` requests at once, alternating between the gateways."""
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(timeout=60, limits=limits, headers={"authorization": f"Bearer {key}"}) as client:
        return await asyncio.gather(*(client.post(bases[i % len(bases)] + "/chat/completions", json=body)
                                      for i in range(count)))


def test_rpm_50_admits_exactly_50_of_200_simultaneous_requests_across_two_processes(two_gateways, limited_key):
    keys = [limited_key(requests_rate="50/min") for _ in range(TRIALS)]  # a fresh window per trial
    body = chat_body(MODEL, max_tokens=5)

    async def trials():
        # One client for every trial: its connections stay open, so a trial's 200 requests start together.
        limits = httpx.Limits(max_connections=BURST, max_keepalive_connections=BURST)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            out = []
            for key in keys:
                headers = {"authorization": f"Bearer {key}"}
                out.append(await asyncio.gather(*(client.post(two_gateways[i % 2] + "/chat/completions", json=body,
                                                              headers=headers) for i in range(BURST))))
            return out

    for responses in asyncio.run(trials()):
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200] * 50 + [429] * 150, {s: statuses.count(s) for s in set(statuses)}
        ok = [r for r in responses if r.status_code == 200]
        assert sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in ok) == list(range(50))
        assert {r.headers["x-ratelimit-limit-requests"] for r in ok} == {"50"}
        refused = next(r for r in responses if r.status_code == 429)
        error = assert_error(refused, 429, code="rate_limit_exceeded", type_="rate_limit_error")
        assert "requests per minute" in error["message"]
        assert 1 <= int(refused.headers["retry-after"]) <= 66
        assert refused.headers["x-ratelimit-limit-requests"] == "50"
        assert refused.headers["x-ratelimit-remaining-requests"] == "0"
        assert refused.headers["x-ratelimit-reset-requests"]


def _max_overlap(entries: list[dict]) -> int:
    events = sorted([(e["ts"], 1) for e in entries] + [(e["ended"], -1) for e in entries])
    current = peak = 0
    for _, step in events:
        current += step
        peak = max(peak, current)
    return peak


def test_concurrency_50_never_lets_more_than_50_reach_the_provider(two_gateways, limited_key, emulators,
                                                                   emulator_control):
    key = limited_key(max_concurrent=50)
    control = emulators["mts"].control_url
    httpx.delete(control + "/ledger", timeout=5)
    emulator_control("mts", latency_ms=2000, share=1, path="/v1/chat/completions")  # every call held 2 s
    responses = asyncio.run(_burst(two_gateways, key, BURST, chat_body(MODEL, max_tokens=5)))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429}, statuses
    assert 50 <= statuses.count(200) < BURST  # all 50 slots were used, and some requests were refused
    for refused in (r for r in responses if r.status_code == 429):
        error = assert_error(refused, 429, code="rate_limit_exceeded")
        assert "concurrent requests" in error["message"] and refused.headers["retry-after"]
    entries = [e for e in httpx.get(control + "/ledger", timeout=5).json()["entries"] if e["path"] == "/v1/chat/completions"]
    assert len(entries) == statuses.count(200)
    assert _max_overlap(entries) <= 50
    # Every slot came back: a new burst gets 50 in again.
    httpx.delete(control + "/faults", timeout=5)
    again = asyncio.run(_burst(two_gateways, key, 60, chat_body(MODEL, max_tokens=5)))
    assert sum(r.status_code == 200 for r in again) >= 50


def test_a_client_that_leaves_mid_stream_gives_its_slot_back(two_gateways, limited_key, emulator_control):
    key = limited_key(max_concurrent=1)
    headers = {"authorization": f"Bearer {key}"}
    emulator_control("mts", chunk_delay_ms=300, count=1)
    with httpx.stream("POST", two_gateways[0] + "/chat/completions", headers=headers, timeout=30,
                      json=chat_body(MODEL, "Tell me a long story [long]", stream=True)) as stream:
        assert stream.status_code == 200
        lines = stream.iter_lines()  # kept: an abandoned iterator would close the response
        assert next(lines).startswith("data: ")
        busy = httpx.post(two_gateways[1] + "/chat/completions", headers=headers, json=chat_body(MODEL), timeout=30)
        assert_error(busy, 429, code="rate_limit_exceeded")
    # The stream's client is gone: its slot is released (settles are batched, so look a few times).
    deadline = time.monotonic() + 10
    while True:
        answer = httpx.post(two_gateways[1] + "/chat/completions", headers=headers, json=chat_body(MODEL), timeout=30)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert answer.status_code == 200, answer.text


def test_tokens_are_reserved_then_settled_to_the_usage(two_gateways, limited_key):
    key = limited_key(tokens_rate="100000/min")
    headers = {"authorization": f"Bearer {key}"}
    body = chat_body(MODEL, "Привет", max_tokens=1000)
    reserved = len("Привет") + 8 + 1000  # characters as tokens, 8 a message, max_tokens
    first = httpx.post(two_gateways[0] + "/chat/completions", headers=headers, json=body, timeout=30)
    assert first.status_code == 200
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == 100000 - reserved
    usage = orjson.loads(first.content)["usage"]
    used = usage["prompt_tokens"] + usage["completion_tokens"]
    assert used < reserved
    expected = 100000 - used - reserved  # the first settled to its usage, the second reserved
    deadline = time.monotonic() + 10
    while True:
        second = httpx.post(two_gateways[1] + "/chat/completions", headers=headers, json=body, timeout=30)
        remaining = int(second.headers["x-ratelimit-remaining-tokens"])
        if remaining == expected or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert remaining == expected


def test_a_key_without_limits_gets_no_ratelimit_headers(two_gateways, limited_key):
    response = httpx.post(two_gateways[0] + "/chat/completions", headers={"authorization": f"Bearer {limited_key()}"},
                          json=chat_body(MODEL), timeout=30)
    assert response.status_code == 200
    assert not [h for h in response.headers if h.startswith("x-ratelimit")]


def test_a_model_cap_holds_across_tenants_and_processes(two_gateways, limited_key):
    """A provider model's requests_rate is one cap for every key and organisation, in every process."""
    from apps.providers.models import ProviderModel
    from apps.providers.services import config_announce

    model = ProviderModel.objects.get(provider__name="tbank", name="t-tech/T-lite-it-2.1")
    model.requests_rate = "6/min"
    model.save(update_fields=["requests_rate"])
    config_announce()
    try:
        keys = [limited_key(), limited_key()]  # two tenants' keys without limits of their own
        body = chat_body("tbank/t-tech/T-lite-it-2.1")
        deadline = time.monotonic() + 15  # until both processes have reloaded their catalog (bus "config")
        while not all("x-ratelimit-limit-requests" in httpx.post(base + "/chat/completions", json=body, timeout=30,
                                                                  headers={"authorization": f"Bearer {keys[0]}"}).headers
                      for base in two_gateways):
            assert time.monotonic() < deadline, "the model's limit never reached the gateways"
            time.sleep(0.2)
        responses = []
        for n in range(12):
            responses.append(httpx.post(two_gateways[n % 2] + "/chat/completions", json=body, timeout=30,
                                        headers={"authorization": f"Bearer {keys[n % 2]}"}))
        assert all(r.status_code in (200, 429) for r in responses)
        assert sum(r.status_code == 200 for r in responses) <= 4  # 6 a minute, two or more already used above
        refused = next(r for r in responses if r.status_code == 429)
        assert "model tbank/t-tech/T-lite-it-2.1" in assert_error(refused, 429, code="rate_limit_exceeded")["message"]
    finally:
        model.requests_rate = ""
        model.save(update_fields=["requests_rate"])
        config_announce()


# --- budgets: money reserved at admission, settled to the cost billed ---
def _budget_key(budget: str) -> tuple[str, int]:
    from apps.accounts.models import User
    from apps.keys.services import key_create

    owner, _ = User.objects.get_or_create(username="limits-e2e")
    key, plaintext = key_create(user=owner, name=f"budget-{uuid.uuid4().hex[:6]}", monthly_budget=Decimal(budget))
    _forget_counters(key.id)
    return plaintext, key.id


def _forget_counters(key_id: int) -> None:
    """A recreated test database reuses key ids: an earlier run's counters for this id must not count."""
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for counter in client.scan_iter(f"{settings.XROUTER['REDIS_NAMESPACE']}:lim:k:{key_id}:*"):
        client.delete(counter)
    client.close()


def _spend(key_id: int, expected_rows: int, timeout: float = 15.0) -> Decimal:
    """The key's billed spend once the usage writer has stored `expected_rows` rows."""
    from django.db.models import Count, Sum

    from apps.usage.models import UsageRecord

    deadline = time.monotonic() + timeout
    while True:
        found = UsageRecord.objects.filter(api_key_id=key_id).aggregate(n=Count("id"), spend=Sum("cost"))
        if found["n"] >= expected_rows or time.monotonic() > deadline:
            assert found["n"] == expected_rows, found
            return found["spend"] or Decimal(0)
        time.sleep(0.1)


def test_a_concurrent_burst_never_overshoots_a_budget_across_two_processes(two_gateways, committed_db):
    # 14 prompt tokens ("Привет" + 8) and 5 answer tokens reserve 19 × 0.50 ₽ / 1,000 = 0.0095 ₽ each:
    # ten such reservations fit in 0.10 ₽ at once; settled to their actual (smaller) cost, more follow.
    plaintext, key_id = _budget_key("0.10")
    body = chat_body(MODEL, max_tokens=5)
    answered, bursts = 0, 0
    while bursts < 40:  # until a burst finds no room left (each admits what the settled spend leaves)
        bursts += 1
        responses = asyncio.run(_burst(two_gateways, plaintext, 50, body))
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429}, statuses
        answered += statuses.count(200)
        for refused in (r for r in responses if r.status_code == 429):
            error = assert_error(refused, 429, code="insufficient_quota", type_="insufficient_quota")
            assert "monthly budget" in error["message"] and "0.10 RUB" in error["message"]
            assert int(refused.headers["retry-after"]) > 0
        if 200 not in statuses:
            break
        time.sleep(0.1)  # the settles of this burst reach Redis
    assert 10 <= answered and bursts < 40
    spend = _spend(key_id, answered)
    assert spend <= Decimal("0.10"), spend  # settled spend never above the budget
    assert spend > Decimal("0.10") - Decimal("0.0095")  # refused only when less than one reservation was left
    # Redis's counter is the settled spend, exactly (micro-roubles): no reservation left behind.
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    month = next(k for k in client.scan_iter(f"{settings.XROUTER['REDIS_NAMESPACE']}:lim:k:{key_id}:$:*"))
    assert int(client.get(month)) == int(spend * 1_000_000)
    client.close()


def test_a_lost_budget_counter_is_seeded_from_the_months_usage(two_gateways, committed_db):
    """A Redis that lost its data (here: the counter deleted) does not forget what the month has cost."""
    from apps.usage.models import UsageRecord

    plaintext, key_id = _budget_key("1.00")
    headers = {"authorization": f"Bearer {plaintext}"}
    first = httpx.post(two_gateways[0] + "/chat/completions", headers=headers, json=chat_body(MODEL, max_tokens=5),
                       timeout=30)
    assert first.status_code == 200
    _forget_counters(key_id)
    # Earlier this month (before the counter was lost) the key spent 0.995 ₽.
    from django.utils import timezone

    UsageRecord.objects.create(request_id=f"budget-{uuid.uuid4().hex}", api_key_id=key_id, cost=Decimal("0.995"),
                               created_at=timezone.now())
    refused = httpx.post(two_gateways[1] + "/chat/completions", headers=headers, json=chat_body(MODEL, max_tokens=5),
                         timeout=30)
    assert_error(refused, 429, code="insufficient_quota", type_="insufficient_quota")


def test_a_credential_with_one_slot_never_serves_two_requests_at_once_across_processes(
        two_gateways, limited_key, emulators, emulator_control):
    """The first target's lease is taken in the admission call (keys under limits) or by the adapter
    (keys without): one lease set either way, so the provider never sees two calls at once."""
    from apps.providers.models import Credential
    from apps.providers.services import config_announce

    credential = Credential.objects.get(provider__name="tbank")
    credential.max_concurrency = 1
    credential.save(update_fields=["max_concurrency"])
    config_announce()
    try:
        keys = [limited_key(requests_rate="1000/min"), limited_key()]
        body = chat_body("tbank/t-tech/T-lite-it-2.1", max_tokens=5)
        # A process reloads its catalog on the first request after the announcement (that one is still
        # served from the old one): a few requests each, then the new cap holds. A process still on the
        # old catalog would show as an overlap below, never hide one.
        for _ in range(3):
            for base in two_gateways:
                httpx.post(base + "/chat/completions", json=body, timeout=30, headers={"authorization": f"Bearer {keys[1]}"})
            time.sleep(0.2)
        control = emulators["tbank"].control_url
        httpx.delete(control + "/ledger", timeout=5)
        emulator_control("tbank", latency_ms=300, share=1, path="/v1/chat/completions")

        async def burst():
            async with httpx.AsyncClient(timeout=60) as client:
                return await asyncio.gather(*(
                    client.post(two_gateways[i % 2] + "/chat/completions", json=body,
                                headers={"authorization": f"Bearer {keys[(i // 2) % 2]}"}) for i in range(8)))

        responses = asyncio.run(burst())
        statuses = [r.status_code for r in responses]
        assert set(statuses) <= {200, 429} and statuses.count(200) >= 2, statuses
        for refused in (r for r in responses if r.status_code == 429):
            assert_error(refused, 429, code="concurrency")
            assert refused.headers["retry-after"] == "1"
        entries = [e for e in httpx.get(control + "/ledger", timeout=5).json()["entries"]
                   if e["path"] == "/v1/chat/completions"]
        assert len(entries) == statuses.count(200)
        assert _max_overlap(entries) == 1
        # Every place came back (granted ones with the settle, the adapter's at once): one at a time still works.
        httpx.delete(control + "/faults", timeout=5)
        for n in range(4):
            answer = httpx.post(two_gateways[n % 2] + "/chat/completions", json=body, timeout=30,
                                headers={"authorization": f"Bearer {keys[n % 2]}"})
            assert answer.status_code == 200, answer.text
    finally:
        credential.max_concurrency = 0
        credential.save(update_fields=["max_concurrency"])
        config_announce()


# --- per key and model, and a fallback target's model limits ---
def test_a_keys_limit_on_one_model_holds_across_processes_and_leaves_its_other_models_alone(two_gateways, limited_key):
    key = limited_key(model_limits={MODEL: {"requests_rate": "5/min"}})
    responses = asyncio.run(_burst(two_gateways, key, 20, chat_body(MODEL, max_tokens=5)))
    assert sorted(r.status_code for r in responses) == [200] * 5 + [429] * 15
    refused = next(r for r in responses if r.status_code == 429)
    assert f"on model {MODEL}" in assert_error(refused, 429, code="rate_limit_exceeded")["message"]
    assert refused.headers["retry-after"] and refused.headers["x-ratelimit-limit-requests"] == "5"
    other = httpx.post(two_gateways[0] + "/chat/completions", json=chat_body("tbank/t-tech/T-lite-it-2.1"),
                       headers={"authorization": f"Bearer {key}"}, timeout=30)
    assert other.status_code == 200 and "x-ratelimit-limit-requests" not in other.headers


def test_a_fallback_targets_model_limits_are_decided_when_the_router_turns_to_it(two_gateways, limited_key,
                                                                                  emulator_control, emulators):
    """The primary refuses every call (401: class `auth`, which falls back and opens no breaker, so the
    session's other tests keep their provider); the fallback model carries a key+model cap of 3 a
    minute: from the fourth request on, the fallback is refused by that cap (class `capacity`: no
    provider call), so those end in 429 while the first three were served by the fallback."""
    from apps.routing.models import RoutingRule
    from apps.routing.services import rule_save, rules_delete

    name = f"fallback-limits-{uuid.uuid4().hex[:6]}"
    fallback = "tbank/t-tech/T-lite-it-2.1"
    rule_save(RoutingRule(name=name, priority=1, match_model=name, fallback_on=["auth", "capacity"], retries=0,
                          targets=[{"model": MODEL}, {"model": fallback}]))
    try:
        key = limited_key(model_limits={fallback: {"requests_rate": "3/min"}})
        headers = {"authorization": f"Bearer {key}"}
        emulator_control("mts", status=401, share=1, path="/v1/chat/completions")  # the primary always refuses
        httpx.delete(emulators["tbank"].control_url + "/ledger", timeout=5)
        body = chat_body(name, max_tokens=5)
        deadline = time.monotonic() + 15
        while (first := httpx.post(two_gateways[0] + "/chat/completions", json=body, headers=headers,
                                   timeout=30)).status_code == 404:
            assert time.monotonic() < deadline, "the rule never reached the gateway"
            time.sleep(0.2)
        assert first.status_code == 200 and first.headers["x-xrouter-provider"] == "tbank", first.text
        answers = [httpx.post(two_gateways[n % 2] + "/chat/completions", json=body, headers=headers, timeout=30)
                   for n in range(1, 5)]
        statuses = [r.status_code for r in answers]
        assert statuses.count(200) == 2 and statuses.count(429) == 2, [r.text for r in answers]
        refused = next(r for r in answers if r.status_code == 429)
        assert f"on model {fallback}" in refused.json()["error"]["message"] and refused.headers["retry-after"]
        calls = [e for e in httpx.get(emulators["tbank"].control_url + "/ledger", timeout=5).json()["entries"]
                 if e["path"].endswith("/chat/completions")]
        assert len(calls) == 3  # the refused fallbacks never reached the provider
    finally:
        rules_delete(RoutingRule.objects.filter(name=name))
