"""Reads for operators: why would a request go where it goes."""

from apps.common.errors import ApiError
from apps.keys.models import ApiKey
from apps.keys.selectors import KeyInfo

from . import state
from .catalog import load_catalog
from .router import plan_route
from .rules import RequestContext, parse_tags

ANYONE = KeyInfo(id=0, prefix="", name="route test", user_id=0, organisation_id=None, allowed_models=(), residency="", expires_at=None)


def explain_route(model: str, key_prefix: str = "", tags: str = "", tools=False, stream=False, prompt: str = "") -> dict:
    key = ANYONE
    if key_prefix:
        row = ApiKey.objects.filter(prefix=key_prefix).first()
        if row is None:
            return {"error": f"No key with prefix {key_prefix}"}
        key = KeyInfo(id=row.id, prefix=row.prefix, name=row.name, user_id=row.user_id, organisation_id=row.organisation_id,
                      allowed_models=tuple(row.allowed_models), residency=row.residency, expires_at=None)
    catalog = load_catalog()
    ctx = RequestContext(model=model, key_prefix=key.prefix, organisation_id=key.organisation_id, tags=parse_tags(tags, None),
                         tools=bool(tools), stream=bool(stream), prompt_tokens=(len(prompt) + 3) // 4)
    try:
        plan = plan_route(catalog, model, key, ctx=ctx)
    except ApiError as exc:
        return {"error": exc.message}
    rule = next((r for r in catalog.rules if r.name == plan.rule), None)
    return {
        "rule": plan.rule,
        "strategy": rule.strategy if rule else "direct",
        "targets": [{"model": t.label, "state": _describe(t.label)} for t in plan.targets],
    }


def _describe(target: str) -> str:
    st = state.state(target)
    return "circuit open" if st.open_until else "closed"
