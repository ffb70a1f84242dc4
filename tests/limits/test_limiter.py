"""The admission decisions, without a server: the in-process limiter (with a fake clock) and the
same cases through the Lua script against real Redis (both must decide alike)."""

import uuid

import pytest
from django.conf import settings

from apps.common.leases import RENEW
from apps.common.rates import Limits, Rate
from apps.limits.limiter import (
    CALENDAR,
    LEASE_MS,
    LIMITS,
    NEVER,
    SEED,
    LocalLimiter,
    Scope,
    admit_args,
    parse_replies,
    settle_args,
)
from tests.conftest import need

DAY = "20261129"


class Clock:
    def __init__(self):
        self.now = 1_800_000_000.0

    def __call__(self):
        return self.now


class RedisScript:
    """The Lua scripts behind the LocalLimiter interface (a sync client; the script is what is tested)."""

    def __init__(self, client):
        self.client = client
        self.script = client.register_script(LIMITS)
        self.renew_script = client.register_script(RENEW)

    def admit(self, scopes, member, tokens, day, lease_ms=LEASE_MS, cost=0):
        [decision] = parse_replies(self.script(args=[day, lease_ms, 0, *admit_args(scopes, member, tokens, cost)]))
        return decision

    def settle(self, scopes, member, delta, at, day, cost_delta=0):
        args = [day, LEASE_MS, 1, *settle_args(scopes, member, delta, at, day, cost_delta)]
        assert parse_replies(self.script(args=args)) == []

    def seed(self, key, month, spent):
        self.client.set(f"{key}:{month}", spent, nx=True)

    def renew(self, leases, lease_ms=LEASE_MS):
        self.renew_script(keys=[k for k, _ in leases], args=[lease_ms, *(m for _, m in leases)])


@pytest.fixture(params=["local", "redis"])
def limiter(request):
    if request.param == "local":
        yield LocalLimiter(clock=Clock())
        return
    need("Redis", bool(settings.REDIS_URL))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    yield RedisScript(client)
    for prefix in CREATED:  # day and month counters would otherwise stay for days
        for key in client.scan_iter(prefix + ":*"):
            client.delete(key)
    CREATED.clear()
    client.close()


CREATED: list[str] = []


def scope(**limits) -> Scope:
    """A scope of its own for each test (unique Redis keys, deleted after the test)."""
    prefix = f"{settings.XROUTER['REDIS_NAMESPACE']}:test:lim:{uuid.uuid4().hex}"
    CREATED.append(prefix)
    return Scope.build(prefix, "API key xr-test", Limits(**limits))


def admit(limiter, scopes, tokens=0, member=None):
    return limiter.admit(scopes, member or uuid.uuid4().hex, tokens, DAY)


def test_it_admits_exactly_the_rate_then_refuses_with_a_retry_time(limiter):
    s = scope(requests=Rate(5, 60))
    decisions = [admit(limiter, [s]) for _ in range(7)]
    assert [d.admitted for d in decisions] == [True] * 5 + [False] * 2
    assert [d.requests[:2] for d in decisions[:5]] == [(5, 4), (5, 3), (5, 2), (5, 1), (5, 0)]
    refused = decisions[5]
    assert (refused.kind, refused.limit, refused.scope) == ("requests", 5, 0)
    assert 0 < refused.retry_ms <= 66_000  # when the oldest request leaves the window (a period and a bucket)
    assert refused.requests[:2] == (5, 0)


def test_a_refusal_takes_nothing_from_the_other_limits(limiter):
    key, org = scope(requests=Rate(10, 60), tokens=Rate(1000, 60)), scope(requests=Rate(1, 60))
    assert admit(limiter, [key, org], tokens=100).admitted
    refused = admit(limiter, [key, org], tokens=100)
    assert (refused.admitted, refused.scope, refused.kind) == (False, 1, "requests")
    # The key's own window holds one request and 100 tokens: the refused one took neither.
    alone = admit(limiter, [key], tokens=100)
    assert alone.requests[:2] == (10, 8) and alone.tokens[:2] == (1000, 800)


def test_headers_report_the_limit_with_the_lowest_remaining_fraction(limiter):
    roomy, tight = scope(requests=Rate(100, 60)), scope(requests=Rate(4, 60))
    decision = admit(limiter, [roomy, tight])
    assert decision.requests[:2] == (4, 3)  # 3/4 left beats 99/100


def test_token_limits_reserve_then_settle_to_what_was_used(limiter):
    s = scope(tokens=Rate(1000, 60), tokens_per_day=5000, tokens_per_month=9000)
    first = admit(limiter, [s], tokens=800, member="a")
    assert first.admitted and first.tokens[:2] == (1000, 200)
    assert not admit(limiter, [s], tokens=300).admitted  # the reservation holds the room
    limiter.settle([s], "a", 100 - 800, first.at, DAY)  # the call used 100 tokens
    second = admit(limiter, [s], tokens=300)
    assert second.admitted and second.tokens[:2] == (1000, 600)


def test_a_request_larger_than_the_limit_is_refused_for_good(limiter):
    refused = admit(limiter, [scope(tokens=Rate(1000, 60))], tokens=1001)
    assert (refused.admitted, refused.kind, refused.retry_ms) == (False, "tokens", NEVER)


def test_daily_and_monthly_quotas_refuse_until_the_calendar_turns(limiter):
    day = scope(tokens_per_day=1000)
    assert admit(limiter, [day], tokens=600).admitted
    refused = admit(limiter, [day], tokens=600)
    assert (refused.kind, refused.retry_ms, refused.limit) == ("day", CALENDAR, 1000)
    assert limiter.admit([day], "x", 600, "20261130").admitted  # a new day
    month = scope(tokens_per_month=1000)
    assert admit(limiter, [month], tokens=1000).admitted
    assert admit(limiter, [month], tokens=1).kind == "month"


def test_a_budget_counter_is_seeded_first_then_reserves_and_settles_money(limiter):
    s = scope(budget=1_000_000)  # one rouble a month
    first = limiter.admit([s], "a", 10, DAY, cost=300_000)
    assert (first.admitted, first.kind, first.scope) == (False, SEED, 0)  # no counter yet: nothing taken
    limiter.seed(s.budget_key, DAY[:6], 500_000)  # the month so far, from the database
    limiter.seed(s.budget_key, DAY[:6], 0)  # a later seed (another process) does not overwrite it
    first = limiter.admit([s], "a", 10, DAY, cost=300_000)
    assert first.admitted
    refused = limiter.admit([s], "b", 10, DAY, cost=300_000)  # 0.5 + 0.3 reserved + 0.3 > 1
    assert (refused.admitted, refused.kind, refused.limit, refused.retry_ms) == (False, "budget", 1_000_000, CALENDAR)
    limiter.settle([s], "a", 0, first.at, DAY, cost_delta=120_000 - 300_000)  # it cost 0.12
    assert limiter.admit([s], "b", 10, DAY, cost=380_000).admitted  # exactly the rest: 0.5 + 0.12 + 0.38
    assert limiter.admit([s], "c", 0, DAY, cost=0).kind == "budget"  # spent: even a free request waits
    assert limiter.admit([s], "d", 0, "20261201", cost=0).kind == SEED  # a new month has a counter of its own


def test_a_zero_budget_refuses_everything(limiter):
    s = scope(budget=0)
    limiter.seed(s.budget_key, DAY[:6], 0)
    assert limiter.admit([s], "a", 0, DAY, cost=0).kind == "budget"


def test_a_budget_refusal_takes_nothing_from_the_other_scopes(limiter):
    key, org = scope(requests=Rate(2, 60)), scope(budget=100)
    limiter.seed(org.budget_key, DAY[:6], 0)
    assert limiter.admit([key, org], "a", 0, DAY, cost=101).kind == "budget"
    assert limiter.admit([key, org], "b", 0, DAY, cost=100).admitted
    assert limiter.admit([key], "c", 0, DAY).admitted  # the refused request took no request slot


def test_concurrency_leases_are_given_back_by_settling(limiter):
    s = scope(concurrent=2)
    a, b = admit(limiter, [s], member="a"), admit(limiter, [s], member="b")
    assert a.admitted and b.admitted
    refused = admit(limiter, [s], member="c")
    assert (refused.admitted, refused.kind, refused.limit) == (False, "concurrent", 2)
    limiter.settle([s], "a", 0, a.at, DAY)
    assert admit(limiter, [s], member="c").admitted


def test_a_lease_nobody_renews_expires(limiter):
    s = scope(concurrent=1)
    assert limiter.admit([s], "dead-worker", 0, DAY, lease_ms=1).admitted
    if isinstance(limiter, LocalLimiter):
        limiter.clock.now += 0.01
    else:
        import time

        time.sleep(0.01)
    assert admit(limiter, [s]).admitted


def test_a_renewed_lease_is_kept(limiter):
    s = scope(concurrent=1)
    assert limiter.admit([s], "alive", 0, DAY, lease_ms=50).admitted
    limiter.renew([(s.prefix + ":c", "alive")], lease_ms=60_000)
    if isinstance(limiter, LocalLimiter):
        limiter.clock.now += 0.1
    else:
        import time

        time.sleep(0.1)
    assert not admit(limiter, [s]).admitted


def test_the_window_slides():
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    s = scope(requests=Rate(2, 60))
    assert admit(limiter, [s]).admitted
    clock.now += 30
    assert admit(limiter, [s]).admitted
    assert not admit(limiter, [s]).admitted
    clock.now += 31 + 6  # past the first request's window (a period and at most one bucket)
    assert admit(limiter, [s]).admitted
    assert not admit(limiter, [s]).admitted  # the second is still in the window
    clock.now += 30
    assert admit(limiter, [s]).admitted


def test_no_period_long_stretch_holds_more_than_the_limit():
    clock = Clock()
    limiter = LocalLimiter(clock=clock)
    s = scope(requests=Rate(10, 60))
    admitted = []
    for _ in range(600):  # one attempt a second for ten minutes
        if admit(limiter, [s]).admitted:
            admitted.append(clock.now)
        clock.now += 1
    assert admitted
    for i, at in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < at + 60) <= 10


def test_failing_open_divides_every_limit_by_the_replicas():
    limiter = LocalLimiter(divisor=4, clock=Clock())
    s = scope(requests=Rate(10, 60), concurrent=8)
    assert [admit(limiter, [s]).admitted for _ in range(3)] == [True, True, False]  # 10 ÷ 4 → 2
    assert admit(limiter, [scope(requests=Rate(2, 60))]).admitted  # never below one


def test_one_script_call_decides_a_batch_in_order():
    need("Redis", bool(settings.REDIS_URL))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        s, other = scope(requests=Rate(2, 60)), scope(concurrent=1)
        args = [DAY, LEASE_MS, 0]
        for n in range(3):
            args += admit_args([s], f"r{n}", 0)
        args += admit_args([other], "c0", 0) + admit_args([other], "c1", 0)
        decisions = parse_replies(client.register_script(LIMITS)(args=args))
        assert [d.admitted for d in decisions] == [True, True, False, True, False]
        assert [d.kind for d in decisions if not d.admitted] == ["requests", "concurrent"]
        assert len({d.at for d in decisions if d.admitted}) == 1
    finally:
        for prefix in CREATED:
            for key in client.scan_iter(prefix + ":*"):
                client.delete(key)
        CREATED.clear()
        client.close()


def test_a_settle_in_the_same_call_frees_the_lease_for_an_admission_after_it():
    need("Redis", bool(settings.REDIS_URL))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    script = client.register_script(LIMITS)
    try:
        s = scope(concurrent=1)
        [held] = parse_replies(script(args=[DAY, LEASE_MS, 0, *admit_args([s], "first", 0)]))
        assert held.admitted
        [next_one] = parse_replies(script(args=[DAY, LEASE_MS, 1, *settle_args([s], "first", 0, held.at, DAY),
                                                *admit_args([s], "second", 0)]))
        assert next_one.admitted
    finally:
        for prefix in CREATED:
            for key in client.scan_iter(prefix + ":*"):
                client.delete(key)
        CREATED.clear()
        client.close()


def test_the_admission_call_takes_the_first_targets_credential_lease_when_one_is_free():
    need("Redis", bool(settings.REDIS_URL))
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    script = client.register_script(LIMITS)
    s = scope(requests=Rate(10, 60))
    lease = (s.prefix + ":credential", 1)  # a credential capped at one call at a time
    try:
        [first] = parse_replies(script(args=[DAY, LEASE_MS, 0, *admit_args([s], "a", 0, 0, lease)]))
        assert first.admitted and first.leased
        assert client.zscore(lease[0], "a") is not None
        [second] = parse_replies(script(args=[DAY, LEASE_MS, 0, *admit_args([s], "b", 0, 0, lease)]))
        assert second.admitted and not second.leased  # admitted all the same: its adapter waits, or falls back
        [refused] = parse_replies(script(args=[DAY, LEASE_MS, 0, *admit_args([scope(requests=Rate(0, 60))], "c", 0, 0,
                                                                               (s.prefix + ":other", 1))]))
        assert not refused.admitted and not refused.leased and not client.exists(s.prefix + ":other")
        # The settle gives the place back, in the same call as the next admission.
        [third] = parse_replies(script(args=[DAY, LEASE_MS, 1, *settle_args([s], "a", 0, first.at, DAY, 0, lease[0]),
                                             *admit_args([s], "c", 0, 0, lease)]))
        assert third.leased
    finally:
        for prefix in CREATED:
            for key in client.scan_iter(prefix + ":*"):
                client.delete(key)
        CREATED.clear()
        client.close()
