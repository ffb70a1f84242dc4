"""The management API's and the admin's statements: who may read them, and what they say."""

import datetime
from decimal import Decimal as D

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Membership, Organisation, User

from .conftest import at, member, usage

OCTOBER = "2026-10"


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def spend(org):
    usage(org, "10.005", at(datetime.date(2026, 10, 3)), model="yandexgpt")
    usage(org, "1.5", at(datetime.date(2026, 10, 4)), provider="gigachat", model="GigaChat-2")
    return org


def _staff(group=None) -> User:
    user = User.objects.create_user(username=f"staff-{group}", password="x" * 12, is_staff=True)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.mark.django_db
@pytest.mark.parametrize("role,status", [("owner", 200), ("admin", 200), ("billing_viewer", 200), ("developer", 404)])
def test_statement_by_role(spend, role, status):
    r = _client(member(spend, role)).get(f"/api/v1/billing/organisations/{spend.id}/statement/", {"month": OCTOBER})
    assert r.status_code == status, r.content
    if status == 200:
        body = r.json()
        assert body["currency"] == "RUB" and body["complete"] is True
        assert [(x["label"]["model"], x["total"], x["vat"]) for x in body["by_model"]] == [
            ("yandexgpt", "10.01", "1.81"), ("GigaChat-2", "1.50", "0.27")]
        assert body["totals"] == {"amount": "9.43", "vat": "2.08", "total": "11.51"}


@pytest.mark.django_db
def test_statement_csv_and_bad_month(spend):
    client = _client(member(spend, "billing_viewer"))
    r = client.get(f"/api/v1/billing/organisations/{spend.id}/statement.csv", {"month": OCTOBER})
    assert r.status_code == 200 and r["content-type"].startswith("text/csv")
    assert r.content.decode().strip().splitlines()[-1] == "total,,,,,,,,,,9.43,2.08,11.51"
    r = client.get(f"/api/v1/billing/organisations/{spend.id}/statement/", {"month": "October"})
    assert r.status_code == 400 and "YYYY-MM" in r.content.decode()


@pytest.mark.django_db
def test_spend_series(spend):
    client = _client(member(spend, "owner"))
    url = f"/api/v1/billing/organisations/{spend.id}/spend/"
    series = client.get(url, {"days": 7}).json()
    assert len(series) == 7 and all(D(p["cost"]) == 0 for p in series)  # October is long gone
    usage(spend, "2.25", timezone.now(), provider="mts", model="gpt-4o")
    by_provider = client.get(url, {"days": 1, "by": "provider"}).json()
    assert [(p["key"], p["cost"], p["requests"]) for p in by_provider] == [("mts", "2.250000", 1)]
    assert client.get(url, {"days": 0}).status_code == 400
    assert client.get(url, {"days": "x"}).status_code == 400
    assert client.get(url, {"by": "user_id"}).status_code == 400


@pytest.mark.django_db
def test_finance_staff_read_every_organisation_others_do_not(spend):
    finance = _client(_staff("finance"))
    assert finance.get(f"/api/v1/billing/organisations/{spend.id}/statement/", {"month": OCTOBER}).status_code == 200
    top = finance.get("/api/v1/billing/top-spenders/", {"month": OCTOBER}).json()
    assert {"name": spend.name, "total": "11.51"}.items() <= next(r for r in top if r["organisation_id"] == spend.id).items()
    support = _client(_staff("support"))
    assert support.get(f"/api/v1/billing/organisations/{spend.id}/statement/", {"month": OCTOBER}).status_code == 404
    assert support.get("/api/v1/billing/top-spenders/", {"month": OCTOBER}).status_code == 403


@pytest.mark.django_db
def test_admin_statement_pages(spend):
    finance = _client(_staff("finance"))
    page = finance.get(f"/admin/billing/dailyrollup/statements/{spend.id}/{OCTOBER}/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="total">11.51<' in html and "GigaChat-2" in html and "month to date" not in html
    csv = finance.get(f"/admin/billing/dailyrollup/statements/{spend.id}/{OCTOBER}/csv/")
    assert csv.status_code == 200 and b"total,,,,,,,,,,9.43,2.08,11.51" in csv.content
    top = finance.get("/admin/billing/dailyrollup/statements/", {"month": OCTOBER})
    assert top.status_code == 200 and spend.name in top.content.decode()
    assert 'id="by-provider"' in top.content.decode() and "gigachat" in top.content.decode()
    assert finance.get(f"/admin/billing/dailyrollup/statements/{spend.id}/nonsense/").status_code == 404
    operator = _client(_staff("support"))
    assert operator.get(f"/admin/billing/dailyrollup/statements/{spend.id}/{OCTOBER}/").status_code == 403


@pytest.mark.django_db
def test_oauth_token_needs_usage_read_and_its_organisation(spend):
    from apps.oauth.services import application_create
    from tests.oauth.test_api import bearer, oauth_token

    owner = member(spend, "owner")
    other = Organisation.objects.create(name=f"{spend.name}-2")
    Membership.objects.create(user=owner, organisation=other, role="owner")
    app = application_create(user=owner, organisation=spend, name="finance system", client_type="confidential",
                             redirect_uris="https://finance.example/callback")[0]
    url = f"/api/v1/billing/organisations/{spend.id}/statement/"
    assert bearer(oauth_token(app, owner, "chat")).get(url, {"month": OCTOBER}).status_code == 403
    api = bearer(oauth_token(app, owner, "usage:read"))
    assert api.get(url, {"month": OCTOBER}).json()["totals"]["total"] == "11.51"
    # the owner's other organisation is not the token's
    assert api.get(f"/api/v1/billing/organisations/{other.id}/statement/", {"month": OCTOBER}).status_code == 404


@pytest.mark.django_db
def test_api_keys_are_refused(spend):
    from apps.keys.services import key_create

    owner = member(spend, "owner")
    plaintext = key_create(user=owner, name="script", organisation=spend, scopes=["usage:read", "chat"])[1]
    r = Client().get(f"/api/v1/billing/organisations/{spend.id}/statement/", {"month": OCTOBER},
                     HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    assert r.status_code == 403
