"""The response cache's scope holds everything routing reads outside the body (issue 8 item 9):
two keys of one organisation, or one key with and without a tag, that a rule routes differently
never share an answer. Through a running gateway, and the key function on its own."""

import uuid
from decimal import Decimal

import httpx
import pytest

from apps.gateway import cache
from apps.keys.selectors import KeyInfo
from apps.routing.catalog import ModelEntry
from apps.routing.router import RoutePlan, Target

from .conftest import key_prefix

TBANK = "tbank/t-tech/T-lite-it-2.1"
GIGACHAT = "gigachat/GigaChat-2"


def ask(gw, key: str, body: dict, **headers) -> httpx.Response:
    r = httpx.post(gw.v1 + "/chat/completions", json=body, timeout=30,
                   headers={"authorization": f"Bearer {key}", **headers})
    assert r.status_code == 200, r.text
    return r


def fresh_body() -> dict:
    return {"model": TBANK, "temperature": 0, "messages": [{"role": "user", "content": f"scope {uuid.uuid4().hex}"}]}


@pytest.fixture
def org_keys(django_db_blocker):
    """Two keys of one organisation (dora's and erin's), as plaintext."""
    from apps.accounts.models import Organisation, User
    from apps.keys.services import key_create

    with django_db_blocker.unblock():
        org, _ = Organisation.objects.get_or_create(name=f"scope-org-{uuid.uuid4().hex[:6]}")
        dora, _ = User.objects.get_or_create(username=f"dora-{org.id}", defaults={"organisation": org})
        erin, _ = User.objects.get_or_create(username=f"erin-{org.id}", defaults={"organisation": org})
        _, first = key_create(user=dora, name="dora-scope")
        _, second = key_create(user=erin, name="erin-scope")
    return first, second


def test_a_rule_for_one_key_of_an_organisation_never_serves_the_other_keys_answer(router_gateway, rules, ledgers, org_keys):
    first, second = org_keys
    rules.create(name=f"t-scope-key-{uuid.uuid4().hex[:6]}", match_model=TBANK, match_keys=[key_prefix(first)],
                 targets=[{"model": GIGACHAT}])
    rules.settle()
    body = fresh_body()

    routed = ask(router_gateway, first, body)
    direct = ask(router_gateway, second, body)

    assert (routed.headers["x-xrouter-provider"], routed.headers["x-xrouter-cache"]) == ("gigachat", "miss")
    assert (direct.headers["x-xrouter-provider"], direct.headers["x-xrouter-cache"]) == ("tbank", "miss")
    assert ledgers.calls("tbank") == 1
    # Each key still hits its own entry.
    assert ask(router_gateway, second, body).headers["x-xrouter-cache"] == "hit"
    again = ask(router_gateway, first, body)
    assert (again.headers["x-xrouter-cache"], again.headers["x-xrouter-provider"]) == ("hit", "gigachat")


def test_a_tagged_request_routed_by_a_rule_never_serves_an_untagged_one(router_gateway, rules, ledgers, org_keys):
    first, _ = org_keys
    tag = f"scope-{uuid.uuid4().hex[:6]}"
    rules.create(name=f"t-scope-tag-{tag}", match_model=TBANK, match_tags=[tag], targets=[{"model": GIGACHAT}])
    rules.settle()
    body = fresh_body()

    tagged = ask(router_gateway, first, body, **{"x-xrouter-tags": tag})
    untagged = ask(router_gateway, first, body)

    assert tagged.headers["x-xrouter-provider"] == "gigachat"
    assert (untagged.headers["x-xrouter-provider"], untagged.headers["x-xrouter-cache"]) == ("tbank", "miss")
    assert ledgers.calls("tbank") == 1


# --- the key function, without a server ---------------------------------------------------------

def entry(public_id: str, jurisdiction: str = "RU") -> ModelEntry:
    provider, name = public_id.split("/", 1)
    return ModelEntry(provider=provider, name=name, kind="chat", input_price=Decimal(0), output_price=Decimal(0),
                      cached_input_price=Decimal(0), context_window=None, jurisdiction=jurisdiction, created=0)


def plan(*targets: str, rule: str = "") -> RoutePlan:
    return RoutePlan(requested=targets[0], targets=[Target(model=entry(t), adapter=None) for t in targets], rule=rule)


def key(id=1, organisation_id=7, residency="", prefix="abcd1234") -> KeyInfo:
    return KeyInfo(id=id, prefix=prefix, name="k", user_id=1, organisation_id=organisation_id, allowed_models=(),
                   residency=residency, expires_at=None)


BODY = {"model": TBANK, "temperature": 0, "messages": [{"role": "user", "content": "hi"}]}


def test_the_cache_key_is_shared_only_where_routing_and_scope_agree():
    base = cache.cache_key(key(), plan(TBANK), BODY)

    # Two keys of one organisation, routed alike, share; key order and fields that are not part
    # of the answer do not matter.
    assert cache.cache_key(key(id=2, prefix="ffff0000"), plan(TBANK), BODY) == base
    reordered = {"messages": BODY["messages"], "temperature": 0, "model": TBANK, "stream": True, "metadata": {"a": "b"}}
    assert cache.cache_key(key(), plan(TBANK), reordered) == base

    different = {
        "another organisation": cache.cache_key(key(organisation_id=8), plan(TBANK), BODY),
        "no organisation": cache.cache_key(key(organisation_id=None), plan(TBANK), BODY),
        "a rule": cache.cache_key(key(), plan(TBANK, rule="gold"), BODY),
        "another rule": cache.cache_key(key(), plan(TBANK, rule="silver"), BODY),
        "another target": cache.cache_key(key(), plan(GIGACHAT), BODY),
        "a fallback target": cache.cache_key(key(), plan(TBANK, GIGACHAT), BODY),
        "the targets in another order": cache.cache_key(key(), plan(GIGACHAT, TBANK), BODY),
        "a residency": cache.cache_key(key(residency="RU"), plan(TBANK), BODY),
        "another body": cache.cache_key(key(), plan(TBANK), {**BODY, "max_tokens": 5}),
    }
    assert base not in different.values()
    assert len(set(different.values())) == len(different), different
    assert all(k.startswith(cache.PREFIX) for k in different.values())
