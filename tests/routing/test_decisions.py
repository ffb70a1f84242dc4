"""Routing decisions as pure functions of their inputs, in milliseconds and without a server:
the failure classes and what each allows, run_with_fallback's retries, fallbacks and breaker
counting (fake targets, no network), rule matching, and the breaker's state transitions."""

import asyncio
import time
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from apps.common import bus
from apps.providers.adapters.base import ProviderError, StreamRevisedError, error_for_status
from apps.providers.adapters.transport import cut_off, malformed, timeout_error, unsupported
from apps.routing import state
from apps.routing.catalog import ModelEntry
from apps.routing.config_schema import RuleSpec
from apps.routing.failures import FALLBACK_NAMES, POLICY, FailureClass, Policy, classify
from apps.routing.router import MAX_RETRY_WAIT, RoutePlan, Target, run_with_fallback
from apps.routing.rules import FAILURE_CLASSES, RequestContext, Rule, TargetSpec, validate_rule_fields

F = FailureClass
BROADCASTS: list[dict] = []
bus.subscribe("breaker", BROADCASTS.append)


@pytest.fixture(autouse=True)
def fresh_state(settings):
    settings.REDIS_URL = ""  # the bus stays in this process
    state.reset()
    BROADCASTS.clear()
    yield
    state.reset()


# --- failure classes ---------------------------------------------------------------------------

@pytest.mark.parametrize("error, klass", [
    (error_for_status("p", 500, ""), F.SERVER),
    (error_for_status("p", 502, ""), F.SERVER),
    (error_for_status("p", 503, ""), F.SERVER),
    (error_for_status("p", 504, ""), F.TIMEOUT),
    (error_for_status("p", 408, ""), F.TIMEOUT),
    (error_for_status("p", 429, ""), F.RATE_LIMITED),
    (error_for_status("p", 401, ""), F.AUTH),
    (error_for_status("p", 403, ""), F.AUTH),
    (error_for_status("p", 400, ""), F.CLIENT),
    (error_for_status("p", 404, ""), F.CLIENT),
    (error_for_status("p", 422, "maximum context length exceeded"), F.CLIENT),
    (timeout_error("p"), F.TIMEOUT),
    (ProviderError("x", kind="connection"), F.CONNECTION),
    (ProviderError("x", kind="empty_stream"), F.CONNECTION),
    (cut_off("p"), F.CONNECTION),
    (ProviderError("x", kind="truncated"), F.CONNECTION),
    (malformed("p", "junk"), F.SERVER),
    (StreamRevisedError(), F.SERVER),
    (ProviderError("x", status=429, kind="concurrency"), F.CAPACITY),
    (ProviderError("x", kind="content_filter"), F.CONTENT_FILTER),
    (ProviderError("x", status=504, kind="client_slow"), F.CLIENT),
    (ProviderError("x", kind="quota"), F.RATE_LIMITED),
    (ProviderError("x", kind="configuration"), F.AUTH),
    (unsupported("p", "logprobs"), F.CLIENT),
    (ProviderError("x", status=429, kind="something_new"), F.RATE_LIMITED),
    (ProviderError("x", status=502, kind="something_new"), F.SERVER),
    (ProviderError("x", status=400, kind="something_new"), F.CLIENT),
])
def test_each_provider_error_has_one_failure_class(error, klass):
    assert classify(error) is klass


def test_the_policy_table_says_what_is_retried_falls_back_and_counts():
    assert POLICY == {
        F.SERVER: Policy(retry=True, fall_back=True, counts=True),
        F.RATE_LIMITED: Policy(retry=True, fall_back=True, counts=True),
        F.TIMEOUT: Policy(retry=True, fall_back=True, counts=True),
        F.CONNECTION: Policy(retry=True, fall_back=True, counts=True),
        F.CAPACITY: Policy(retry=False, fall_back=True, counts=False),
        F.CONTENT_FILTER: Policy(retry=False, fall_back=True, counts=False),
        F.AUTH: Policy(retry=False, fall_back=True, counts=False),
        F.CLIENT: Policy(retry=False, fall_back=False, counts=False),
    }


def test_rules_name_the_failure_classes_by_their_public_names():
    assert FAILURE_CLASSES == FALLBACK_NAMES == {"5xx", "429", "timeout", "connection", "capacity", "content_filter", "auth"}
    validate_rule_fields([{"model": "a/b"}], ["5xx", "capacity"])
    with pytest.raises(ValidationError):
        validate_rule_fields([{"model": "a/b"}], ["client"])
    spec = RuleSpec(name="r", targets=[{"model": "a/b"}], fallback_on=[429, "capacity"])
    assert spec.fallback_on == ["429", "capacity"]


def test_a_rule_that_falls_back_on_429_falls_back_on_capacity_which_was_part_of_it():
    from apps.routing.models import RoutingRule

    def compiled(names):
        return Rule.from_model(RoutingRule(name="r", targets=[{"model": "a/b"}], fallback_on=names)).fallback_on

    assert compiled(["429"]) == {"429", "capacity"}
    assert compiled(["5xx"]) == {"5xx"}
    assert F.CAPACITY in RoutePlan(requested="a/b", targets=[]).fallback_on  # aliases and direct calls


# --- run_with_fallback, with fake targets ----------------------------------------------------------

def entry(public_id: str, context_window: int | None = None) -> ModelEntry:
    provider, name = public_id.split("/", 1)
    return ModelEntry(provider=provider, name=name, kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                      cached_input_price=Decimal(0), context_window=context_window, jurisdiction="RU", created=0)


def make_plan(*targets, retries=0, fallback_on=("5xx", "429", "timeout", "connection"), deadline=None, windows=None):
    windows = windows or {}
    return RoutePlan(requested=targets[0], targets=[Target(model=entry(t, windows.get(t)), adapter=None) for t in targets],
                     rule="r", retries=retries, fallback_on=frozenset(fallback_on),
                     deadline=time.monotonic() + deadline if deadline else None)


def scripted(outcomes: dict):
    """A call whose targets fail with the listed errors in turn, then answer with their label."""

    async def call(target):
        queue = outcomes.get(target.label, [])
        if queue:
            outcome = queue.pop(0)
            if isinstance(outcome, float):
                await asyncio.sleep(outcome)
            else:
                raise outcome
        return target.label

    return call


def failures_of(label: str) -> int:
    return state.state(label).recent.count(False)


async def test_a_server_error_is_retried_then_falls_back_and_each_attempt_counts():
    plan = make_plan("a/m", "b/m", retries=1)
    call = scripted({"a/m": [error_for_status("a", 500, ""), error_for_status("a", 500, "")]})
    assert (await run_with_fallback(plan, call))[0] == "b/m"
    assert plan.attempts == ["a/m", "a/m", "b/m"]
    assert failures_of("a/m") == 2


async def test_a_client_error_is_raised_at_once_and_counts_nothing():
    plan = make_plan("a/m", "b/m", retries=2)
    with pytest.raises(ProviderError) as caught:
        await run_with_fallback(plan, scripted({"a/m": [error_for_status("a", 400, "bad")]}))
    assert caught.value.kind == "bad_request" and caught.value.target.label == "a/m"
    assert plan.attempts == ["a/m"] and failures_of("a/m") == 0


@pytest.mark.parametrize("error", [
    ProviderError("x", status=429, kind="concurrency"),
    ProviderError("x", kind="content_filter"),
    error_for_status("a", 401, ""),
])
async def test_a_failure_that_is_not_the_providers_health_falls_back_unretried_and_uncounted(error):
    plan = make_plan("a/m", "b/m", retries=2, fallback_on=FALLBACK_NAMES)
    assert (await run_with_fallback(plan, scripted({"a/m": [error]})))[0] == "b/m"
    assert plan.attempts == ["a/m", "b/m"]
    assert failures_of("a/m") == 0 and BROADCASTS == []


async def test_a_class_the_rule_does_not_name_does_not_fall_back():
    plan = make_plan("a/m", "b/m", fallback_on=("5xx",))
    with pytest.raises(ProviderError) as caught:
        await run_with_fallback(plan, scripted({"a/m": [ProviderError("x", kind="content_filter")]}))
    assert caught.value.kind == "content_filter" and plan.attempts == ["a/m"]


async def test_a_long_retry_after_sends_the_request_to_the_next_target_without_waiting():
    plan = make_plan("a/m", "b/m", retries=3)
    slow_down = error_for_status("a", 429, "", retry_after=MAX_RETRY_WAIT + 10)
    started = time.monotonic()
    assert (await run_with_fallback(plan, scripted({"a/m": [slow_down]})))[0] == "b/m"
    assert plan.attempts == ["a/m", "b/m"] and time.monotonic() - started < MAX_RETRY_WAIT
    assert failures_of("a/m") == 1


async def test_a_target_that_does_not_answer_in_its_timeout_counts_and_falls_back():
    plan = make_plan("a/m", "b/m")
    plan.targets[0].timeout = 0.05
    assert (await run_with_fallback(plan, scripted({"a/m": [5.0]})))[0] == "b/m"
    assert failures_of("a/m") == 1


async def test_a_passed_deadline_stops_without_counting_against_the_next_target():
    plan = make_plan("a/m", "b/m", deadline=0.05, fallback_on=FALLBACK_NAMES)
    plan.targets[0].timeout = 1.0
    # a/m uses up the request's deadline: b/m is neither called nor blamed.
    with pytest.raises(ProviderError):
        await run_with_fallback(plan, scripted({"a/m": [0.1]}))
    assert plan.attempts == ["a/m"]
    assert failures_of("b/m") == 0


async def test_a_context_length_error_skips_to_a_larger_model():
    plan = make_plan("a/small", "b/small", "c/large", windows={"a/small": 8000, "b/small": 8000, "c/large": 128000})
    call = scripted({"a/small": [error_for_status("a", 400, "maximum context length is 8000 tokens")]})
    assert (await run_with_fallback(plan, call))[0] == "c/large"
    assert plan.attempts == ["a/small", "c/large"] and failures_of("a/small") == 0


async def test_a_half_open_probe_that_fails_for_a_local_reason_lets_the_next_request_probe(monkeypatch):
    monkeypatch.setattr(state, "COOLDOWN", 0.05)
    state.open_breaker("a/m", 0.0)  # open, and already past its cooldown: half-open
    plan = make_plan("a/m", "b/m", fallback_on=FALLBACK_NAMES)
    assert (await run_with_fallback(plan, scripted({"a/m": [ProviderError("x", status=429, kind="concurrency")]})))[0] == "b/m"
    assert state.reserve_probe("a/m")  # the probe was given back, not held for a cooldown


# --- rule matching ------------------------------------------------------------------------------

def ctx(**fields) -> RequestContext:
    return RequestContext(**{"model": "xrouter/chat", "key_prefix": "abcd1234", "organisation_id": 7, **fields})


@pytest.mark.parametrize("rule, context, matches", [
    (Rule("r", 1), ctx(), True),
    (Rule("r", 1, match_model="xrouter/*"), ctx(), True),
    (Rule("r", 1, match_model="xrouter/*"), ctx(model="gigachat/GigaChat-2"), False),
    (Rule("r", 1, match_model="XROUTER/*"), ctx(), False),  # case matters
    (Rule("r", 1, match_keys=frozenset({"abcd1234"})), ctx(), True),
    (Rule("r", 1, match_keys=frozenset({"abcd1234"})), ctx(key_prefix="ffff0000"), False),
    (Rule("r", 1, match_organisations=frozenset({"7"})), ctx(), True),
    (Rule("r", 1, match_organisations=frozenset({"7"})), ctx(organisation_id=None), False),
    (Rule("r", 1, match_tags=frozenset({"batch"})), ctx(tags=frozenset({"batch", "eu"})), True),
    (Rule("r", 1, match_tags=frozenset({"batch", "eu"})), ctx(tags=frozenset({"batch"})), False),
    (Rule("r", 1, match_tools=True), ctx(tools=False), False),
    (Rule("r", 1, match_tools=False), ctx(tools=False), True),
    (Rule("r", 1, match_stream=True), ctx(stream=True), True),
    (Rule("r", 1, match_stream=True), ctx(stream=False), False),
    (Rule("r", 1, min_prompt_tokens=100), ctx(prompt_tokens=99), False),
    (Rule("r", 1, min_prompt_tokens=100), ctx(prompt_tokens=100), True),
    (Rule("r", 1, max_prompt_tokens=100), ctx(prompt_tokens=101), False),
    (Rule("r", 1, match_model="xrouter/*", match_stream=True, targets=(TargetSpec("a/b"),)), ctx(stream=True), True),
])
def test_rule_matching(rule, context, matches):
    assert rule.matches(context) is matches


# --- breaker transitions ------------------------------------------------------------------------

def test_the_breaker_opens_after_the_threshold_and_says_so_to_every_process(monkeypatch):
    monkeypatch.setattr(state, "FAILURE_THRESHOLD", 3)
    for _ in range(2):
        state.record_failure("a/m")
    assert state.available("a/m", "a") and BROADCASTS == []
    state.record_failure("a/m")
    assert not state.available("a/m", "a")
    assert BROADCASTS == [{"target": "a/m", "cooldown": state.COOLDOWN}]


def test_a_success_resets_the_consecutive_count():
    for _ in range(state.FAILURE_THRESHOLD - 1):
        state.record_failure("a/m")
    state.record_success("a/m", 0.1)
    state.record_failure("a/m")
    assert state.available("a/m", "a")


def test_a_high_error_rate_opens_the_breaker(monkeypatch):
    monkeypatch.setattr(state, "FAILURE_THRESHOLD", 1000)
    for _ in range(state.WINDOW):
        state.record_success("a/m", 0.1)
        state.record_failure("a/m")
    assert not state.available("a/m", "a")


def test_half_open_lets_one_probe_through_and_its_verdict_closes_or_reopens(monkeypatch):
    monkeypatch.setattr(state, "COOLDOWN", 0.05)
    state.open_breaker("a/m", 0.05)
    assert not state.available("a/m", "a") and not state.reserve_probe("a/m")
    time.sleep(0.06)
    assert state.available("a/m", "a")
    assert state.reserve_probe("a/m") and not state.reserve_probe("a/m")  # one probe only
    state.record_failure("a/m")  # the probe failed: open again
    assert not state.available("a/m", "a")
    time.sleep(0.06)
    assert state.reserve_probe("a/m")
    state.record_success("a/m", 0.1)  # the probe succeeded: closed
    assert state.available("a/m", "a") and state.reserve_probe("a/m") and state.reserve_probe("a/m")


def test_a_breaker_opened_elsewhere_applies_here():
    bus._dispatch("breaker", {"target": "a/m", "cooldown": 30})
    assert not state.available("a/m", "a") and state.available("b/m", "b")
