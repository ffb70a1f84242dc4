"""Operators' side of routing: the admin's "test this route" view, rule validation in the
admin, and rules in import_config / export_config (issue 3, "Rules")."""

import re
import time

import pytest
import yaml
from django.core.management import CommandError, call_command
from django.test import Client

from .conftest import key_prefix, unique_model

TEST_ROUTE_URL = "/admin/routing/routingrule/test-route/"

RULES_YAML = """
rules:
  - name: default-chat
    priority: 10
    match: {model: "xrouter/auto"}
    strategy: fallback
    targets:
      - {model: gigachat/GigaChat-2-Max, weight: 3, timeout: 30}
      - {model: yandexgpt/yandexgpt-lite, weight: 1}
    retries: 1
    fallback_on: [5xx, 429, timeout, connection]
    cache: {ttl: 300}
  - name: tagged-cheap
    priority: 20
    enabled: false
    match: {model: "xrouter/*", key: [abcd1234], organisation: [7], tags: [batch], tools: false, stream: true,
            min_prompt_tokens: 10, max_prompt_tokens: 5000}
    strategy: cheapest
    targets:
      - {model: tbank/t-tech/T-lite-it-2.1}
      - {model: mts/mws-gpt-alpha, weight: 2}
    deadline: 12.5
    residency: RU
    context_fallback: false
"""


@pytest.fixture
def operator(django_db_blocker, gateway):
    """A superuser's admin session (committed, so the admin sees the demo config)."""
    from apps.accounts.models import User

    with django_db_blocker.unblock():
        user, _ = User.objects.get_or_create(username="route-operator", defaults={"is_staff": True, "is_superuser": True})
        client = Client()
        client.force_login(user)
    return client


def test_the_route_test_view_shows_the_rule_and_ordered_targets_without_calling_a_provider(
    operator, rules, ledgers, django_db_blocker
):
    model = unique_model("admin-view")
    rules.create(
        name="t-admin-view",
        match_model=model,
        strategy="fallback",
        targets=[
            {"model": "yandexgpt/yandexgpt-lite"},
            {"model": "gigachat/GigaChat-2-Max"},
            {"model": "tbank/t-tech/T-lite-it-2.1"},
        ],
    )
    # Wait until the emulators are quiet (an earlier test's call may still be landing in a ledger).
    before, deadline = ledgers.snapshot(), time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.3)
        now = ledgers.snapshot()
        if now == before:
            break
        before = now

    with django_db_blocker.unblock():
        page = operator.post(TEST_ROUTE_URL, {"model": model, "prompt": "hello"})

    assert page.status_code == 200
    html = page.content.decode()
    assert "<strong>t-admin-view</strong>" in html
    listed = re.findall(r"<li>([^<]+?) — ", html.split('id="route-targets"')[1])
    assert listed == ["yandexgpt/yandexgpt-lite", "gigachat/GigaChat-2-Max", "tbank/t-tech/T-lite-it-2.1"]
    assert ledgers.snapshot() == before


def test_the_route_test_view_applies_the_keys_restrictions(operator, rules, gateway, django_db_blocker):
    model = unique_model("admin-view-key")
    rules.create(name="t-admin-view-key", match_model=model, targets=[{"model": "gigachat/GigaChat-2"}])

    with django_db_blocker.unblock():
        page = operator.post(TEST_ROUTE_URL, {"model": model, "key_prefix": key_prefix(gateway.keys["charlie"])})

    assert page.status_code == 200
    assert "may not use the model" in page.content.decode()


def test_the_route_test_view_refuses_anonymous_visitors(django_db_blocker):
    with django_db_blocker.unblock():
        page = Client().post(TEST_ROUTE_URL, {"model": "xrouter/auto"})

    assert page.status_code == 302 and "/login/" in page["location"]


def test_the_admin_refuses_a_rule_whose_target_model_does_not_exist(operator, django_db_blocker):
    from apps.routing.models import RoutingRule
    from apps.routing.services import rules_delete

    form = {
        "name": "t-admin-bad-target",
        "priority": "5",
        "enabled": "on",
        "match_model": "test/admin-bad",
        "match_tags": "",
        "match_tools": "unknown",
        "match_stream": "unknown",
        "strategy": "fallback",
        # the targets' rows (apps/routing/forms.py): a model picker, a weight, a timeout each
        "targets-rows": "1",
        "targets-0-model": "gigachat/NoSuchModel",
        "retries": "0",
        "fallback_on": ["5xx"],
        "residency": "",
        "context_fallback": "on",
    }
    with django_db_blocker.unblock():
        page = operator.post("/admin/routing/routingrule/add/", form)
        created = RoutingRule.objects.filter(name="t-admin-bad-target").exists()
        rules_delete(RoutingRule.objects.filter(name="t-admin-bad-target"))

    assert not created, "import_config refuses this target; the admin must too (same validation)"
    assert page.status_code == 200 and "NoSuchModel" in page.content.decode()


def test_the_admin_saves_a_valid_rule(operator, django_db_blocker):
    from apps.routing.models import RoutingRule
    from apps.routing.services import rules_delete

    form = {
        "name": "t-admin-good",
        "priority": "5",
        "enabled": "on",
        "match_model": "test/admin-good",
        "match_tags": "",
        "match_tools": "unknown",
        "match_stream": "unknown",
        "strategy": "weighted",
        "targets-rows": "3",
        "targets-0-model": "gigachat/GigaChat-2",
        "targets-0-weight": "2",
        "targets-1-model": "tbank/t-tech/T-lite-it-2.1",
        "targets-2-model": "",  # the blank row under the others
        "retries": "1",
        "fallback_on": ["5xx", "429"],
        "residency": "",
        "context_fallback": "on",
    }
    with django_db_blocker.unblock():
        page = operator.post("/admin/routing/routingrule/add/", form)
        rule = RoutingRule.objects.filter(name="t-admin-good").first()
        rules_delete(RoutingRule.objects.filter(name="t-admin-good"))

    assert page.status_code == 302, page.content.decode()[:2000]
    assert rule.targets[0] == {"model": "gigachat/GigaChat-2", "weight": 2} and rule.strategy == "weighted"


# --- import_config / export_config -------------------------------------------------------------


def import_yaml(tmp_path, text: str) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    call_command("import_config", str(path))
    return str(path)


def rule_rows() -> dict:
    from apps.routing.models import RoutingRule

    return {r["name"]: r for r in RoutingRule.objects.values().order_by("name")}


@pytest.mark.django_db
def test_import_config_creates_rules_from_the_issue_shape(gateway, tmp_path):
    from apps.routing.models import RoutingRule

    import_yaml(tmp_path, RULES_YAML)

    rule = RoutingRule.objects.get(name="default-chat")
    assert (rule.priority, rule.match_model, rule.strategy, rule.retries, rule.cache_ttl) == (
        10,
        "xrouter/auto",
        "fallback",
        1,
        300,
    )
    assert rule.targets == [
        {"model": "gigachat/GigaChat-2-Max", "weight": 3, "timeout": 30},
        {"model": "yandexgpt/yandexgpt-lite", "weight": 1},
    ]
    assert rule.fallback_on == ["5xx", "429", "timeout", "connection"]
    other = RoutingRule.objects.get(name="tagged-cheap")
    assert (other.enabled, other.match_keys, other.match_organisations, other.match_tags) == (False, ["abcd1234"], [7], ["batch"])
    assert (other.match_tools, other.match_stream, other.min_prompt_tokens, other.max_prompt_tokens) == (False, True, 10, 5000)
    assert (other.deadline, other.residency, other.context_fallback) == (12.5, "RU", False)


@pytest.mark.django_db
def test_import_config_is_idempotent(gateway, tmp_path):
    import_yaml(tmp_path, RULES_YAML)
    first = rule_rows()
    import_yaml(tmp_path, RULES_YAML)

    again = rule_rows()
    assert {n: {k: v for k, v in r.items() if k != "updated_at"} for n, r in again.items()} == {
        n: {k: v for k, v in r.items() if k != "updated_at"} for n, r in first.items()
    }


BAD_RULES = {
    "unknown-strategy": (
        """
rules:
  - name: good-one
    targets: [{model: tbank/t-tech/T-lite-it-2.1}]
  - name: bad-one
    strategy: fastest
    targets: [{model: tbank/t-tech/T-lite-it-2.1}]
""",
        "rules.1.strategy",
    ),
    "missing-model-in-database": (
        """
rules:
  - name: good-one
    targets: [{model: tbank/t-tech/T-lite-it-2.1}]
  - name: bad-one
    targets: [{model: tbank/t-tech/T-lite-it-2.1}, {model: gigachat/NoSuchModel}]
""",
        "rules.1.targets.1.model",
    ),
    "missing-model-in-the-file": (
        """
providers:
  extra:
    kind: openai_compatible
    base_url: http://127.0.0.1:9/v1
    models: {only-model: {}}
rules:
  - name: bad-one
    targets: [{model: extra/other-model}]
""",
        "rules.0.targets.0.model",
    ),
    "unknown-target-key": (
        """
rules:
  - name: bad-one
    targets: [{model: tbank/t-tech/T-lite-it-2.1, wieght: 3}]
""",
        "rules.0.targets.0.wieght",
    ),
    "unknown-failure-class": (
        """
rules:
  - name: bad-one
    targets: [{model: tbank/t-tech/T-lite-it-2.1}]
    fallback_on: [5xx, sometimes]
""",
        "rules.0.fallback_on.1",
    ),
    "no-targets": (
        """
rules:
  - name: bad-one
    targets: []
""",
        "rules.0.targets",
    ),
}


@pytest.mark.django_db
@pytest.mark.parametrize("case", list(BAD_RULES), ids=list(BAD_RULES))
def test_import_config_refuses_a_bad_rule_naming_the_field_and_changes_nothing(gateway, tmp_path, case):
    from apps.providers.models import Provider

    text, field_path = BAD_RULES[case]
    before = rule_rows()

    with pytest.raises(CommandError) as caught:
        import_yaml(tmp_path, text)

    assert field_path in str(caught.value) and "nothing was changed" in str(caught.value)
    assert rule_rows() == before
    assert not Provider.objects.filter(name="extra").exists()


@pytest.mark.django_db
def test_export_config_round_trips_rules(gateway, tmp_path):
    from apps.routing.config_schema import parse_config
    from apps.routing.models import RoutingRule

    import_yaml(tmp_path, RULES_YAML)
    imported = rule_rows()
    out = tmp_path / "exported.yaml"
    call_command("export_config", "--output", str(out))

    exported = yaml.safe_load(out.read_text())
    by_name = {r["name"]: r for r in exported["rules"]}
    wanted = {r.name: r for r in parse_config(yaml.safe_load(RULES_YAML)).rules}
    for name, spec in wanted.items():
        assert parse_config({"rules": [by_name[name]]}).rules[0] == spec

    RoutingRule.objects.filter(name__in=list(wanted)).delete()
    import_yaml(tmp_path, yaml.safe_dump({"rules": [by_name[n] for n in wanted]}))

    def strip(rows):
        return {n: {k: v for k, v in r.items() if k not in ("id", "updated_at")} for n, r in rows.items() if n in wanted}

    assert strip(rule_rows()) == strip(imported)


@pytest.mark.django_db
def test_import_config_sets_an_organisations_limits_and_budget_and_export_gives_them_back(gateway, tmp_path):
    from decimal import Decimal

    from apps.accounts.models import Organisation

    Organisation.objects.create(name="Limited Org")
    import_yaml(tmp_path, """
organisations:
  Limited Org: {requests_rate: 100/min, tokens_per_month: 5000000, monthly_budget: "2500.50"}
""")
    org = Organisation.objects.get(name="Limited Org")
    assert (org.requests_rate, org.tokens_per_month, org.monthly_budget) == ("100/min", 5_000_000, Decimal("2500.50"))
    out = tmp_path / "exported.yaml"
    call_command("export_config", "--output", str(out))
    assert yaml.safe_load(out.read_text())["organisations"]["Limited Org"] == {
        "requests_rate": "100/min", "tokens_per_month": 5_000_000, "monthly_budget": "2500.50"}
    import_yaml(tmp_path, "organisations:\n  Limited Org: {monthly_budget: 10}\n")  # what is not listed is lifted
    org.refresh_from_db()
    assert (org.requests_rate, org.tokens_per_month, org.monthly_budget) == ("", None, Decimal("10"))
    for text, named in (("organisations:\n  Nobody Inc: {}\n", "organisations.Nobody Inc"),
                        ("organisations:\n  Limited Org: {requests_rate: often}\n", "requests_rate"),
                        ("organisations:\n  Limited Org: {monthly_budget: -1}\n", "monthly_budget")):
        with pytest.raises(CommandError, match=named):
            import_yaml(tmp_path, text)
    org.refresh_from_db()
    assert org.monthly_budget == Decimal("10")
