"""Where policies are set: import_config/export_config for rules, the key service, the organisation API,
and what the key cache and the compiled rule carry to the request path."""

import pytest
from django.core.exceptions import ValidationError
from rest_framework.test import APIClient

from apps.common.personal_data import Policy

RULE = {"name": "pd-abroad", "match": {"model": "pd/*"}, "targets": [{"model": "mts/gpt-4o"}],
        "personal_data": {"policy": "pseudonymize", "names": True, "outside": "RU", "blocked_terms": ["insider"]}}


def test_rules_carry_their_policy_through_import_export_and_compilation(gateway, db):
    from apps.routing.config_schema import ConfigError, parse_config
    from apps.routing.models import RoutingRule
    from apps.routing.rules import Rule
    from apps.routing.services import _rule_export, config_import

    config_import(parse_config({"rules": [RULE]}))
    stored = RoutingRule.objects.get(name="pd-abroad")
    assert (stored.pd_policy, stored.pd_names, stored.pd_jurisdiction, stored.blocked_terms) == (
        "pseudonymize", True, "RU", ["insider"])
    assert _rule_export(stored)["personal_data"] == RULE["personal_data"]
    assert Rule.from_model(stored).policies == (Policy(mode="pseudonymize", names=True, terms=("insider",), outside="RU"),)
    with pytest.raises(ConfigError, match="personal_data.policy"):
        parse_config({"rules": [{**RULE, "personal_data": {"policy": "scramble"}}]})


def test_a_rule_without_a_policy_exports_none_and_compiles_to_nothing(db):
    from apps.routing.models import RoutingRule
    from apps.routing.rules import Rule
    from apps.routing.services import _rule_export

    rule = RoutingRule.objects.create(name="plain", targets=[{"model": "mts/gpt-4o"}])
    assert "personal_data" not in _rule_export(rule)
    assert Rule.from_model(rule).policies == ()


def test_the_cached_key_carries_the_key_and_organisation_policies(alice, acme, charlie):
    from apps.keys.selectors import _load
    from apps.keys.services import hash_key, key_create

    acme.pd_policy, acme.blocked_terms = "mask", ["secret"]
    acme.save()
    key, plaintext = key_create(user=alice, name="pd", organisation=acme, pd_policy="pseudonymize", pd_names=True)
    info = _load(key.prefix, hash_key(plaintext)).info
    assert info.policies == (Policy(mode="pseudonymize", names=True), Policy(mode="mask", terms=("secret",)))
    plain, text = key_create(user=charlie, name="plain")  # globex sets no policy
    assert _load(plain.prefix, hash_key(text)).info.policies == ()


def test_a_key_made_by_a_key_is_never_weaker_than_its_parent(alice):
    from apps.keys.services import key_create

    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "keys:manage"], pd_policy="redact",
                           blocked_terms=["a"])
    child, _ = key_create(user=alice, name="child", parent=parent, pd_policy="mask", blocked_terms=["b"])
    assert (child.pd_policy, child.blocked_terms) == ("redact", ["a", "b"])
    with pytest.raises(ValidationError):
        key_create(user=alice, name="bad", pd_policy="scramble")


def test_a_rotated_key_keeps_its_policy(alice):
    import datetime

    from apps.keys.services import key_create, key_rotate

    key, _ = key_create(user=alice, name="rotating", pd_policy="pseudonymize", pd_names=True, blocked_terms=["x"])
    new, _ = key_rotate(key, grace=datetime.timedelta(0))
    assert (new.pd_policy, new.pd_names, new.blocked_terms) == ("pseudonymize", True, ["x"])


def test_organisation_managers_set_the_policy_through_the_api_and_others_cannot(alice, bob, acme):
    client = APIClient()
    client.force_login(alice)
    r = client.patch(f"/api/v1/organisations/{acme.id}/", {"pd_policy": "redact", "pd_names": True,
                                                          "blocked_terms": ["insider"]}, format="json")
    assert r.status_code == 200, r.content
    assert (r.json()["pd_policy"], r.json()["blocked_terms"]) == ("redact", ["insider"])
    acme.refresh_from_db()
    assert (acme.pd_policy, acme.pd_names) == ("redact", True)
    client.force_login(bob)  # a developer of acme
    assert client.patch(f"/api/v1/organisations/{acme.id}/", {"pd_policy": "off"}, format="json").status_code == 403
    client.force_login(alice)
    assert client.patch(f"/api/v1/organisations/{acme.id}/", {"pd_policy": "nope"}, format="json").status_code == 400


def test_the_admin_edits_the_policy_of_keys_organisations_and_rules(admin_client, alice, acme, alice_key):
    from apps.keys.models import ApiKey
    from apps.routing.models import RoutingRule

    rule = RoutingRule.objects.create(name="pd-admin", targets=[{"model": "mts/gpt-4o"}])
    for url in (f"/admin/keys/apikey/{alice_key.key.id}/change/", f"/admin/accounts/organisation/{acme.id}/change/",
                f"/admin/routing/routingrule/{rule.id}/change/"):
        page = admin_client.get(url).content.decode()
        assert 'name="pd_policy"' in page and 'name="blocked_terms"' in page, url
    assert 'name="pd_jurisdiction"' in admin_client.get(f"/admin/routing/routingrule/{rule.id}/change/").content.decode()

    key = alice_key.key
    r = admin_client.post(f"/admin/keys/apikey/{key.id}/change/", {
        "user": key.user_id, "organisation": key.organisation_id or "", "name": key.name, "scopes": key.scopes,
        "allowed_models": "[]", "allowed_ips": "[]", "residency": "", "expires_at_0": "", "expires_at_1": "",
        "pd_policy": "redact", "pd_names": "on", "blocked_terms": '["insider"]'})
    assert r.status_code == 302, r.content.decode()[-3000:]
    key = ApiKey.objects.get(id=key.id)
    assert (key.pd_policy, key.pd_names, key.blocked_terms) == ("redact", True, ["insider"])


def test_a_key_is_created_with_a_policy_through_the_api(alice):
    client = APIClient()
    client.force_login(alice)
    r = client.post("/api/v1/keys/", {"name": "pd-api", "pd_policy": "pseudonymize", "blocked_terms": ["x"]},
                    format="json")
    assert r.status_code == 201, r.content
    assert (r.json()["pd_policy"], r.json()["pd_names"], r.json()["blocked_terms"]) == ("pseudonymize", False, ["x"])
    assert client.post("/api/v1/keys/", {"name": "bad", "pd_policy": "nope"}, format="json").status_code == 400
