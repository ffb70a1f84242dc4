"""Key restrictions (allowed models) and residency hold on every path: rules, aliases, explicit
names and fallbacks (issue 3, "Precedence" and the data-residency constraint)."""

import httpx
import pytest

from .conftest import key_prefix, unique_model

GIGACHAT_CHAT = "/api/v1/chat/completions"


def post(gw, model, key) -> httpx.Response:
    return httpx.post(
        gw.v1 + "/chat/completions",
        headers={"authorization": f"Bearer {gw.keys[key]}"},
        timeout=30,
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def test_a_key_allowed_only_tbank_cannot_reach_gigachat_through_a_rule(router_gateway, rules, ledgers):
    model = unique_model("charlie-gigachat")
    rules.create(name="t-charlie-gigachat", match_model=model, targets=[{"model": "gigachat/GigaChat-2"}])
    rules.settle()

    r = post(router_gateway, model, "charlie")

    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert ledgers.calls("gigachat") == 0


def test_a_key_allowed_only_tbank_uses_only_the_tbank_targets_of_a_rule_even_when_they_fail(
    router_gateway, rules, ledgers, faults
):
    model = unique_model("charlie-mixed")
    rules.create(
        name="t-charlie-mixed",
        match_model=model,
        targets=[{"model": "gigachat/GigaChat-2"}, {"model": "tbank/t-tech/T-lite-it-2.1"}, {"model": "mts/mws-gpt-alpha"}],
    )
    rules.settle()

    ok = post(router_gateway, model, "charlie")
    assert ok.status_code == 200 and ok.headers["x-xrouter-route"] == "t-charlie-mixed;tbank/t-tech/T-lite-it-2.1"

    faults("tbank", path="/v1/chat/completions", status=500, count=1)
    failed = post(router_gateway, model, "charlie")
    assert failed.status_code == 502
    assert ledgers.calls("gigachat") == 0 and ledgers.calls("mts") == 0


def test_a_rule_on_a_name_the_key_may_use_does_not_widen_the_key_to_other_providers(router_gateway, rules, ledgers, faults):
    """An operator's fallback rule for an explicit T-Bank model (T-Bank first, GigaChat if it fails):
    charlie's key names `tbank/*`, so when T-Bank fails charlie must get T-Bank's error, not GigaChat."""
    rules.create(
        name="t-charlie-tbank-fallback",
        match_model="tbank/t-tech/T-pro-it-2.0",
        match_keys=[key_prefix(router_gateway.keys["charlie"])],
        targets=[{"model": "tbank/t-tech/T-pro-it-2.0"}, {"model": "gigachat/GigaChat-2"}],
    )
    rules.settle()
    faults("tbank", path="/v1/chat/completions", status=500, count=1)

    r = post(router_gateway, "tbank/t-tech/T-pro-it-2.0", "charlie")

    assert ledgers.calls("gigachat") == 0, r.headers.get("x-xrouter-route")
    assert r.status_code == 502


def test_a_rule_that_matches_a_key_prefix_applies_to_that_key_only(router_gateway, rules):
    model = unique_model("by-key")
    rules.create(
        name="t-by-key-charlie",
        priority=1,
        match_model=model,
        match_keys=[key_prefix(router_gateway.keys["charlie"])],
        targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}],
    )
    rules.create(name="t-by-key-others", priority=2, match_model=model, targets=[{"model": "mts/mws-gpt-alpha"}])
    rules.settle()

    assert post(router_gateway, model, "charlie").headers["x-xrouter-route"] == "t-by-key-charlie;tbank/t-tech/T-lite-it-2.1"
    assert post(router_gateway, model, "alice").headers["x-xrouter-route"] == "t-by-key-others;mts/mws-gpt-alpha"


def test_a_ru_resident_rule_never_falls_back_to_a_foreign_model(router_gateway, rules, ledgers, faults):
    model = unique_model("residency")
    rules.create(
        name="t-residency",
        match_model=model,
        residency="RU",
        retries=1,
        targets=[{"model": "gigachat/GigaChat-2-Max"}, {"model": "mts/gpt-4o"}],
    )
    rules.settle()
    faults("gigachat", path=GIGACHAT_CHAT, status=500, count=2)

    r = post(router_gateway, model, "alice")

    assert r.status_code == 502  # GigaChat's error, not an answer from the US-hosted model
    assert "gigachat" in r.json()["error"]["message"].lower()
    assert ledgers.calls("mts") == 0
    assert ledgers.calls("gigachat", "GigaChat-2-Max") == 2


def test_a_ru_resident_rule_whose_only_target_is_foreign_is_refused(router_gateway, rules, ledgers):
    model = unique_model("residency-only-us")
    rules.create(name="t-residency-only-us", match_model=model, residency="RU", targets=[{"model": "mts/gpt-4o"}])
    rules.settle()

    r = post(router_gateway, model, "alice")

    assert r.status_code == 403 and r.json()["error"]["code"] == "residency_violation"
    assert ledgers.calls("mts") == 0


@pytest.mark.parametrize("model", ["mts/gpt-4o", "rule"], ids=["explicit", "through-a-rule"])
def test_a_ru_resident_key_never_reaches_a_foreign_model(router_gateway, rules, ledgers, faults, model):
    if model == "rule":
        model = unique_model("resident-key")
        rules.create(
            name="t-resident-key", match_model=model, targets=[{"model": "gigachat/GigaChat-2-Max"}, {"model": "mts/gpt-4o"}]
        )
        rules.settle()
        faults("gigachat", path=GIGACHAT_CHAT, status=500, count=1)
        assert post(router_gateway, model, "resident").status_code == 502
    else:
        r = post(router_gateway, model, "resident")
        assert r.status_code == 403 and r.json()["error"]["code"] == "residency_violation"
    assert ledgers.calls("mts") == 0


def test_a_ru_resident_key_may_use_an_alias_that_lands_in_russia(router_gateway):
    r = post(router_gateway, "gpt-4o", "resident")  # demo alias → gigachat/GigaChat-2-Max

    assert r.status_code == 200 and r.headers["x-xrouter-route"] == "alias:gpt-4o;gigachat/GigaChat-2-Max"
