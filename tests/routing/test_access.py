"""Issue 8 item 2: who may use which model — one check for the router and /v1/models.
Pure decisions on hand-built catalogs: no server, no database."""

from decimal import Decimal

import pytest

from apps.common.errors import ApiError
from apps.gateway.handlers import _visible_models
from apps.keys.selectors import KeyInfo
from apps.routing.access import may_use
from apps.routing.catalog import Catalog, ModelEntry
from apps.routing.router import plan_route
from apps.routing.rules import Rule, TargetSpec


def entry(public_id: str, jurisdiction: str = "RU", kind: str = "chat") -> ModelEntry:
    provider, name = public_id.split("/", 1)
    return ModelEntry(provider=provider, name=name, kind=kind, input_price=Decimal(1), output_price=Decimal(1),
                      cached_input_price=Decimal(0), context_window=None, jurisdiction=jurisdiction, created=0)


MODELS = ["gigachat/GigaChat-2", "gigachat/GigaChat-2-Max", "mts/mws-gpt-alpha", "openai/gpt-4o"]


def catalog(rules=(), aliases=None) -> Catalog:
    cat = Catalog(models={m: entry(m, "US" if m.startswith("openai/") else "RU") for m in MODELS},
                  aliases=aliases or {}, rules=tuple(rules))
    for provider in {m.split("/")[0] for m in MODELS}:
        cat._adapters[provider] = object()  # plan_route only hands the adapter on; nothing is called
    return cat


def key(*allowed, residency="") -> KeyInfo:
    return KeyInfo(id=1, prefix="0123abcd", name="k", user_id=1, organisation_id=None, allowed_models=tuple(allowed),
                   residency=residency, expires_at=None)


def rule(name, match_model, *targets) -> Rule:
    return Rule(name=name, priority=1, match_model=match_model, targets=tuple(TargetSpec(t) for t in targets))


def targets(plan) -> list[str]:
    return [t.label for t in plan.targets]


def visible(cat, k) -> set[str]:
    return {m["id"] for m in _visible_models(cat, k)}


def test_a_glob_entry_asked_for_literally_does_not_grant_a_rules_other_targets():
    cat = catalog(rules=[rule("everything", "*", "mts/mws-gpt-alpha", "gigachat/GigaChat-2")])
    plan = plan_route(cat, "gigachat/*", key("gigachat/*"))
    assert targets(plan) == ["gigachat/GigaChat-2"]


def test_a_glob_entry_asked_for_literally_is_refused_when_no_target_passes():
    cat = catalog(rules=[rule("elsewhere", "gigachat/*", "mts/mws-gpt-alpha")])
    with pytest.raises(ApiError) as refused:
        plan_route(cat, "gigachat/*", key("gigachat/*"))
    assert refused.value.status == 403


def test_models_lists_an_alias_only_when_the_key_may_use_its_target():
    cat = catalog(aliases={"gpt-4o": "gigachat/GigaChat-2-Max"})
    assert "gpt-4o" not in visible(cat, key("gpt-*"))
    with pytest.raises(ApiError) as refused:
        plan_route(cat, "gpt-4o", key("gpt-*"))
    assert refused.value.status in (403, 404)


MODEL_IDS = set(MODELS)


@pytest.mark.parametrize(
    ("allowed", "requested", "target", "verdict"),
    [
        ((), "anything", "mts/mws-gpt-alpha", True),  # no list: every model
        (("gigachat/*",), "gigachat/GigaChat-2", "gigachat/GigaChat-2", True),  # a glob passes its targets
        (("gigachat/*",), "smart", "gigachat/GigaChat-2", True),  # ... whoever asked for them
        (("gigachat/*",), "smart", "mts/mws-gpt-alpha", False),  # ... and no others
        (("gigachat/*",), "gigachat/*", "mts/mws-gpt-alpha", False),  # a glob asked for literally grants nothing
        (("gpt-*",), "gpt-4o", "gigachat/GigaChat-2-Max", False),  # a glob matching an alias name grants nothing
        (("smart",), "smart", "mts/mws-gpt-alpha", True),  # an exact rule/alias name grants its targets
        (("smart",), "smart2", "mts/mws-gpt-alpha", False),
        (("gpt-4o",), "gpt-4o", "gigachat/GigaChat-2-Max", True),  # an exact alias name
        (("smart*",), "smart*", "mts/mws-gpt-alpha", False),  # a glob that is also the asked-for name
        (("a[bc]",), "a[bc]", "mts/mws-gpt-alpha", False),
        (("mts/mws-gpt-alpha",), "mts/mws-gpt-alpha", "gigachat/GigaChat-2", False),  # a model's name is not a grant
        (("mts/mws-gpt-alpha",), "mts/mws-gpt-alpha", "mts/mws-gpt-alpha", True),
    ],
)
def test_the_access_decision_table(allowed, requested, target, verdict):
    assert may_use(key(*allowed), requested, target, MODEL_IDS) is verdict


def test_models_shows_exactly_what_the_router_serves():
    cat = catalog(rules=[rule("smart", "smart", "mts/mws-gpt-alpha")],
                  aliases={"gpt-4o": "gigachat/GigaChat-2-Max", "fast": "mts/mws-gpt-alpha"})
    for allowed in [(), ("gigachat/*",), ("gpt-*",), ("gpt-4o",), ("fast", "mts/*"), ("*",), ("openai/*",)]:
        for residency in ("", "RU", "US"):
            k = key(*allowed, residency=residency)
            for model_id in visible(cat, k):
                assert targets(plan_route(cat, model_id, k)), (allowed, residency, model_id)
            for model_id in (set(MODELS) | set(cat.aliases)) - visible(cat, k):
                with pytest.raises(ApiError):
                    plan_route(cat, model_id, k)


def test_an_exact_rule_name_grants_the_rules_targets_but_residency_still_applies():
    cat = catalog(rules=[rule("smart", "smart", "openai/gpt-4o", "mts/mws-gpt-alpha")])
    assert targets(plan_route(cat, "smart", key("smart"))) == ["openai/gpt-4o", "mts/mws-gpt-alpha"]
    assert targets(plan_route(cat, "smart", key("smart", residency="RU"))) == ["mts/mws-gpt-alpha"]
    with pytest.raises(ApiError) as refused:
        plan_route(cat, "smart", key("mts/*", residency="US"))
    assert refused.value.code == "residency_violation"
