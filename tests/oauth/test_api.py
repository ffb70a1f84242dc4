"""The management API with OAuth: access tokens authenticate (keys need keys:manage, usage usage:read, each
within the token's organisation), and /api/v1/oauth-applications/ (session or OAuth only; members read, the
registrant and the organisation's owners and admins change; the client secret is shown once)."""

import secrets
from datetime import timedelta

import pytest
from django.utils import timezone
from oauth2_provider.models import set_token_value
from rest_framework.test import APIClient

from apps.accounts.models import Membership
from apps.keys.services import key_create
from apps.oauth.models import AccessToken, Application
from apps.oauth.services import application_create

APPS = "/api/v1/oauth-applications/"


@pytest.fixture
def members(alice, bob, charlie, acme, globex):
    for user, organisation, role in ((alice, acme, "owner"), (bob, acme, "developer"), (charlie, globex, "owner")):
        Membership.objects.update_or_create(user=user, organisation=organisation, defaults={"role": role})


@pytest.fixture
def acme_app(members, alice, acme):
    return application_create(user=alice, organisation=acme, name="acme dashboard", client_type="public",
                              redirect_uris="https://dash.acme.example/callback")[0]


def session(user) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


def bearer(token: str) -> APIClient:
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    return api


def oauth_token(application, user, scope: str) -> str:
    """An access token as the toolkit stores it (hashed), without the browser dance of tests/oauth/test_pkce.py."""
    plaintext = f"xro-{secrets.token_urlsafe(32)}"
    token = AccessToken(user=user, application=application, scope=scope, expires=timezone.now() + timedelta(hours=1))
    set_token_value(token, plaintext)
    token.save()
    return plaintext


@pytest.mark.django_db
def test_an_oauth_token_manages_keys_only_with_keys_manage_and_in_its_organisation(acme_app, alice, globex):
    Membership.objects.create(user=alice, organisation=globex, role="developer")
    in_acme = key_create(user=alice, name="acme key")[0]
    key_create(user=alice, name="globex key", organisation=globex)
    assert bearer(oauth_token(acme_app, alice, "chat")).get("/api/v1/keys/").status_code == 403
    api = bearer(oauth_token(acme_app, alice, "keys:manage chat"))
    assert [k["id"] for k in api.get("/api/v1/keys/").json()["results"]] == [in_acme.id]
    made = api.post("/api/v1/keys/", {"name": "made with oauth"}, format="json")
    assert made.status_code == 201 and made.json()["key"].startswith("xr-")
    assert made.json()["scopes"] == ["chat"]  # the defaults the token holds
    assert api.post("/api/v1/keys/", {"name": "wider", "scopes": ["embeddings"]}, format="json").status_code == 403


@pytest.mark.django_db
def test_an_oauth_token_reads_usage_only_with_usage_read(acme_app, alice):
    assert bearer(oauth_token(acme_app, alice, "chat")).get("/api/v1/usage/").status_code == 403
    assert bearer(oauth_token(acme_app, alice, "usage:read")).get("/api/v1/usage/").status_code == 200


@pytest.mark.django_db
def test_a_revoked_expired_or_unknown_token_is_refused(acme_app, alice):
    token = oauth_token(acme_app, alice, "usage:read")
    AccessToken.objects.filter(application=acme_app).update(expires=timezone.now() - timedelta(seconds=1))
    assert bearer(token).get("/api/v1/usage/").status_code in (401, 403)
    assert bearer(f"xro-{secrets.token_urlsafe(32)}").get("/api/v1/usage/").json()["error"]["message"] == \
        "Incorrect, revoked or expired access token."


@pytest.mark.django_db
def test_a_member_registers_an_application_and_sees_the_secret_once(members, bob, acme):
    made = session(bob).post(APPS, {"name": "bob's worker", "organisation": acme.id, "client_type": "confidential",
                                    "authorization_grant_type": "client-credentials"}, format="json")
    assert made.status_code == 201, made.json()
    secret = made.json()["client_secret"]
    app = Application.objects.get(id=made.json()["id"])
    assert len(secret) >= 64 and app.client_secret != secret and app.client_secret.startswith("pbkdf2_")  # hashed
    shown = session(bob).get(f"{APPS}{app.id}/").json()
    assert "client_secret" not in shown and secret not in str(session(bob).get(APPS).json())
    public = session(bob).post(APPS, {"name": "bob's CLI", "organisation": acme.id, "client_type": "public",
                                      "redirect_uris": "http://127.0.0.1/cb"}, format="json")
    assert public.status_code == 201 and "client_secret" not in public.json()


@pytest.mark.django_db
@pytest.mark.parametrize("uris", ["http://app.example.com/cb", "ftp://x/cb"])
def test_redirect_uris_are_https_or_loopback_http(members, alice, acme, uris):
    refused = session(alice).post(APPS, {"name": "x", "organisation": acme.id, "client_type": "public",
                                         "redirect_uris": uris}, format="json")
    assert refused.status_code == 400 and "redirect_uris" in str(refused.json())


@pytest.mark.django_db
def test_client_credentials_are_for_confidential_clients_only(members, alice, acme):
    refused = session(alice).post(APPS, {"name": "x", "organisation": acme.id, "client_type": "public",
                                         "authorization_grant_type": "client-credentials"}, format="json")
    assert refused.status_code == 400
    implicit = session(alice).post(APPS, {"name": "x", "organisation": acme.id, "client_type": "public",
                                          "authorization_grant_type": "implicit"}, format="json")
    assert implicit.status_code == 400


@pytest.mark.django_db
def test_applications_belong_to_their_organisation(acme_app, bob, charlie, globex, acme):
    assert [a["id"] for a in session(bob).get(APPS).json()["results"]] == [acme_app.id]  # members read
    assert session(charlie).get(APPS).json()["results"] == []
    for method in ("get", "patch", "delete"):  # another tenant: as if it did not exist
        assert getattr(session(charlie), method)(f"{APPS}{acme_app.id}/", {"name": "mine"}, format="json").status_code == 404
    into_acme = session(charlie).post(APPS, {"name": "x", "organisation": acme.id, "client_type": "public",
                                             "redirect_uris": "https://x.example/cb"}, format="json")
    assert into_acme.status_code == 400  # acme is not among charlie's organisations
    assert Application.objects.filter(organisation=acme).count() == 1


@pytest.mark.django_db
def test_the_registrant_and_managers_change_and_delete_a_developer_may_not(acme_app, alice, bob):
    assert session(bob).patch(f"{APPS}{acme_app.id}/", {"name": "bob's now"}, format="json").status_code == 403
    assert session(bob).delete(f"{APPS}{acme_app.id}/").status_code == 403
    renamed = session(alice).patch(f"{APPS}{acme_app.id}/", {"name": "renamed",
                                                              "redirect_uris": "https://new.acme.example/cb"}, format="json")
    assert renamed.status_code == 200 and renamed.json()["redirect_uris"] == "https://new.acme.example/cb"
    assert session(alice).patch(f"{APPS}{acme_app.id}/", {"redirect_uris": "http://evil.example/cb"},
                                format="json").status_code == 400
    assert session(alice).delete(f"{APPS}{acme_app.id}/").status_code == 204
    assert not Application.objects.filter(id=acme_app.id).exists()


@pytest.mark.django_db
def test_applications_take_a_session_or_an_oauth_token_never_an_api_key(acme_app, alice):
    key = key_create(user=alice, name="script", scopes=["keys:manage", "usage:read", "chat"])[1]
    assert bearer(key).get(APPS).status_code == 403
    token_api = bearer(oauth_token(acme_app, alice, "chat"))
    assert [a["id"] for a in token_api.get(APPS).json()["results"]] == [acme_app.id]


@pytest.mark.django_db
def test_deleting_an_application_announces_its_tokens(acme_app, alice, django_capture_on_commit_callbacks):
    from apps.common import bus

    heard = []
    bus.subscribe("keys", heard.append)
    oauth_token(acme_app, alice, "chat")
    token_id = AccessToken.objects.get(application=acme_app).id
    try:
        with django_capture_on_commit_callbacks(execute=True):
            session(alice).delete(f"{APPS}{acme_app.id}/")
    finally:
        bus._handlers["keys"].remove(heard.append)
    assert {"oauth_token_ids": [token_id]} in heard


@pytest.mark.django_db
def test_the_admin_lists_applications_with_their_organisation(acme_app, client):
    from apps.accounts.models import User

    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get("/admin/oauth/application/")
    assert listing.status_code == 200 and "acme dashboard" in listing.content.decode() and "acme" in listing.content.decode()
    assert client.get(f"/admin/oauth/application/{acme_app.id}/change/").status_code == 200
    assert client.get("/admin/oauth/externalidentity/").status_code == 200


@pytest.fixture
def globex_app(members, charlie, globex):
    return application_create(user=charlie, organisation=globex, name="globex helper", client_type="public",
                              redirect_uris="https://helper.globex.example/callback")[0]


@pytest.mark.django_db
def test_a_chat_token_of_another_organisations_app_cannot_take_over_the_users_organisation(globex_app, alice, acme,
                                                                                           charlie):
    # alice (acme's owner) lets globex's app chat for her; the app must not then run acme.
    api = bearer(oauth_token(globex_app, alice, "chat"))
    assert acme.name not in [o["name"] for o in api.get("/api/v1/organisations/").json()["results"]]
    assert api.get(f"/api/v1/organisations/{acme.id}/members/").status_code in (403, 404)
    assert api.post(f"/api/v1/organisations/{acme.id}/members/", {"username": charlie.username, "role": "owner"},
                    format="json").status_code in (403, 404)
    assert api.patch(f"/api/v1/organisations/{acme.id}/", {"allowed_models": ["x/*"]},
                     format="json").status_code in (403, 404)
    assert not Membership.objects.filter(user=charlie, organisation=acme).exists()
    acme.refresh_from_db()
    assert acme.allowed_models != ["x/*"]


@pytest.mark.django_db
def test_a_chat_token_changes_no_member_policy_or_application_of_its_own_organisation(acme_app, alice, bob, acme):
    # Consent to "chat" is no consent to running the organisation: writes take a signed-in session.
    api = bearer(oauth_token(acme_app, alice, "chat"))
    assert api.get(f"/api/v1/organisations/{acme.id}/members/").status_code == 200  # reading is fine
    bobs = Membership.objects.get(user=bob, organisation=acme)
    assert api.patch(f"/api/v1/organisations/{acme.id}/members/{bobs.id}/", {"role": "owner"},
                     format="json").status_code == 403
    assert api.delete(f"/api/v1/organisations/{acme.id}/members/{bobs.id}/").status_code == 403
    assert api.patch(f"/api/v1/organisations/{acme.id}/", {"allowed_models": ["x/*"]}, format="json").status_code == 403
    assert api.post(APPS, {"name": "more", "organisation": acme.id, "client_type": "public",
                           "redirect_uris": "https://x.example/cb"}, format="json").status_code == 403
    assert api.patch(f"{APPS}{acme_app.id}/", {"redirect_uris": "https://evil.example/cb"},
                     format="json").status_code == 403
    assert api.delete(f"{APPS}{acme_app.id}/").status_code == 403
    bobs.refresh_from_db()
    acme_app.refresh_from_db()
    assert bobs.role == "developer" and acme_app.redirect_uris == "https://dash.acme.example/callback"


@pytest.mark.django_db
def test_introspection_answers_for_the_client_that_authenticated_not_a_client_id_it_names(members, alice, acme,
                                                                                          charlie, globex):
    import base64

    from django.test import Client

    acme_app, acme_secret = application_create(user=alice, organisation=acme, name="acme job",
                                               client_type="confidential", authorization_grant_type="client-credentials")
    globex_app, globex_secret = application_create(user=charlie, organisation=globex, name="globex job",
                                                   client_type="confidential",
                                                   authorization_grant_type="client-credentials")
    acme_token = oauth_token(acme_app, alice, "chat")
    # acme's client id with a wrong secret in the header; globex's own credentials in the body, which the
    # toolkit falls back to: globex authenticated, so acme's token reads as inactive.
    named = "Basic " + base64.b64encode(f"{acme_app.client_id}:wrong".encode()).decode()
    answer = Client().post("/o/introspect/", {"token": acme_token, "client_id": globex_app.client_id,
                                              "client_secret": globex_secret}, HTTP_AUTHORIZATION=named)
    assert answer.status_code == 200 and answer.json() == {"active": False}
    # acme's own credentials, in the header or the body, see acme's token.
    own = "Basic " + base64.b64encode(f"{acme_app.client_id}:{acme_secret}".encode()).decode()
    assert Client().post("/o/introspect/", {"token": acme_token}, HTTP_AUTHORIZATION=own).json()["active"] is True
    assert Client().post("/o/introspect/", {"token": acme_token, "client_id": acme_app.client_id,
                                            "client_secret": acme_secret}).json()["active"] is True


@pytest.mark.django_db
def test_a_client_credentials_token_stops_when_its_registrant_leaves_the_organisation(members, bob, acme):
    # bob (developer) registered a server application and holds its secret; removed from acme, he must not go
    # on minting tokens billed to acme (his API keys there stop working too: keys.models.holds_keys_in).
    from apps.accounts.services import membership_remove, membership_set_role
    from apps.oauth.selectors import oauth_token_info_for

    server_app = application_create(user=bob, organisation=acme, name="bob's batch job", client_type="confidential",
                                    authorization_grant_type="client-credentials")[0]
    token = oauth_token(server_app, None, "chat")
    assert oauth_token_info_for(token).organisation_id == acme.id

    bobs = Membership.objects.get(user=bob, organisation=acme)
    membership_set_role(bobs, "billing_viewer")
    assert oauth_token_info_for(token) is None  # billing viewers hold no credentials that chat
    membership_set_role(bobs, "developer")
    assert oauth_token_info_for(token) is not None
    membership_remove(bobs)
    assert oauth_token_info_for(token) is None
    assert bearer(token).get("/api/v1/usage/").json()["error"]["message"] == "Incorrect, revoked or expired access token."


@pytest.mark.django_db
def test_the_openapi_schema_describes_oauth_tokens_though_workers_start_without_drf_spectacular(client):
    schema = client.get("/api/schema/?format=json").json()
    flows = schema["components"]["securitySchemes"]["oauth2"]["flows"]
    assert set(flows) == {"authorizationCode", "clientCredentials"} and "keys:manage" in flows["clientCredentials"]["scopes"]


@pytest.mark.django_db
def test_an_oauth_token_is_bounded_by_its_organisations_limits_and_budget(acme_app, alice, acme):
    """Principals other than keys have no limits of their own: their organisation's apply (apps.limits)."""
    from decimal import Decimal

    from apps.common.rates import Limits, Rate
    from apps.oauth.selectors import oauth_token_info_for

    acme.requests_rate, acme.monthly_budget = "100/min", Decimal("5000")
    acme.save(update_fields=["requests_rate", "monthly_budget"])
    info = oauth_token_info_for(oauth_token(acme_app, alice, "chat"))
    assert info.kind == "oauth" and info.limits is None
    assert info.organisation_limits == Limits(requests=Rate(100, 60), budget=5_000_000_000)
