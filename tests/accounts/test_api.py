"""/api/v1/organisations/ and /api/v1/organisations/<id>/members/: people only, members read, managers write."""

import pytest
from rest_framework.test import APIClient

from apps.accounts.models import Membership, User

Role = Membership.Role


def orgs_url(organisation=None):
    return "/api/v1/organisations/" + (f"{organisation.id}/" if organisation else "")


def members_url(organisation, membership=None):
    return f"/api/v1/organisations/{organisation.id}/members/" + (f"{membership.id}/" if membership else "")


@pytest.mark.django_db
def test_members_list_their_organisations_with_their_role(alice, bob, charlie, acme, globex, signed_in):
    Membership.objects.create(user=bob, organisation=globex, role=Role.BILLING_VIEWER)
    listed = signed_in(bob).get(orgs_url()).json()
    assert {(o["name"], o["role"]) for o in listed["results"]} == {("acme", "developer"), ("globex", "billing_viewer")}
    assert [o["name"] for o in signed_in(alice).get(orgs_url()).json()["results"]] == ["acme"]
    one = signed_in(alice).get(orgs_url(acme)).json()
    assert one == {"id": acme.id, "name": "acme", "is_active": True, "allowed_models": [], "residency": "", "allowed_ips": [], "role": "owner",
                   "monthly_budget": None, "requests_rate": "", "tokens_rate": "", "max_concurrent": None,
                   "tokens_per_day": None, "tokens_per_month": None, "created_at": one["created_at"],
                   "pd_policy": "off", "pd_names": False, "blocked_terms": []}


@pytest.mark.django_db
def test_owners_and_admins_change_the_policy_and_it_bounds_new_keys(alice, bob, acme, signed_in):
    changed = signed_in(alice).patch(orgs_url(acme), {"allowed_models": ["gigachat/*"], "residency": "RU"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["allowed_models"] == ["gigachat/*"] and changed.json()["residency"] == "RU"
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    assert signed_in(bob).put(orgs_url(acme), {"residency": "RU", "allowed_models": ["gigachat/lite"]},
                              format="json").status_code == 200
    key = signed_in(bob).post("/api/v1/keys/", {"name": "in-policy"}, format="json")
    assert key.status_code == 201 and key.json()["allowed_models"] == ["gigachat/lite"] and key.json()["residency"] == "RU"
    wide = signed_in(bob).post("/api/v1/keys/", {"name": "wide", "allowed_models": ["openai/*"]}, format="json")
    assert wide.status_code == 403 and "policy of acme" in wide.json()["error"]["message"]


@pytest.mark.django_db
def test_owners_set_the_monthly_budget_but_not_the_operators_limits(alice, bob, acme, signed_in):
    changed = signed_in(alice).patch(orgs_url(acme), {"monthly_budget": "25000.00", "requests_rate": "100000/min"},
                                     format="json")
    assert changed.status_code == 200, changed.json()
    assert changed.json()["monthly_budget"] == "25000.00" and changed.json()["requests_rate"] == ""  # read-only
    acme.refresh_from_db()
    assert str(acme.monthly_budget) == "25000.00" and acme.requests_rate == ""
    bad = signed_in(alice).patch(orgs_url(acme), {"monthly_budget": "-1"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "monthly_budget"
    assert signed_in(bob).patch(orgs_url(acme), {"monthly_budget": None}, format="json").status_code == 403
    assert signed_in(alice).patch(orgs_url(acme), {"monthly_budget": None}, format="json").json()["monthly_budget"] is None


@pytest.mark.django_db
def test_a_bad_policy_is_refused_with_the_field_named(alice, acme, signed_in):
    response = signed_in(alice).patch(orgs_url(acme), {"allowed_models": "gigachat/*"}, format="json")
    assert response.status_code == 400 and response.json()["error"]["param"] == "allowed_models"
    response = signed_in(alice).patch(orgs_url(acme), {"name": "renamed", "is_active": False}, format="json")
    acme.refresh_from_db()
    assert response.status_code == 200 and acme.name == "acme" and acme.is_active  # read-only here


@pytest.mark.django_db
def test_owners_add_change_and_remove_members(alice, bob, acme, signed_in):
    User.objects.create(username="dora", email="dora@example.com")
    api = signed_in(alice)
    added = api.post(members_url(acme), {"username": "dora", "role": "billing_viewer"}, format="json")
    assert added.status_code == 201, added.json()
    assert added.json()["email"] == "dora@example.com" and added.json()["role"] == "billing_viewer"
    dora = Membership.objects.get(id=added.json()["id"])
    listed = api.get(members_url(acme)).json()["results"]
    assert {(m["username"], m["role"]) for m in listed} == {("alice", "owner"), ("bob", "developer"), ("dora", "billing_viewer")}
    assert api.patch(members_url(acme, dora), {"role": "admin"}, format="json").json()["role"] == "admin"
    assert api.delete(members_url(acme, dora)).status_code == 204
    assert not Membership.objects.filter(id=dora.id).exists()


@pytest.mark.django_db
def test_member_changes_are_validated(alice, acme, signed_in):
    api = signed_in(alice)
    assert api.post(members_url(acme), {"username": "nobody-here"}, format="json").status_code == 400
    assert api.post(members_url(acme), {"username": "alice"}, format="json").status_code == 400  # already a member
    own = Membership.objects.get(user=alice, organisation=acme)
    assert api.patch(members_url(acme, own), {"role": "root"}, format="json").status_code == 400
    last_owner = api.patch(members_url(acme, own), {"role": "developer"}, format="json")
    assert last_owner.status_code == 403 and "at least one owner" in last_owner.json()["error"]["message"]


@pytest.mark.django_db
def test_an_admin_cannot_grant_or_take_the_owner_role(alice, bob, acme, signed_in):
    Membership.objects.filter(user=bob).update(role=Role.ADMIN)
    api = signed_in(bob)
    bobs, alices = (Membership.objects.get(user=u, organisation=acme) for u in (bob, alice))
    assert api.patch(members_url(acme, bobs), {"role": "owner"}, format="json").status_code == 403
    assert api.delete(members_url(acme, alices)).status_code == 403
    assert Membership.objects.get(id=bobs.id).role == Role.ADMIN


# --- Ownership: charlie (globex) gets nothing of acme's; bob (acme developer) reads but changes nothing ---

def acme_routes(acme, alice):
    alices = Membership.objects.get(user=alice, organisation=acme)
    return [
        ("get", orgs_url(acme), None),
        ("put", orgs_url(acme), {"allowed_models": ["*"], "residency": ""}),
        ("patch", orgs_url(acme), {"residency": "EU"}),
        ("get", members_url(acme), None),
        ("post", members_url(acme), {"username": "charlie", "role": "owner"}),
        ("get", members_url(acme, alices), None),
        ("patch", members_url(acme, alices), {"role": "developer"}),
        ("delete", members_url(acme, alices), None),
    ]


@pytest.mark.django_db
def test_charlie_cannot_list_read_or_change_acme_or_its_members(alice, bob, charlie, acme, signed_in):
    api = signed_in(charlie)
    assert acme.id not in {o["id"] for o in api.get(orgs_url()).json()["results"]}
    for method, url, body in acme_routes(acme, alice):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 404, (method, url, response.status_code)  # as if acme did not exist
    acme.refresh_from_db()
    assert acme.residency == "" and acme.allowed_models == []
    assert set(acme.memberships.values_list("user__username", "role")) == {("alice", "owner"), ("bob", "developer")}


@pytest.mark.django_db
def test_charlie_cannot_reach_acme_members_through_his_own_organisation(alice, charlie, acme, globex, signed_in):
    alices = Membership.objects.get(user=alice, organisation=acme)
    api = signed_in(charlie)
    assert api.get(members_url(globex, alices)).status_code == 404
    assert api.patch(members_url(globex, alices), {"role": "developer"}, format="json").status_code == 404
    assert api.delete(members_url(globex, alices)).status_code == 404
    assert Membership.objects.get(id=alices.id).role == Role.OWNER


@pytest.mark.parametrize("role", [Role.DEVELOPER, Role.BILLING_VIEWER])
@pytest.mark.django_db
def test_bob_reads_acme_but_cannot_change_its_policy_or_members(alice, bob, acme, signed_in, role):
    Membership.objects.filter(user=bob).update(role=role)
    api = signed_in(bob)
    for method, url, body in acme_routes(acme, alice):
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == (200 if method == "get" else 403), (method, url, response.status_code)
    acme.refresh_from_db()
    assert acme.residency == "" and acme.allowed_models == []
    assert set(acme.memberships.values_list("user__username", "role")) == {("alice", "owner"), ("bob", role)}


@pytest.mark.django_db
def test_api_keys_are_refused_even_alices_own_with_every_scope(alice, acme):
    from apps.keys.services import key_create

    _, plaintext = key_create(user=alice, name="all", scopes=["chat", "embeddings", "models:read", "usage:read", "keys:manage"])
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    for method, url, body in [("get", orgs_url(), None), *acme_routes(acme, alice)]:
        response = getattr(api, method)(url, body, format="json")
        assert response.status_code == 403, (method, url)
        assert "not an API key" in response.json()["error"]["message"]
    assert api.get("/api/v1/keys/").status_code == 200  # the same key still manages keys


@pytest.mark.django_db
def test_anonymous_callers_are_refused(alice, acme):
    for method, url, body in [("get", orgs_url(), None), *acme_routes(acme, alice)]:
        assert getattr(APIClient(), method)(url, body, format="json").status_code in (401, 403), (method, url)
