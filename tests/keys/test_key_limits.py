"""Limits on keys: set on the command line and through the management API, carried to the request
path parsed, and bounded by the parent's for a key-created key (the one rights check)."""

import asyncio
import datetime
from decimal import Decimal

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from apps.common.rates import Limits, Rate
from apps.keys.models import ApiKey
from apps.keys.selectors import akey_info_for
from apps.keys.services import key_create, key_update


@pytest.mark.django_db
def test_create_api_key_takes_rpm_tpm_and_concurrency(capsys):
    call_command("create_api_key", "--user", "bob", "--name", "limited", "--rpm", "50", "--tpm", "100000",
                 "--concurrency", "5", "--tokens-per-day", "1000000")
    key = ApiKey.objects.get(user__username="bob", name="limited")
    assert (key.requests_rate, key.tokens_rate, key.max_concurrent, key.tokens_per_day, key.tokens_per_month) == (
        "50/min", "100000/min", 5, 1_000_000, None)
    with pytest.raises(CommandError, match="--rpm"):
        call_command("create_api_key", "--user", "bob", "--rpm", "-1")


@pytest.mark.django_db
def test_create_api_key_takes_a_monthly_budget_in_roubles_and_a_cost_centre():
    call_command("create_api_key", "--user", "bob", "--name", "budgeted", "--budget", "1000", "--cost-centre", "R&D")
    key = ApiKey.objects.get(user__username="bob", name="budgeted")
    assert (key.monthly_budget, key.cost_centre) == (Decimal("1000.00"), "R&D")
    for bad in ("-5", "12.345", "lots", "NaN"):
        with pytest.raises(CommandError, match="budget"):
            call_command("create_api_key", "--user", "bob", "--budget", bad)


@pytest.mark.django_db
def test_a_child_key_never_exceeds_its_parents_limits(alice):
    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "keys:manage"], requests_rate="60/min",
                           max_concurrent=5)
    child, _ = key_create(user=alice, name="inherits", parent=parent)
    assert (child.requests_rate, child.max_concurrent) == ("60/min", 5)  # not given: the parent's
    narrower, _ = key_create(user=alice, name="narrower", parent=parent, requests_rate="1/s", max_concurrent=2,
                             tokens_per_day=500)
    assert (narrower.requests_rate, narrower.max_concurrent, narrower.tokens_per_day) == ("1/s", 2, 500)
    for wider in ({"requests_rate": "61/min"}, {"requests_rate": "2/s"}, {"requests_rate": ""},
                  {"requests_rate": "100/h"}, {"max_concurrent": 6}, {"max_concurrent": None}):
        with pytest.raises(PermissionDenied):
            key_create(user=alice, name="wider", parent=parent, **wider)
    with pytest.raises(ValidationError):
        key_create(user=alice, name="bad", parent=parent, requests_rate="lots")


@pytest.mark.django_db
def test_a_child_key_never_exceeds_its_parents_budget(alice):
    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "keys:manage"], monthly_budget=Decimal("1000"))
    assert key_create(user=alice, name="inherits", parent=parent)[0].monthly_budget == Decimal("1000")
    assert key_create(user=alice, name="smaller", parent=parent, monthly_budget="250.50")[0].monthly_budget == \
        Decimal("250.50")
    for wider in (Decimal("1000.01"), None, ""):
        with pytest.raises(PermissionDenied):
            key_create(user=alice, name="wider", parent=parent, monthly_budget=wider)
    child, _ = key_create(user=alice, name="child", parent=parent)
    child.monthly_budget = Decimal("5000")
    with pytest.raises(PermissionDenied):
        key_update(child, ["monthly_budget"])


@pytest.mark.django_db
def test_editing_a_child_key_keeps_it_within_its_parent(alice):
    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "keys:manage"], tokens_rate="1000/min")
    child, _ = key_create(user=alice, name="child", parent=parent)
    child.tokens_rate = "5000/min"
    with pytest.raises(PermissionDenied):
        key_update(child, ["tokens_rate"])


def test_rates_compare_over_any_stretch_of_time():
    assert Rate(1, 1).within(Rate(60, 60)) and not Rate(2, 1).within(Rate(60, 60))
    assert Rate(60, 3600).within(Rate(60, 60)) and not Rate(61, 3600).within(Rate(60, 60))
    assert Rate(30, 60).within(Rate(30, 60)) and not Rate(30, 7).within(Rate(30, 60))


@pytest.mark.django_db
def test_the_management_api_sets_limits_within_the_calling_keys(alice):
    _, plaintext = key_create(user=alice, name="admin-key", scopes=["chat", "keys:manage"], requests_rate="100/min")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    created = api.post("/api/v1/keys/", {"name": "svc", "requests_rate": "10/min", "tokens_rate": "5000/min",
                                         "max_concurrent": 3}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert (body["requests_rate"], body["tokens_rate"], body["max_concurrent"]) == ("10/min", "5000/min", 3)
    assert api.post("/api/v1/keys/", {"name": "greedy", "requests_rate": "1000/min"}, format="json").status_code == 403
    bad = api.post("/api/v1/keys/", {"name": "bad", "requests_rate": "often"}, format="json")
    assert bad.status_code == 400 and "60/min" in bad.content.decode()


@pytest.mark.django_db
def test_the_management_api_sets_budgets_within_the_calling_keys(alice):
    _, plaintext = key_create(user=alice, name="admin-key", scopes=["chat", "keys:manage"],
                              monthly_budget=Decimal("500"))
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    created = api.post("/api/v1/keys/", {"name": "svc", "monthly_budget": "99.90", "cost_centre": "marketing"},
                       format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["monthly_budget"], created.json()["cost_centre"]) == ("99.90", "marketing")
    assert api.post("/api/v1/keys/", {"name": "greedy", "monthly_budget": "501"}, format="json").status_code == 403
    for bad in ("-1", "1.005", "much"):
        assert api.post("/api/v1/keys/", {"name": "bad", "monthly_budget": bad}, format="json").status_code == 400


def test_the_request_path_gets_the_limits_parsed(django_db_setup, django_db_blocker):
    import uuid

    from apps.accounts.models import Membership, Organisation, User
    from apps.accounts.services import membership_add

    with django_db_blocker.unblock():
        org = Organisation.objects.create(name=f"limited-{uuid.uuid4().hex[:6]}", tokens_per_month=10**6,
                                          monthly_budget=Decimal("12.34"))
        owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
        membership_add(org, owner, Membership.Role.DEVELOPER)
        _, plaintext = key_create(user=owner, name="k", organisation=org, requests_rate="50/min", max_concurrent=5,
                                  monthly_budget=Decimal("0"))
        info = asyncio.run(akey_info_for(plaintext))
    assert info.limits == Limits(requests=Rate(50, 60), concurrent=5, budget=0)  # a zero budget refuses everything
    assert info.organisation_limits == Limits(tokens_per_month=10**6, budget=12_340_000)  # micro-roubles


# --- per key and model ---
@pytest.mark.django_db
def test_create_api_key_takes_limits_on_one_model():
    call_command("create_api_key", "--user", "bob", "--name", "per-model",
                 "--model-limit", "gigachat/GigaChat-2-Max:rpm=10,tpm=20000,concurrency=2")
    key = ApiKey.objects.get(user__username="bob", name="per-model")
    assert key.model_limits == {"gigachat/GigaChat-2-Max": {"requests_rate": "10/min", "tokens_rate": "20000/min",
                                                            "max_concurrent": 2}}
    for bad in ("no-limits", "m:rpm=ten", "m:colour=1"):
        with pytest.raises(CommandError, match="--model-limit"):
            call_command("create_api_key", "--user", "bob", "--model-limit", bad)


@pytest.mark.django_db
def test_a_key_created_by_a_key_stays_within_its_limits_on_each_model(alice):
    model = "gigachat/GigaChat-2-Max"
    parent, _ = key_create(user=alice, name="parent", scopes=["chat", "keys:manage"],
                           model_limits={model: {"requests_rate": "10/min", "max_concurrent": 2}})
    inherited, _ = key_create(user=alice, name="inherits", parent=parent)
    assert inherited.model_limits == {model: {"requests_rate": "10/min", "max_concurrent": 2}}
    narrower, _ = key_create(user=alice, name="narrower", parent=parent,
                             model_limits={model: {"requests_rate": "5/min"}, "other/m": {"tokens_rate": "100/min"}})
    assert narrower.model_limits == {model: {"requests_rate": "5/min", "max_concurrent": 2},
                                     "other/m": {"tokens_rate": "100/min"}}
    for wider in ({"requests_rate": "11/min"}, {"max_concurrent": 3}, {"requests_rate": ""}, {"max_concurrent": 0}):
        with pytest.raises(PermissionDenied, match=model):
            key_create(user=alice, name="wider", parent=parent, model_limits={model: wider})
    narrower.model_limits = {model: {"requests_rate": "20/min"}}
    with pytest.raises(PermissionDenied):
        key_update(narrower, ["model_limits"])
    with pytest.raises(ValidationError, match="not a rate"):
        key_create(user=alice, name="bad", model_limits={model: {"requests_rate": "often"}})


@pytest.mark.django_db
def test_the_management_api_sets_limits_on_a_model(alice):
    _, plaintext = key_create(user=alice, name="admin-key", scopes=["chat", "keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    created = api.post("/api/v1/keys/", {"name": "svc", "model_limits": {"mts/mws-gpt-alpha": {"requests_rate": "5/min"}}},
                       format="json")
    assert created.status_code == 201, created.content
    assert created.json()["model_limits"] == {"mts/mws-gpt-alpha": {"requests_rate": "5/min"}}
    bad = api.post("/api/v1/keys/", {"name": "bad", "model_limits": {"m": {"colour": 1}}}, format="json")
    assert bad.status_code == 400 and "unknown limit" in bad.content.decode()


@pytest.mark.django_db
def test_a_rotated_key_keeps_its_limits_budget_and_counters(alice):
    from apps.keys.services import key_rotate

    old, _ = key_create(user=alice, name="rotating", requests_rate="50/min", monthly_budget=Decimal("100"),
                        cost_centre="ops", model_limits={"m/x": {"max_concurrent": 1}})
    new, _ = key_rotate(old, by=alice, grace=datetime.timedelta(hours=1))
    assert (new.requests_rate, new.monthly_budget, new.cost_centre, new.model_limits) == (
        "50/min", Decimal("100.00"), "ops", {"m/x": {"max_concurrent": 1}})
    assert new.lineage == old.pk
    newer, _ = key_rotate(new, by=alice, grace=datetime.timedelta(hours=1))
    assert newer.lineage == old.pk  # the whole line shares one set of counters


@pytest.mark.django_db
def test_a_rotated_keys_budget_counts_the_spend_of_its_whole_line(alice):
    from django.utils import timezone

    from apps.keys.services import key_rotate
    from apps.limits.services import calendar, month_to_date_spend
    from apps.usage.models import UsageRecord

    old, _ = key_create(user=alice, name="spender", monthly_budget=Decimal("100"))
    new, _ = key_rotate(old, by=alice, grace=datetime.timedelta(hours=1))
    now = timezone.now()
    for key, cost in ((old, "1.50"), (new, "2.25")):
        UsageRecord.objects.create(request_id=f"r-{key.pk}", attempt=0, created_at=now, api_key_id=key.pk, user_id=alice.pk,
                                   provider="p", model="m", cost=Decimal(cost))
    assert month_to_date_spend(("k", old.pk), calendar()[:6]) == 3_750_000
