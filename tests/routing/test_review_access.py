"""Issue 8 review (item 2): an exact entry grants what it names, not whatever rule the request then matches.
Pure decisions on hand-built catalogs: no server, no database."""


from apps.common.errors import ApiError
from apps.routing.router import plan_route
from apps.routing.rules import RequestContext, Rule, TargetSpec
from tests.routing.test_access import catalog, key, targets


def tagged_rule(name, match_model, tags, *target_ids) -> Rule:
    return Rule(name=name, priority=0, match_model=match_model, match_tags=frozenset(tags),
                targets=tuple(TargetSpec(t) for t in target_ids))


def test_an_exact_alias_entry_does_not_grant_a_rule_the_client_selects_with_tags():
    # The operator limits a key to the alias "cheap" (GigaChat). A premium rule matches every model for
    # requests tagged "premium" and sends them to OpenAI: the client picks it with x-xrouter-tags.
    cat = catalog(rules=[tagged_rule("premium", "*", {"premium"}, "openai/gpt-4o")],
                  aliases={"cheap": "gigachat/GigaChat-2"})
    limited = key("cheap")
    assert targets(plan_route(cat, "cheap", limited)) == ["gigachat/GigaChat-2"]
    ctx = RequestContext(model="cheap", key_prefix=limited.prefix, tags=frozenset({"premium"}))
    try:
        plan = plan_route(cat, "cheap", limited, ctx=ctx)
    except ApiError as refused:
        assert refused.status == 403
    else:
        assert "openai/gpt-4o" not in targets(plan), "a key limited to 'cheap' was served by gpt-4o"


def test_an_exact_entry_naming_nothing_grants_no_catch_all_rule():
    cat = catalog(rules=[tagged_rule("default", "*", (), "openai/gpt-4o", "gigachat/GigaChat-2")])
    plan = plan_route(cat, "gigachat-typo", key("gigachat-typo", "gigachat/*"))
    assert targets(plan) == ["gigachat/GigaChat-2"]  # what the key's glob allows, and not gpt-4o
