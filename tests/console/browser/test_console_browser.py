"""The operator console in headless Chromium against a served gateway: the admin index's overview, the
routing rule editor (target rows added by its script, keys picked in the two-list selector, an error
naming the field) and the rule tester. Every page is checked for script errors (the admin's CSP allows no
inline script)."""

import datetime
import uuid
from decimal import Decimal

import pytest
from django.db import connections
from django.utils import timezone

PASSWORD = "console-browser-password-42"


@pytest.fixture
def operator(django_db_blocker, portal):
    """A superuser with a password, usage in the last hour, a health check with a balance and an open alert
    (all committed: the served process reads them); removed afterwards."""
    from apps.alerts.models import Alert
    from apps.providers.models import HealthCheck, Provider
    from apps.routing.models import RoutingRule
    from apps.routing.services import rules_delete
    from apps.usage.models import UsageRecord

    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        from apps.accounts.models import User
        from apps.keys.services import key_create

        user = User.objects.create_superuser(f"op-{tag}", f"op-{tag}@example.com", PASSWORD)
        key, _ = key_create(user=user, name="ru-only", residency="RU")
        now = timezone.now()
        for i, status in enumerate(["ok", "ok", "ok", "error"]):
            UsageRecord.objects.create(request_id=f"console-{tag}-{i}", provider="mts", model="mws-gpt-alpha",
                                       status=status, latency_ms=100.0 * (i + 1), cost=Decimal("2.5"),
                                       created_at=now - datetime.timedelta(minutes=i + 1))
        check = HealthCheck.objects.create(provider=Provider.objects.get(name="gigachat"), ok=True, latency_ms=20,
                                           balance={"GigaChat": 987654.0})
        alert = Alert.objects.create(fingerprint=f"console-{tag}", name=f"ConsoleTestAlert{tag}", status=Alert.FIRING,
                                     severity="warning", summary="raised by the console test", starts_at=now)
    connections.close_all()
    yield user, tag, key
    with django_db_blocker.unblock():
        UsageRecord.objects.filter(request_id__startswith=f"console-{tag}").delete()
        check.delete()
        alert.delete()
        rules_delete(RoutingRule.objects.filter(name__startswith=f"console-{tag}"))
        key.delete()
        user.delete()
    connections.close_all()


@pytest.fixture
def admin_page(page_for, portal, operator):
    user = operator[0]
    page = page_for("en")
    page.errors = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda m: "Content Security Policy" in m.text and page.errors.append(m.text))
    page.goto(portal.base_url + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.locator("form button.primary[type=submit]").click()
    page.wait_for_load_state()
    return page


def test_the_admin_index_shows_the_overview(admin_page, portal, operator):
    _, tag, _ = operator
    page = admin_page
    page.goto(portal.base_url + "/admin/")

    mts = page.locator('#provider-status tr[data-provider="mts"]')
    cells = mts.locator("td")
    assert int(cells.nth(3).inner_text()) >= 4  # this test's four requests in the last hour, maybe others'
    assert cells.nth(4).inner_text().strip().endswith("%")
    assert "/" in cells.nth(5).inner_text()  # p50 / p95
    assert "987654" in page.locator('#provider-status tr[data-provider="gigachat"] td.balance').inner_text()
    assert "OK" in page.locator('#provider-status tr[data-provider="gigachat"] td').nth(2).inner_text()
    assert f"ConsoleTestAlert{tag}" in page.locator("#open-alerts").inner_text()
    assert "requests" in page.locator("#figure-hour").inner_text()
    assert page.locator("#top-keys").is_visible() and page.locator("#top-organisations").is_visible()
    assert page.errors == []


def test_a_rule_is_edited_with_rows_and_pickers_and_a_bad_weight_is_named(admin_page, portal, operator, django_db_blocker):
    _, tag, key = operator
    page = admin_page
    prefix = key.prefix
    page.goto(portal.base_url + "/admin/routing/routingrule/add/")
    page.fill("#id_name", f"console-{tag}")
    page.fill("#id_match_model", f"console/{tag}")
    page.select_option('select[name="targets-0-model"]', "mts/mws-gpt-alpha")
    page.click("button.xr-add-target")  # the form's script adds a second row
    page.select_option('select[name="targets-1-model"]', "tbank/t-tech/T-lite-it-2.1")
    page.fill('input[name="targets-1-weight"]', "heavy")
    page.fill('input[name="targets-1-timeout"]', "15")
    page.dblclick(f'#id_match_keys_from option[value="{prefix}"]')  # the two-list selector moves it across
    page.fill("#id_match_tags", "night, batch")
    page.click('input[name="_save"]')

    error = page.locator(".field-targets .errorlist").inner_text()
    assert "targets[1].weight" in error
    page.fill('input[name="targets-1-weight"]', "2")
    page.click('input[name="_save"]')
    page.wait_for_url("**/admin/routing/routingrule/")

    with django_db_blocker.unblock():
        from apps.routing.models import RoutingRule

        rule = RoutingRule.objects.get(name=f"console-{tag}")
    connections.close_all()
    assert rule.targets == [{"model": "mts/mws-gpt-alpha"}, {"model": "tbank/t-tech/T-lite-it-2.1", "weight": 2, "timeout": 15}]
    assert rule.match_keys == [prefix] and rule.match_tags == ["batch", "night"]
    assert page.errors == []


def test_the_rule_tester_shows_the_match_the_order_and_the_reasons(admin_page, portal, operator, django_db_blocker):
    _, tag, key = operator
    page = admin_page
    with django_db_blocker.unblock():
        from apps.routing.models import RoutingRule
        from apps.routing.services import rule_save

        rule_save(RoutingRule(name=f"console-{tag}-tagged", priority=1, match_model=f"console/{tag}", match_tags=["batch"],
                              targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}]))
        rule_save(RoutingRule(name=f"console-{tag}-default", priority=2, match_model=f"console/{tag}",
                              targets=[{"model": "mts/gpt-4o"}, {"model": "mts/mws-gpt-alpha"},
                                       {"model": "gigachat/GigaChat-2"}]))
    connections.close_all()
    page.goto(portal.base_url + "/admin/routing/routingrule/")
    page.click("text=Rule tester")
    page.fill("#id_model", f"console/{tag}")
    page.fill("#id_key_prefix", key.prefix)
    page.fill("#id_tags", "night")
    page.fill("#id_prompt_tokens", "100")
    page.click('input[type=submit][value="Show the route"]')

    assert f"console-{tag}-default" in page.locator("#route-rule").inner_text()
    targets = page.locator("#route-targets li").all_inner_texts()
    assert [t.split(" — ")[0] for t in targets] == ["mts/mws-gpt-alpha", "gigachat/GigaChat-2"]
    skipped = page.locator("#route-skipped").inner_text()
    assert "mts/gpt-4o" in skipped and "residency: hosted in US, the request needs RU" in skipped
    verdicts = dict(zip(page.locator("#route-rules td:first-child").all_inner_texts(),
                        page.locator("#route-rules td:nth-child(2)").all_inner_texts(), strict=True))
    assert "lack ['batch']" in verdicts[f"console-{tag}-tagged"]
    assert verdicts[f"console-{tag}-default"] == "matched"
    assert page.errors == []
