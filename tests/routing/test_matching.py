"""Which rule a request matches: priority, enable/disable, globs, tags (header or metadata),
tools, streaming, prompt size, and rules before aliases (issue 3, "Rules" and "Precedence")."""

import uuid

import httpx

from .conftest import unique_model

TBANK = "tbank/t-tech/T-lite-it-2.1"
MTS = "mts/mws-gpt-alpha"


def route(gw, body, **headers) -> str:
    r = httpx.post(
        gw.v1 + "/chat/completions",
        json={"messages": [{"role": "user", "content": "hi"}], **body},
        timeout=30,
        headers={"authorization": f"Bearer {gw.keys['alice']}", **headers},
    )
    assert r.status_code == 200, r.text
    if body.get("stream"):
        assert r.text.rstrip().endswith("data: [DONE]")
    return r.headers["x-xrouter-route"]


def test_rules_apply_by_priority_and_a_disabled_rule_is_skipped(router_gateway, rules):
    model = unique_model("priority")
    rules.create(name="t-prio-off", priority=1, enabled=False, match_model=model, targets=[{"model": "gigachat/GigaChat-2"}])
    rules.create(name="t-prio-second", priority=20, match_model=model, targets=[{"model": MTS}])
    rules.create(name="t-prio-first", priority=10, match_model=model, targets=[{"model": TBANK}])
    rules.settle()

    assert route(router_gateway, {"model": model}) == f"t-prio-first;{TBANK}"


def test_a_glob_rule_matches_every_name_under_it(router_gateway, rules):
    prefix = f"test/glob-{uuid.uuid4().hex[:6]}"
    rules.create(name="t-glob", match_model=prefix + "/*", targets=[{"model": TBANK}])
    rules.settle()

    assert route(router_gateway, {"model": prefix + "/anything"}) == f"t-glob;{TBANK}"
    assert route(router_gateway, {"model": prefix + "/else"}) == f"t-glob;{TBANK}"


def test_tags_from_the_header_or_from_metadata_select_a_rule(router_gateway, rules):
    model = unique_model("tags")
    rules.create(name="t-tags", priority=1, match_model=model, match_tags=["batch", "eu"], targets=[{"model": TBANK}])
    rules.create(name="t-tags-default", priority=2, match_model=model, targets=[{"model": MTS}])
    rules.settle()

    assert route(router_gateway, {"model": model}, **{"x-xrouter-tags": "eu, batch"}) == f"t-tags;{TBANK}"
    assert route(router_gateway, {"model": model, "metadata": {"tags": "batch,eu"}}) == f"t-tags;{TBANK}"
    assert route(router_gateway, {"model": model}, **{"x-xrouter-tags": "batch"}) == f"t-tags-default;{MTS}"  # every tag needed


def test_a_rule_can_match_streaming_tools_and_prompt_size(router_gateway, rules):
    model = unique_model("traits")
    rules.create(name="t-traits-stream", priority=1, match_model=model, match_stream=True, targets=[{"model": TBANK}])
    rules.create(name="t-traits-tools", priority=2, match_model=model, match_tools=True, targets=[{"model": TBANK}])
    rules.create(name="t-traits-long", priority=3, match_model=model, min_prompt_tokens=100, targets=[{"model": TBANK}])
    rules.create(name="t-traits-rest", priority=4, match_model=model, targets=[{"model": MTS}])
    rules.settle()
    tool = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}

    assert route(router_gateway, {"model": model, "stream": True}).startswith("t-traits-stream;")
    assert route(router_gateway, {"model": model, "tools": [tool]}).startswith("t-traits-tools;")
    long_prompt = [{"role": "user", "content": "x" * 600}]  # about 150 tokens
    assert route(router_gateway, {"model": model, "messages": long_prompt}).startswith("t-traits-long;")
    assert route(router_gateway, {"model": model}) == f"t-traits-rest;{MTS}"


def test_a_rule_on_an_alias_name_wins_over_the_alias(router_gateway, rules):
    tag = f"precedence-{uuid.uuid4().hex[:6]}"  # keeps this rule away from other tests' gpt-4o
    rules.create(name="t-alias-override", match_model="gpt-4o", match_tags=[tag], targets=[{"model": TBANK}])
    rules.settle()

    assert route(router_gateway, {"model": "gpt-4o"}, **{"x-xrouter-tags": tag}) == f"t-alias-override;{TBANK}"
    assert route(router_gateway, {"model": "gpt-4o"}) == "alias:gpt-4o;gigachat/GigaChat-2-Max"
