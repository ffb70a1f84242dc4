"""Reads for operators: why would a request go where it goes (the rule tester)."""

from django.utils import timezone

from apps.common.errors import ApiError
from apps.keys.selectors import KeyInfo, key_info_by_prefix

from . import state
from .catalog import load_catalog
from .models import RoutingRule
from .router import Why, plan_route
from .rules import RequestContext, estimate_tokens, parse_tags

ANYONE = KeyInfo(id=0, prefix="", name="route test", user_id=0, organisation_id=None, allowed_models=(), residency="", expires_at=None)


def explain_route(model: str, key_prefix: str = "", tags: str = "", tools=False, stream=False, prompt: str = "",
                  prompt_tokens: int | None = None, max_tokens: int | None = None) -> dict:
    """For a sample request: the rule that matches, the targets in the order they would be tried, and why each
    other rule or target was left out — with the router's own code (plan_route), never calling a provider.

    Returns {"rule", "strategy", "targets": [{"model", "state"}], "rules": [(name, reason)], "skipped":
    [(target, reason)], "error"?: message, "code"?: the API error code}."""
    key = ANYONE
    if key_prefix:
        row, key = key_info_by_prefix(key_prefix)
        if row is None:
            return {"error": f"No key with prefix {key_prefix}", "code": "invalid_api_key", "rules": [], "skipped": []}
        if key is None:
            return {"error": f"The key {key_prefix} would be refused: {_refusal(row)}", "code": "invalid_api_key",
                    "rules": [], "skipped": []}
    catalog = load_catalog()
    state.set_forced(catalog.forced)  # the breakers set by hand as the database has them now
    tokens = prompt_tokens if prompt_tokens is not None else estimate_tokens(len(prompt))
    ctx = RequestContext(model=model, key_prefix=key.prefix, organisation_id=key.organisation_id, tags=parse_tags(tags, None),
                         tools=bool(tools), stream=bool(stream), prompt_tokens=tokens, max_tokens=max_tokens or 0)
    why = Why()
    disabled = [(name, "disabled") for name in RoutingRule.objects.filter(enabled=False).values_list("name", flat=True)]
    try:
        plan = plan_route(catalog, model, key, ctx=ctx, why=why)
    except ApiError as exc:
        return {"error": exc.message, "code": exc.code, "rules": why.rules + disabled, "skipped": why.targets,
                "prompt_tokens": tokens}
    rule = next((r for r in catalog.rules if r.name == plan.rule), None)
    breakers = state.breaker_view()
    return {
        "rule": plan.rule,
        "strategy": rule.strategy if rule else "direct",
        "targets": [{"model": t.label, "state": _describe(t.label, breakers), "context_window": t.model.context_window,
                     "jurisdiction": t.model.jurisdiction} for t in plan.targets],
        "rules": why.rules + disabled,
        "skipped": why.targets,
        "prompt_tokens": tokens,
    }


def _refusal(row) -> str:
    if row.revoked_at:
        return "revoked"
    if row.expires_at and row.expires_at <= timezone.now():
        return f"expired on {row.expires_at:%Y-%m-%d %H:%M}"
    return "its owner or organisation is inactive, or its owner is no longer a member"


def _describe(target: str, breakers: dict) -> str:
    if state.forced_state(target, target.partition("/")[0]) is False:
        return "closed by hand"
    return "half-open: the next request probes it" if target in breakers and breakers[target]["half_open"] else "closed"
