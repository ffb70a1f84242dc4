"""The rule tester's reasons (plan_route with a Why): pure decisions on hand-built catalogs, no server and
no database. The reasons never change the plan: with or without a Why, plan_route picks the same."""

import time
from decimal import Decimal

import pytest

from apps.common.errors import ApiError
from apps.keys.selectors import KeyInfo
from apps.routing import state
from apps.routing.catalog import Catalog, ModelEntry
from apps.routing.router import Why, plan_route
from apps.routing.rules import RequestContext, Rule, TargetSpec

MODELS = {"gigachat/GigaChat-2": ("RU", 32000), "gigachat/GigaChat-2-Max": ("RU", 128000),
          "mts/mws-gpt-alpha": ("RU", 8000), "openai/gpt-4o": ("US", 128000)}


@pytest.fixture(autouse=True)
def fresh_state():
    state.reset()
    yield
    state.reset()


def catalog(*rules, disabled=()) -> Catalog:
    models = {m: ModelEntry(provider=m.split("/")[0], name=m.split("/", 1)[1], kind="chat", input_price=Decimal(1),
                            output_price=Decimal(1), cached_input_price=Decimal(0), context_window=window,
                            jurisdiction=where, created=0)
              for m, (where, window) in MODELS.items() if m not in disabled}
    cat = Catalog(models=models, rules=tuple(rules))
    for provider in {m.split("/")[0] for m in MODELS}:
        cat._adapters[provider] = object()  # plan_route only hands the adapter on
    return cat


def rule(name, *targets, match_model="xrouter/*", **fields) -> Rule:
    return Rule(name=name, priority=1, match_model=match_model, targets=tuple(TargetSpec(t) for t in targets), **fields)


def key(*allowed, residency="", prefix="0123abcd") -> KeyInfo:
    return KeyInfo(id=1, prefix=prefix, name="k", user_id=1, organisation_id=7, allowed_models=tuple(allowed),
                   residency=residency, expires_at=None)


def explain(cat, k, model="xrouter/auto", **ctx):
    context = RequestContext(model=model, key_prefix=k.prefix, organisation_id=k.organisation_id, **ctx)
    why = Why()
    plain = plan_route(cat, model, k, ctx=context)
    explained = plan_route(cat, model, k, ctx=context, why=why)
    assert [t.label for t in explained.targets] == [t.label for t in plain.targets] and explained.rule == plain.rule
    return explained, why


def test_each_rule_before_the_match_says_which_condition_failed_and_those_after_were_not_reached():
    cat = catalog(rule("tagged", "mts/mws-gpt-alpha", match_tags=frozenset({"batch"})),
                  rule("keyed", "mts/mws-gpt-alpha", match_keys=frozenset({"ffffffff"})),
                  rule("big", "gigachat/GigaChat-2-Max", min_prompt_tokens=1000),
                  rule("streams", "mts/mws-gpt-alpha", match_stream=True),
                  rule("default", "gigachat/GigaChat-2"),
                  rule("later", "mts/mws-gpt-alpha"))
    plan, why = explain(cat, key(), prompt_tokens=10)
    reasons = dict(why.rules)
    assert plan.rule == "default" and reasons["default"] == "matched"
    assert "lack ['batch']" in reasons["tagged"]
    assert "key 0123abcd is not one of ['ffffffff']" == reasons["keyed"]
    assert "~10 tokens is under 1000" in reasons["big"]
    assert "streamed" in reasons["streams"]
    assert reasons["later"] == "not reached: default matched first"


def test_a_target_the_key_may_not_use_is_skipped_for_access():
    cat = catalog(rule("r", "mts/mws-gpt-alpha", "gigachat/GigaChat-2"))
    plan, why = explain(cat, key("gigachat/*"))
    assert [t.label for t in plan.targets] == ["gigachat/GigaChat-2"]
    assert why.targets == [("mts/mws-gpt-alpha", "access: the key's allowed models exclude it")]


def test_a_target_outside_the_residency_of_the_key_or_the_rule_is_skipped_naming_both_places():
    cat = catalog(rule("r", "openai/gpt-4o", "gigachat/GigaChat-2"))
    plan, why = explain(cat, key(residency="RU"))
    assert why.targets == [("openai/gpt-4o", "residency: hosted in US, the request needs RU")]
    cat = catalog(rule("r", "openai/gpt-4o", "gigachat/GigaChat-2", residency="RU"))
    plan, why = explain(cat, key())
    assert why.targets == [("openai/gpt-4o", "residency: hosted in US, the request needs RU")]


def test_a_disabled_model_and_an_open_breaker_are_skipped_and_a_small_window_goes_last():
    cat = catalog(rule("r", "mts/mws-gpt-alpha", "gigachat/GigaChat-2", "openai/gpt-4o", "gigachat/GigaChat-2-Max"),
                  disabled=("openai/gpt-4o",))
    state.open_breaker("gigachat/GigaChat-2", 30)
    plan, why = explain(cat, key(), prompt_tokens=9000)
    assert [t.label for t in plan.targets] == ["gigachat/GigaChat-2-Max", "mts/mws-gpt-alpha"]
    reasons = dict(why.targets)
    assert reasons["openai/gpt-4o"].startswith("disabled or unknown")
    assert reasons["gigachat/GigaChat-2"].startswith("breaker open for")
    assert reasons["mts/mws-gpt-alpha"] == "context window: 8000 tokens < 9000 needed, tried after those that fit"


def test_a_breaker_opened_by_hand_skips_the_target_until_it_expires_and_one_closed_by_hand_overrides_the_automatic():
    cat = catalog(rule("r", "gigachat/GigaChat-2", "mts/mws-gpt-alpha"))
    state.set_forced({"gigachat": (True, None)})
    plan, why = explain(cat, key())
    assert [t.label for t in plan.targets] == ["mts/mws-gpt-alpha"]
    assert why.targets == [("gigachat/GigaChat-2", "breaker opened by hand")]

    state.set_forced({"gigachat": (True, time.time() - 1)})  # expired: the automatic breaker decides again
    plan, why = explain(cat, key())
    assert [t.label for t in plan.targets] == ["gigachat/GigaChat-2", "mts/mws-gpt-alpha"] and why.targets == []

    state.open_breaker("mts/mws-gpt-alpha", 30)
    state.set_forced({"mts/mws-gpt-alpha": (False, time.time() + 60)})
    plan, why = explain(cat, key())
    assert [t.label for t in plan.targets] == ["gigachat/GigaChat-2", "mts/mws-gpt-alpha"]
    assert state.reserve_probe("mts/mws-gpt-alpha")  # a request goes through whatever the automatic breaker says


def test_when_nothing_is_left_the_error_comes_with_the_reasons_gathered():
    cat = catalog(rule("r", "openai/gpt-4o"))
    why = Why()
    with pytest.raises(ApiError) as refused:
        plan_route(cat, "xrouter/auto", key(residency="RU"), why=why)
    assert refused.value.code == "residency_violation"
    assert why.rules == [("r", "matched")] and why.targets[0][0] == "openai/gpt-4o"
