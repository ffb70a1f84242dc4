"""The rule tester's answer against the router's real choice: for each case, explain_route (the admin's
rule tester, in this process) and a real request through a running gateway (its x-xrouter-route header,
or its error code) must agree on the rule and the first target."""

import httpx
import pytest

from tests.routing.conftest import Rules, key_prefix, router_gateway, unique_model  # noqa: F401 (fixture)

GIGA, MAX, LITE = "gigachat/GigaChat-2", "gigachat/GigaChat-2-Max", "yandexgpt/yandexgpt-lite"
MTS, TBANK, GPT4O = "mts/mws-gpt-alpha", "tbank/t-tech/T-lite-it-2.1", "mts/gpt-4o"

# Each case: the rules made for it (their match_model is the case's own model name, "{m}"), breakers set by
# hand, and the request. {"rule", "target"} or {"code"} is what both must answer.
CASES = {
    "first-by-priority": dict(rules=[dict(name="t-tbl-a", priority=2, targets=[MTS]),
                                     dict(name="t-tbl-b", priority=1, targets=[TBANK, MTS])],
                              want={"rule": "t-tbl-b", "target": TBANK}),
    "disabled-rule-skipped": dict(rules=[dict(name="t-tbl-off", priority=1, enabled=False, targets=[MTS]),
                                         dict(name="t-tbl-on", priority=2, targets=[TBANK])],
                                  want={"rule": "t-tbl-on", "target": TBANK}),
    "tags": dict(rules=[dict(name="t-tbl-tag", priority=1, match_tags=["batch"], targets=[MTS]),
                        dict(name="t-tbl-notag", priority=2, targets=[TBANK])],
                 tags="batch, night", want={"rule": "t-tbl-tag", "target": MTS}),
    "tags-missing": dict(rules=[dict(name="t-tbl-tag", priority=1, match_tags=["batch"], targets=[MTS]),
                                dict(name="t-tbl-notag", priority=2, targets=[TBANK])],
                         want={"rule": "t-tbl-notag", "target": TBANK}),
    "stream": dict(rules=[dict(name="t-tbl-stream", priority=1, match_stream=True, targets=[MTS]),
                          dict(name="t-tbl-plain", priority=2, targets=[TBANK])],
                   stream=True, want={"rule": "t-tbl-stream", "target": MTS}),
    "prompt-size": dict(rules=[dict(name="t-tbl-big", priority=1, min_prompt_tokens=500, targets=[GIGA]),
                               dict(name="t-tbl-small", priority=2, targets=[TBANK])],
                        prompt=4000, want={"rule": "t-tbl-big", "target": GIGA}),
    "key-match": dict(rules=[dict(name="t-tbl-key", priority=1, match_keys=["<charlie>"], targets=[TBANK]),
                             dict(name="t-tbl-any", priority=2, targets=[MTS])],
                      key="alice", want={"rule": "t-tbl-any", "target": MTS}),
    "access": dict(rules=[dict(name="t-tbl-access", targets=[MTS, TBANK])],
                   key="charlie", want={"rule": "t-tbl-access", "target": TBANK}),
    "access-refused": dict(rules=[dict(name="t-tbl-refused", targets=[MTS])], key="charlie",
                           want={"code": "model_not_allowed"}),
    "residency": dict(rules=[dict(name="t-tbl-res", targets=[GPT4O, MTS])], key="resident",
                      want={"rule": "t-tbl-res", "target": MTS}),
    "residency-refused": dict(rules=[dict(name="t-tbl-res-only", targets=[GPT4O])], key="resident",
                              want={"code": "residency_violation"}),
    "context-window": dict(rules=[dict(name="t-tbl-ctx", targets=[LITE, GIGA])], prompt=160_000,
                           want={"rule": "t-tbl-ctx", "target": GIGA}),
    "breaker-by-hand": dict(rules=[dict(name="t-tbl-hand", targets=[MTS, TBANK])], breakers={MTS: True},
                            want={"rule": "t-tbl-hand", "target": TBANK}),
    "provider-breaker-by-hand": dict(rules=[dict(name="t-tbl-prov", targets=[MTS, TBANK])], breakers={"mts": True},
                                     want={"rule": "t-tbl-prov", "target": TBANK}),
    "every-target-open": dict(rules=[dict(name="t-tbl-dark", targets=[MTS])], breakers={"mts": True},
                              want={"code": "no_healthy_target"}),
    "alias": dict(rules=[], model="gpt-4o-mini", want={"rule": "alias:gpt-4o-mini", "target": GIGA}),
    "direct": dict(rules=[], model=MAX, want={"rule": "direct", "target": MAX}),
}


@pytest.fixture
def made(django_db_blocker):
    """Rules and hand-set breakers for one case, removed after it."""
    from apps.providers.services import config_announce
    from apps.routing.models import ManualBreaker

    rules = Rules(django_db_blocker)
    breakers = []

    def breaker(target, is_open):
        with django_db_blocker.unblock():
            ManualBreaker.objects.update_or_create(target=target, defaults={"open": is_open, "reason": "test"})
            config_announce()
        breakers.append(target)

    yield rules, breaker
    rules.delete_all()
    with django_db_blocker.unblock():
        ManualBreaker.objects.filter(target__in=breakers).delete()
        config_announce()


def real_choice(gw, model, key, tags, stream, prompt_chars) -> dict:
    headers = {"authorization": f"Bearer {key}", **({"x-xrouter-tags": tags} if tags else {})}
    body = {"model": model, "messages": [{"role": "user", "content": "x" * prompt_chars}], "stream": stream}
    r = httpx.post(gw.v1 + "/chat/completions", json=body, headers=headers, timeout=30)
    if r.status_code != 200:
        return {"code": r.json()["error"]["code"]}
    rule, _, target = r.headers["x-xrouter-route"].partition(";")
    return {"rule": rule, "target": target}


def explained_choice(django_db_blocker, model, key, tags, stream, prompt_chars) -> tuple[dict, dict]:
    from apps.routing.selectors import explain_route

    with django_db_blocker.unblock():
        result = explain_route(model=model, key_prefix=key_prefix(key), tags=tags, stream=stream, prompt="x" * prompt_chars)
    if result.get("error"):
        return {"code": result["code"]}, result
    return {"rule": result["rule"] or "direct", "target": result["targets"][0]["model"]}, result


@pytest.mark.parametrize("name", list(CASES))
def test_the_rule_tester_answers_what_the_router_really_does(name, router_gateway, made, django_db_blocker):  # noqa: F811
    case = CASES[name]
    rules, breaker = made
    model = case.get("model") or unique_model(name)
    for spec in case["rules"]:
        spec = dict(spec)
        spec["targets"] = [{"model": t} for t in spec["targets"]]
        spec["match_keys"] = [key_prefix(router_gateway.keys[k.strip("<>")]) for k in spec.get("match_keys", ())]
        rules.create(match_model=model, **spec)
    for target, is_open in case.get("breakers", {}).items():
        breaker(target, is_open)
    rules.settle()
    key = router_gateway.keys[case.get("key", "alice")]
    request = (model, key, case.get("tags", ""), case.get("stream", False), case.get("prompt", 5))

    tester, explained = explained_choice(django_db_blocker, *request)
    real = real_choice(router_gateway, *request)

    assert tester == real == case["want"], explained
