"""Admission as the request path uses it, without a gateway: no limit means no Redis call, the
in-process limiter without REDIS_URL, and what happens when Redis is unreachable or hangs
(XROUTER_LIMITS_FAIL open or closed) — a request never waits on it past the timeout."""

import asyncio
import os
import socket
from dataclasses import replace
from decimal import Decimal

import pytest

from apps.common.errors import ApiError
from apps.common.rates import Limits, Rate
from apps.keys.selectors import KeyInfo
from apps.limits import services
from apps.limits.estimate import DEFAULT_OUTPUT_CAP, MESSAGE_OVERHEAD, chat_reservation, embeddings_reservation
from apps.limits.limiter import CALENDAR, NEVER, Decision, LocalLimiter
from apps.providers.adapters.base import Usage
from tests.conftest import need

KEY = KeyInfo(id=901, prefix="0badc0de", name="k", user_id=1, organisation_id=None, allowed_models=(), residency="",
              expires_at=None)


@pytest.fixture(autouse=True)
def fresh(monkeypatch, settings):
    monkeypatch.setattr(services, "_down_until", 0.0)
    monkeypatch.setattr(services, "_local", LocalLimiter())
    monkeypatch.setattr(services, "_fallback", LocalLimiter(divisor=2))
    monkeypatch.setattr(services, "_shut", {})
    settings.XROUTER = {**settings.XROUTER, "LIMITS_TIMEOUT": 0.2, "LIMITS_FAIL": "open"}


def _admit_many(key, count):
    async def run():
        out = []
        for n in range(count):
            try:
                out.append(await services.admit(key, None, f"m{n}", lambda: (10, 0)))
            except ApiError as exc:
                out.append(exc)
        return out

    return asyncio.run(asyncio.wait_for(run(), 10))  # a hang guard, not a timing assertion


def test_a_key_without_limits_is_admitted_without_asking_anyone(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there: any call would fail
    assert _admit_many(KEY, 3) == [None, None, None]


def test_without_redis_the_in_process_limiter_decides(settings):
    settings.REDIS_URL = ""
    results = _admit_many(replace(KEY, limits=Limits(requests=Rate(2, 60))), 3)
    assert [r.headers["x-ratelimit-remaining-requests"] for r in results[:2]] == ["1", "0"]
    refused = results[2]
    assert isinstance(refused, ApiError) and refused.status == 429 and refused.code == "rate_limit_exceeded"
    assert refused.headers["retry-after"] and refused.headers["x-ratelimit-remaining-requests"] == "0"
    assert "API key xr-0badc0de" in refused.message and "requests per minute" in refused.message


def test_settling_gives_the_lease_back(settings):
    settings.REDIS_URL = ""
    key = replace(KEY, limits=Limits(concurrent=1))

    async def run():
        first = await services.admit(key, None, "a", lambda: (0, 0))
        with pytest.raises(ApiError):
            await services.admit(key, None, "b", lambda: (0, 0))
        first.settle()
        first.settle()  # once only, whatever the paths
        return await services.admit(key, None, "c", lambda: (0, 0))

    assert asyncio.run(run()) is not None


@pytest.fixture
def script_calls(monkeypatch):
    """Counts the limiter's calls to Redis (each still goes to the real Redis)."""
    from apps.common import redis as shared_redis

    calls, real = [], shared_redis.run_script

    async def counted(script, args):
        calls.append(len(args))
        return await real(script, args)

    monkeypatch.setattr(shared_redis, "run_script", counted)
    return calls


def test_a_key_redis_refused_on_its_rate_is_refused_here_until_its_retry_time(settings, script_calls):
    need("Redis", bool(settings.REDIS_URL))
    key = replace(KEY, id=900_000 + os.getpid() % 10_000, limits=Limits(requests=Rate(2, 1)))

    async def run():
        out = []
        for n in range(4):
            try:
                out.append(await services.admit(key, None, f"r{n}", lambda: (0, 0)))
            except ApiError as exc:
                out.append(exc)
        calls = len(script_calls)
        await asyncio.sleep(int(out[2].headers["retry-after"]) + 0.05)  # its own retry time (ceiled): open again
        out.append(await services.admit(key, None, "later", lambda: (0, 0)))
        return out, calls

    results, calls = asyncio.run(asyncio.wait_for(run(), 10))
    first, second, refused, again, later = results
    assert isinstance(first, services.Admission) and isinstance(second, services.Admission)
    assert calls == 3  # the fourth was refused without a round trip
    for exc in (refused, again):
        assert isinstance(exc, ApiError) and (exc.status, exc.code) == (429, "rate_limit_exceeded")
        assert "requests per second" in exc.message and exc.headers["x-ratelimit-remaining-requests"] == "0"
        assert exc.headers["x-ratelimit-limit-requests"] == "2"
    # Redis: the oldest bucket leaves the window within a period and a bucket (100 ms); here: a little less.
    assert refused.headers["retry-after"] in ("1", "2") and again.headers["retry-after"] in ("1", "2")
    assert isinstance(later, services.Admission) and len(script_calls) == 4


def test_a_raised_limit_is_asked_of_redis_at_once(settings, script_calls):
    need("Redis", bool(settings.REDIS_URL))
    key = replace(KEY, id=910_000 + os.getpid() % 10_000, limits=Limits(requests=Rate(1, 60)))

    async def run():
        await services.admit(key, None, "a", lambda: (0, 0))
        with pytest.raises(ApiError):
            await services.admit(key, None, "b", lambda: (0, 0))
        raised = replace(key, limits=Limits(requests=Rate(5, 60)))  # an administrator raised it
        return await services.admit(raised, None, "c", lambda: (0, 0))

    assert isinstance(asyncio.run(asyncio.wait_for(run(), 10)), services.Admission) and len(script_calls) == 3


def test_only_a_request_rate_refusal_shuts_a_scope_and_the_memory_is_bounded(monkeypatch):
    scope = services._scope("k", "shut-test", "API key xr-test", Limits(requests=Rate(5, 60), tokens=Rate(100, 60)))
    for kind, retry in (("tokens", 500), ("concurrent", 1000), ("day", CALENDAR), ("requests", NEVER)):
        services.shut((scope,), Decision(False, kind=kind, retry_ms=retry), 0.0)
    assert services._shut == {}  # waiting may not cure those, or a smaller request may fit
    services.shut((scope,), Decision(False, kind="requests", retry_ms=2500, tokens=(100, 40, 900)), 10.0)
    refused = services.shut_refusal((scope,), 11.0)
    assert (refused.kind, refused.limit, refused.requests[:2], refused.tokens) == ("requests", 5, (5, 0), (0, 0, 0))
    assert 1495 <= refused.requests[2] <= 1500  # opens a millisecond before Redis's answer said (its clock rounds)
    assert services.shut_refusal((scope,), 12.5) is None and services._shut == {}  # open again, and forgotten
    monkeypatch.setattr(services, "MAX_SHUT", 3)
    for n in range(10):
        other = services._scope("k", f"shut-{n}", "k", Limits(requests=Rate(1, 60)))
        services.shut((other,), Decision(False, kind="requests", retry_ms=60_000), 0.0)
    assert len(services._shut) <= 3


def test_redis_refusing_connections_fails_open_at_limit_divided_by_replicas(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    results = _admit_many(replace(KEY, limits=Limits(requests=Rate(6, 60))), 4)
    assert [isinstance(r, services.Admission) for r in results] == [True, True, True, False]  # 6 ÷ 2 replicas


def test_redis_refusing_connections_fails_closed_with_503(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.XROUTER = {**settings.XROUTER, "LIMITS_FAIL": "closed"}
    [refused] = _admit_many(replace(KEY, limits=Limits(requests=Rate(6, 60))), 1)
    assert isinstance(refused, ApiError) and refused.status == 503 and refused.headers["retry-after"] == "1"


def test_a_redis_that_never_answers_costs_a_request_the_timeout_then_nothing(settings):
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(100)  # accepts connections, never answers
    try:
        settings.REDIS_URL = f"redis://127.0.0.1:{silent.getsockname()[1]}/0"
        key = replace(KEY, limits=Limits(requests=Rate(100, 60)))
        results = _admit_many(key, 5)
        assert all(isinstance(r, services.Admission) for r in results)
        assert all(r.backend is services._fallback for r in results)  # after the first timeout, Redis is not asked

        async def at_once():
            services._down_until = 0.0
            return await asyncio.gather(*(services.admit(key, None, f"c{n}", lambda: (0, 0)) for n in range(20)))

        # Twenty waiting together: one call times out for all of them, none waits twice.
        together = asyncio.run(asyncio.wait_for(at_once(), 10))
        assert all(r.backend is services._fallback for r in together)
    finally:
        silent.close()


def test_the_reservation_counts_characters_messages_tools_and_the_answer_cap():
    model = type("M", (), {"max_output_tokens": 700})()
    body = {"messages": [{"role": "system", "content": "Будь краток"}, {"role": "user", "content": [{"type": "text",
                                                                                                   "text": "Привет"}]}],
            "tools": [{"type": "function", "function": {"name": "f"}}], "response_format": {"type": "json_object"}}
    tools, response_format = '[{"type":"function","function":{"name":"f"}}]', '{"type":"json_object"}'
    base = len("Будь краток") + len("Привет") + 2 * MESSAGE_OVERHEAD + len(tools) + len(response_format)
    assert chat_reservation(body, model) == (base, 700)
    assert chat_reservation({**body, "max_tokens": 50, "n": 3}, model) == (base, 150)
    assert chat_reservation(body, None) == (base, DEFAULT_OUTPUT_CAP)
    assert embeddings_reservation(["abc", "дв", [1, 2, 3, 4]]) == (9, 0)


class _Model:
    def __init__(self, input_price, output_price, cached="0"):
        self.input_price, self.output_price = Decimal(input_price), Decimal(output_price)
        self.cached_input_price, self.public_id, self.limits = Decimal(cached), "p/m", None


class _Plan:
    def __init__(self, *models):
        self.targets = [type("T", (), {"model": m})() for m in models]


def test_the_upper_cost_takes_the_dearest_target_and_rounds_up():
    cheap, dear = _Model("0.50", "1.00"), _Model("0.20", "3.00")
    # 10 prompt tokens at 0.50 ₽ and 5 answer tokens at 3.00 ₽ per 1,000: 0.02 ₽ = 20,000 micro-roubles.
    assert services.upper_cost(10, 5, [cheap, dear]) == 20_000
    assert services.upper_cost(1, 0, [_Model("0.0000001", "0")]) == 1  # a fraction of a micro-rouble is one
    usage = Usage(prompt_tokens=7, completion_tokens=3, cached_tokens=2)
    # What the usage record says (apps.usage.pricing): (5 × 0.50 + 2 × 0.10 + 3 × 1.00) / 1,000 ₽.
    assert services.micro_cost(usage, _Model("0.50", "1.00", cached="0.10")) == 5_700


def test_a_budget_reserves_the_upper_cost_and_settles_to_the_billed_cost(settings, committed_db):
    settings.REDIS_URL = ""
    key = replace(KEY, id=90_001, limits=Limits(budget=20_000))  # 0.02 ₽ a month, nothing spent yet
    plan = _Plan(_Model("0.50", "1.00"))  # (10 × 0.50 + 5 × 1.00) / 1,000 ₽ = 10,000 micro-roubles reserved

    async def run():
        first = await services.admit(key, plan, "a", lambda: (10, 5))
        second = await services.admit(key, plan, "b", lambda: (10, 5))
        with pytest.raises(ApiError) as refused:
            await services.admit(key, plan, "c", lambda: (10, 5))
        for admission in (first, second):
            admission.add(Usage(prompt_tokens=4, completion_tokens=2), plan.targets[0].model)  # 4,000 each
            admission.settle()
        return refused.value, await services.admit(key, plan, "d", lambda: (10, 5))  # 8,000 + 10,000 fit

    refused, fourth = asyncio.run(run())
    assert (refused.status, refused.code, refused.type) == (429, "insufficient_quota", "insufficient_quota")
    assert "0.02 RUB" in refused.message and "0.01 RUB" in refused.message and refused.headers["retry-after"]
    assert fourth is not None and fourth.cost == 10_000


def test_a_granted_credential_lease_is_taken_once_and_gone_after_the_request():
    from apps.common import leases

    async def run():
        leases.grant("lease:cred", "req-1")
        taken = leases.take_granted("lease:cred"), leases.take_granted("lease:cred")  # a second attempt: its own
        leases.grant("lease:cred", "req-2")
        leases.ungrant("lease:cred", "req-2")  # the request settled without using it
        return taken, leases.take_granted("lease:cred"), ("lease:cred", "req-2") in leases._held

    assert asyncio.run(run()) == (("req-1", None), None, False)
    leases._held.pop(("lease:cred", "req-1"), None)
