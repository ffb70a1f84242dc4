"""Every list of the management API pages by cursor, newest first: 50 a page, ?page_size= up to 200."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.keys.models import ApiKey
from apps.usage.models import UsageRecord


def walk(api, url):
    """Every item, following `next` to the end; returns (items, the sizes of the pages)."""
    items, sizes = [], []
    while url:
        page = api.get(url).json()
        assert set(page) == {"next", "previous", "results"}
        items += page["results"]
        sizes.append(len(page["results"]))
        url = page["next"]
    return items, sizes


@pytest.mark.django_db
def test_keys_page_newest_first_with_a_capped_page_size(alice, signed_in):
    ApiKey.objects.bulk_create([ApiKey(user=alice, name=f"k{i}", prefix=f"p{i:04}", hashed_key=f"h{i:063}") for i in range(230)])
    api = signed_in(alice)
    items, sizes = walk(api, "/api/v1/keys/")
    assert sizes == [50, 50, 50, 50, 30]
    ids = [k["id"] for k in items]
    assert len(set(ids)) == 230 and ids == sorted(ids, reverse=True)  # same created_at: id breaks the tie
    assert walk(api, "/api/v1/keys/?page_size=1000")[1] == [200, 30]
    assert walk(api, "/api/v1/keys/?page_size=7")[1][0] == 7


@pytest.mark.django_db
def test_usage_pages_by_created_at_and_new_rows_do_not_shift_the_pages(alice, signed_in):
    start = timezone.now() - dt.timedelta(hours=1)

    def record(i):
        return UsageRecord(request_id=f"r{i}", user_id=alice.id, created_at=start + dt.timedelta(seconds=i))

    UsageRecord.objects.bulk_create([record(i) for i in range(5)])
    api = signed_in(alice)
    first = api.get("/api/v1/usage/?page_size=2").json()
    assert [r["request_id"] for r in first["results"]] == ["r4", "r3"]
    UsageRecord.objects.bulk_create([record(i) for i in range(5, 8)])  # arrives while the client pages
    second = api.get(first["next"]).json()
    assert [r["request_id"] for r in second["results"]] == ["r2", "r1"]


@pytest.mark.django_db
def test_organisation_and_member_lists_page_too(alice, acme, signed_in):
    from apps.accounts.models import Membership, User

    users = User.objects.bulk_create([User(username=f"u{i}") for i in range(60)])
    Membership.objects.bulk_create([Membership(user=u, organisation=acme) for u in users])
    api = signed_in(alice)
    assert walk(api, f"/api/v1/organisations/{acme.id}/members/")[1] == [50, 11]
    assert walk(api, "/api/v1/organisations/")[1] == [1]
