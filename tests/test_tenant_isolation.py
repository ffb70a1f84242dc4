"""Tenant isolation, route by route: every route the product serves has an ownership case here.

The routes are enumerated, not listed by hand: Django's URLconf (portal, management API, admin), the
gateway's own /v1 route table and the WebSocket routes. Each (route, method) must either have a case in
CASES — charlie (owner of globex) tries to read or change what belongs to alice's acme, and must get
nothing of it — or be named in NO_TENANT_OBJECT with the reason it holds nothing of a tenant's. A route
added without either fails `test_every_route_has_an_ownership_case`. The admin is staff-only as a whole:
one case walks every admin route as a non-staff member.
"""

import re
import uuid
from decimal import Decimal

import httpx
import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from apps.accounts.models import Membership
from apps.keys.models import ApiKey
from apps.keys.services import key_create
from apps.usage.models import UsageRecord

# (url name, method) → why no tenant's object is reachable through it.
NO_TENANT_OBJECT = {
    ("api-root", "GET"): "DRF's index of the API's URLs",
    ("alertmanager-webhook", "POST"): "Alertmanager's notifications, by its own token: operations data, no tenant's",
    ("schema", "GET"): "the OpenAPI document",
    ("docs", "GET"): "Swagger UI over the OpenAPI document",
    ("login", "GET"): "the login form", ("login", "POST"): "signs the caller in",
    ("logout", "POST"): "signs the caller out",
    ("password_reset", "GET"): "the form", ("password_reset", "POST"): "mails the address's owner, says the same for any address",
    ("password_reset_done", "GET"): "a static page", ("password_reset_complete", "GET"): "a static page",
    ("password_reset_confirm", "GET"): "bound to a signed token for one user",
    ("password_reset_confirm", "POST"): "bound to a signed token for one user",
    ("set_language", "POST"): "sets the caller's language cookie",
    ("signup", "GET"): "the form", ("signup", "POST"): "creates a new account",
    ("signup_confirm", "GET"): "bound to a signed token for one user",
    ("models", "GET"): "the catalogue of models and prices, the same for everyone",
    ("v1-doc", "POST"): "documentation only: /v1 is served by the gateway (its own cases below)",
    ("v1-doc", "GET"): "documentation only: /v1 is served by the gateway (its own cases below)",
    ("authorize", "GET"): "the caller's own consent page: any organisation's application may ask (it pays for its use)",
    ("authorize", "POST"): "the caller consents for themselves; the code is bound to the asking application",
    ("user-info", "GET"): "the claims of the access token's own user", ("user-info", "POST"): "the same, by POST",
    ("oidc-connect-discovery-info", "GET"): "OpenID Connect discovery, the same for everyone",
    ("jwks-info", "GET"): "the public half of the ID-token signing key",
    ("login_code", "GET"): "the code step of the caller's own login", ("login_code", "POST"): "checks the caller's own code",
    ("oidc_login", "POST"): "sends the caller to the identity provider",
    ("oidc_callback", "GET"): "finishes the caller's own login, bound to the state in their session",
    ("security", "GET"): "the caller's own two-factor devices (no id in the URL)",
    ("security", "POST"): "changes the caller's own two-factor devices (no id in the URL)",
    ("account", "GET"): "the caller's own data page (no id in the URL)",
    ("account_export", "GET"): "the caller's own data as JSON (no id in the URL; tests/privacy/browser)",
    ("account_delete", "POST"): "deletes the caller's own account, with their password (no id in the URL)",
    ("invitation", "GET"): "bound to the invitation token the caller holds (tests/portal/test_members.py: another account cannot take it)",
    ("invitation", "POST"): "bound to the invitation token the caller holds, and to its address",
}


def _walk(patterns, prefix=""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            yield prefix + str(pattern.pattern), pattern


def django_routes() -> set[tuple[str, str]]:
    """(url name, METHOD) of every Django route but the admin's (DRF view sets: their actions' methods;
    plain views: the methods CASES or NO_TENANT_OBJECT name for them, at least one)."""
    found = set()
    for route, pattern in _walk(get_resolver().url_patterns):
        if route.startswith("admin/"):
            continue
        name = pattern.name or ("v1-doc" if route.startswith("v1/") else route)
        actions = getattr(pattern.callback, "actions", None)
        if actions:
            # HEAD is GET without the body (DRF maps it to the same action)
            found |= {(name, method.upper()) for method in actions if method != "head"}
        else:
            declared = {m for (n, m) in (*CASES, *NO_TENANT_OBJECT) if n == name}
            found |= {(name, m) for m in declared} or {(name, "?")}
    return found


def gateway_routes() -> set[tuple[str, str]]:
    from apps.gateway import app

    found = {(f"v1 {path}", method) for path, methods in app.ROUTES.items() for method in methods}
    return found | {(f"v1 {app.MODEL_PREFIX}<id>", "GET")}


def websocket_routes() -> set[tuple[str, str]]:
    from apps.gateway.ws_urls import websocket_urlpatterns

    return {(f"ws /{p.pattern}", "CONNECT") for p in websocket_urlpatterns if str(p.pattern)}


# --- the world: alice's acme has a key, a usage record and bob; charlie owns globex ---


class World:
    def __init__(self, alice, bob, charlie, acme, globex):
        self.alice, self.bob, self.charlie, self.acme, self.globex = alice, bob, charlie, acme, globex
        self.key, _ = key_create(user=alice, name=f"alice-{uuid.uuid4().hex[:6]}", organisation=acme)
        self.usage = UsageRecord.objects.create(
            request_id=f"req-{uuid.uuid4().hex}", api_key_id=self.key.id, key_prefix=self.key.prefix,
            user_id=alice.id, organisation_id=acme.id, model="acme-secret-model", cost=Decimal("1.5"),
            created_at=timezone.now())
        self.bob_membership = Membership.objects.get(user=bob, organisation=acme)

    def client(self, user) -> Client:
        client = Client()
        client.force_login(user)
        return client

    def charlie_client(self) -> Client:
        return self.client(self.charlie)

    def assert_unchanged(self):
        self.key.refresh_from_db()
        assert self.key.revoked_at is None and self.key.is_active()
        self.acme.refresh_from_db()
        assert self.acme.allowed_models == [] and self.acme.residency == ""
        assert Membership.objects.filter(id=self.bob_membership.id, role=Membership.Role.DEVELOPER).exists()


def _refused(response, *codes):
    assert response.status_code in (codes or (403, 404)), (response.status_code, response.content[:300])


def _absent(response, *secrets):
    assert response.status_code in (200, 403, 404), response.status_code
    content = b"".join(response.streaming_content) if response.streaming else response.content
    body = content.decode(errors="replace")
    for secret in secrets:
        assert str(secret) not in body


# Cases: (url name, METHOD) → f(world). Each one acts as charlie on alice's objects and checks the refusal
# and that nothing changed.
def _keys_list(w):
    _absent(w.charlie_client().get("/api/v1/keys/"), w.key.prefix)


def _keys_create(w):
    # naming acme is refused or ignored: charlie's key never lands in acme
    r = w.charlie_client().post("/api/v1/keys/", {"name": "x", "organisation": w.acme.id}, content_type="application/json")
    assert r.status_code in (201, 400, 403, 404), r.status_code
    assert not ApiKey.objects.filter(user=w.charlie, organisation=w.acme).exists()


def _key_detail(w):
    _refused(w.charlie_client().get(f"/api/v1/keys/{w.key.id}/"))


def _key_revoke_api(w):
    _refused(w.charlie_client().post(f"/api/v1/keys/{w.key.id}/revoke/"))
    w.assert_unchanged()


def _key_rotate_api(w):
    _refused(w.charlie_client().post(f"/api/v1/keys/{w.key.id}/rotate/", {"grace_seconds": 0},
                                     content_type="application/json"))
    assert not ApiKey.objects.filter(name=w.key.name).exclude(pk=w.key.pk).exists()  # no sibling made
    w.assert_unchanged()


def _usage_list(w):
    _absent(w.charlie_client().get("/api/v1/usage/"), w.usage.request_id, "acme-secret-model")


def _org_list(w):
    r = w.charlie_client().get("/api/v1/organisations/")
    _absent(r, f'"name":"{w.acme.name}"')
    assert w.acme.name not in [o["name"] for o in r.json()["results"]]


def _org_detail(w):
    _refused(w.charlie_client().get(f"/api/v1/organisations/{w.acme.id}/"))


def _org_update(method):
    def case(w):
        r = getattr(w.charlie_client(), method)(f"/api/v1/organisations/{w.acme.id}/",
                                                {"name": w.acme.name, "allowed_models": ["x/*"], "residency": "RU"},
                                                content_type="application/json")
        _refused(r)
        w.assert_unchanged()
    return case


def _members_list(w):
    _refused(w.charlie_client().get(f"/api/v1/organisations/{w.acme.id}/members/"))


def _members_create(w):
    r = w.charlie_client().post(f"/api/v1/organisations/{w.acme.id}/members/",
                                {"username": w.charlie.username, "role": "owner"}, content_type="application/json")
    _refused(r)
    assert not Membership.objects.filter(user=w.charlie, organisation=w.acme).exists()


def _member_detail(w):
    _refused(w.charlie_client().get(f"/api/v1/organisations/{w.acme.id}/members/{w.bob_membership.id}/"))


def _member_update(w):
    r = w.charlie_client().patch(f"/api/v1/organisations/{w.acme.id}/members/{w.bob_membership.id}/",
                                 {"role": "owner"}, content_type="application/json")
    _refused(r)
    w.assert_unchanged()


def _member_delete(w):
    _refused(w.charlie_client().delete(f"/api/v1/organisations/{w.acme.id}/members/{w.bob_membership.id}/"))
    w.assert_unchanged()


def _portal_dashboard(w):
    _absent(w.charlie_client().get("/"), w.key.prefix, "acme-secret-model", w.acme.name)


def _portal_keys(w):
    _absent(w.charlie_client().get("/keys/"), w.key.prefix, w.key.name)


def _portal_key_revoke(w):
    _refused(w.charlie_client().post(f"/keys/{w.key.id}/revoke/"))
    w.assert_unchanged()


def _portal_key_rotate(w):
    _refused(w.charlie_client().post(f"/keys/{w.key.id}/rotate/", {"grace": "0"}))
    assert not ApiKey.objects.filter(name=w.key.name).exclude(pk=w.key.pk).exists()
    w.assert_unchanged()


def _portal_usage(w):
    _absent(w.charlie_client().get("/usage/"), w.usage.request_id, "acme-secret-model", w.key.prefix)
    # the lookup by x-request-id: acme's request looks like no request at all
    found = w.charlie_client().get("/usage/", {"request_id": w.usage.request_id})
    assert found.context["found"] is None
    _absent(found, "acme-secret-model", w.key.prefix)


def _portal_playground(w):
    # the keys it offers to bill are one's own only (the socket checks the same: tests/gateway/test_ws_session.py)
    _absent(w.charlie_client().get("/playground/"), w.key.prefix, w.key.name, f'value="{w.key.id}"')


def _portal_usage_csv(w):
    _absent(w.charlie_client().get("/usage.csv"), w.usage.request_id, "acme-secret-model", w.key.prefix)


# OAuth: alice's acme has a confidential application with a token; charlie's globex has one of its own.
def _oauth(w):
    if not hasattr(w, "acme_app"):
        import base64
        import secrets
        from datetime import timedelta

        from oauth2_provider.models import set_token_value

        from apps.oauth.models import AccessToken
        from apps.oauth.services import application_create

        w.acme_app, w.acme_secret = application_create(
            user=w.alice, organisation=w.acme, name=f"acme-app-{uuid.uuid4().hex[:6]}", client_type="confidential",
            authorization_grant_type="client-credentials")
        w.globex_app, globex_secret = application_create(
            user=w.charlie, organisation=w.globex, name="globex-app", client_type="confidential",
            authorization_grant_type="client-credentials")
        w.acme_token = f"xro-{secrets.token_urlsafe(32)}"
        token = AccessToken(user=w.alice, application=w.acme_app, scope="chat", expires=timezone.now() + timedelta(hours=1))
        set_token_value(token, w.acme_token)
        token.save()
        w.globex_basic = "Basic " + base64.b64encode(f"{w.globex_app.client_id}:{globex_secret}".encode()).decode()
    return w


def _oauth_unchanged(w):
    from apps.oauth.models import AccessToken, Application

    assert Application.objects.filter(id=w.acme_app.id, name=w.acme_app.name, redirect_uris="").exists()
    assert AccessToken.objects.filter(application=w.acme_app).count() == 1


def _oauth_apps_list(w):
    _oauth(w)
    _absent(w.charlie_client().get("/api/v1/oauth-applications/"), w.acme_app.client_id, w.acme_app.name)


def _oauth_apps_create(w):
    _oauth(w)
    r = w.charlie_client().post("/api/v1/oauth-applications/", {"name": "x", "organisation": w.acme.id,
                                "client_type": "public", "redirect_uris": "https://x.example/cb"}, content_type="application/json")
    _refused(r, 400, 403)
    _oauth_unchanged(w)


def _oauth_app_api(method):
    def case(w):
        _oauth(w)
        r = getattr(w.charlie_client(), method)(f"/api/v1/oauth-applications/{w.acme_app.id}/",
                                                {"name": "mine", "redirect_uris": "https://evil.example/cb"},
                                                content_type="application/json")
        _refused(r, 404)
        _oauth_unchanged(w)
    return case


def _portal_oauth_apps(w):
    _oauth(w)
    _absent(w.charlie_client().get("/oauth-apps/"), w.acme_app.client_id, w.acme_app.name)


def _portal_oauth_apps_create(w):
    _oauth(w)
    w.charlie_client().post("/oauth-apps/", {"name": "x", "organisation": w.acme.id, "client_type": "public",
                                             "authorization_grant_type": "authorization-code",
                                             "redirect_uris": "https://x.example/cb"})
    _oauth_unchanged(w)
    from apps.oauth.models import Application

    assert not Application.objects.filter(organisation=w.acme, user=w.charlie).exists()


def _portal_oauth_app_edit(method):
    def case(w):
        _oauth(w)
        r = getattr(w.charlie_client(), method)(f"/oauth-apps/{w.acme_app.id}/",
                                                *([{"name": "mine", "redirect_uris": "https://evil.example/cb"}]
                                                  if method == "post" else []))
        _refused(r, 404)
        _oauth_unchanged(w)
    return case


def _portal_oauth_app_delete(w):
    _oauth(w)
    _refused(w.charlie_client().post(f"/oauth-apps/{w.acme_app.id}/delete/"), 404)
    _oauth_unchanged(w)


def _oauth_token(w):
    _oauth(w)  # charlie's secret does not open acme's client
    r = Client().post("/o/token/", {"grant_type": "client_credentials", "client_id": w.acme_app.client_id,
                                    "client_secret": "not-" + w.acme_app.client_id})
    _refused(r, 400, 401)
    r = Client().post("/o/token/", {"grant_type": "client_credentials", "client_id": w.acme_app.client_id},
                      HTTP_AUTHORIZATION=w.globex_basic)  # globex's credentials, acme's client id
    _refused(r, 400, 401)
    _oauth_unchanged(w)  # no token was issued to acme's application


def _oauth_revoke(w):
    _oauth(w)  # RFC 7009 answers 200 whatever the token; the toolkit revokes only the calling client's
    Client().post("/o/revoke_token/", {"token": w.acme_token}, HTTP_AUTHORIZATION=w.globex_basic)
    _oauth_unchanged(w)


def _oauth_introspect(w):
    _oauth(w)
    r = Client().post("/o/introspect/", {"token": w.acme_token}, HTTP_AUTHORIZATION=w.globex_basic)
    assert r.status_code == 200 and r.json() == {"active": False}


def _portal_members_home(w):
    _absent(w.charlie_client().get("/members/", follow=True), w.acme.name, w.bob.username)


def _portal_members(w):
    _refused(w.charlie_client().get(f"/members/{w.acme.id}/"))


def _portal_invite(w):
    from apps.accounts.models import Invitation

    _refused(w.charlie_client().post(f"/members/{w.acme.id}/invite/", {"email": "mole@example.com", "role": "owner"}))
    assert not Invitation.objects.filter(organisation=w.acme).exists()


def _portal_member_role(w):
    _refused(w.charlie_client().post(f"/members/{w.acme.id}/{w.bob_membership.id}/role/", {"role": "owner"}))


def _portal_member_remove(w):
    _refused(w.charlie_client().post(f"/members/{w.acme.id}/{w.bob_membership.id}/remove/"))


def _portal_invitation_revoke(w):
    from apps.accounts.models import Invitation
    from apps.accounts.services import invitation_create

    invitation, _ = invitation_create(w.acme, "newcomer@example.com", days=7)
    _refused(w.charlie_client().post(f"/members/{w.acme.id}/invitations/{invitation.id}/revoke/"))
    # and through charlie's own organisation's URL
    _refused(w.charlie_client().post(f"/members/{w.globex.id}/invitations/{invitation.id}/revoke/"))
    assert Invitation.objects.filter(id=invitation.id).exists()


def _billing(path):
    def case(w):
        month = f"{timezone.localdate():%Y-%m}"
        url = f"/api/v1/billing/organisations/{w.acme.id}/{path}"
        for user in (w.charlie, w.bob):  # another tenant, and acme's developer (spend is not theirs to read)
            _refused(w.client(user).get(url, {"month": month}), 404)
        assert w.client(w.alice).get(url, {"month": month}).status_code == 200  # the owner may
    return case


def _billing_top_spenders(w):
    r = w.charlie_client().get("/api/v1/billing/top-spenders/", {"month": f"{timezone.localdate():%Y-%m}"})
    _refused(r, 403)
    _absent(r, w.acme.name)


CASES = {
    ("key-list", "GET"): _keys_list, ("key-list", "POST"): _keys_create,
    ("key-detail", "GET"): _key_detail, ("key-revoke", "POST"): _key_revoke_api,
    ("key-rotate", "POST"): _key_rotate_api,
    ("usage-list", "GET"): _usage_list,
    ("organisation-list", "GET"): _org_list, ("organisation-detail", "GET"): _org_detail,
    ("organisation-detail", "PUT"): _org_update("put"), ("organisation-detail", "PATCH"): _org_update("patch"),
    ("membership-list", "GET"): _members_list, ("membership-list", "POST"): _members_create,
    ("membership-detail", "GET"): _member_detail, ("membership-detail", "PATCH"): _member_update,
    ("membership-detail", "DELETE"): _member_delete,
    ("dashboard", "GET"): _portal_dashboard,
    ("keys", "GET"): _portal_keys, ("keys", "POST"): _portal_keys,
    ("key_revoke", "POST"): _portal_key_revoke, ("key_rotate", "POST"): _portal_key_rotate,
    ("usage", "GET"): _portal_usage, ("usage_csv", "GET"): _portal_usage_csv,
    ("oauth-application-list", "GET"): _oauth_apps_list, ("oauth-application-list", "POST"): _oauth_apps_create,
    ("oauth-application-detail", "GET"): _oauth_app_api("get"),
    ("oauth-application-detail", "PATCH"): _oauth_app_api("patch"),
    ("oauth-application-detail", "DELETE"): _oauth_app_api("delete"),
    ("oauth_apps", "GET"): _portal_oauth_apps, ("oauth_apps", "POST"): _portal_oauth_apps_create,
    ("oauth_app_edit", "GET"): _portal_oauth_app_edit("get"), ("oauth_app_edit", "POST"): _portal_oauth_app_edit("post"),
    ("oauth_app_delete", "POST"): _portal_oauth_app_delete,
    ("token", "POST"): _oauth_token, ("revoke-token", "POST"): _oauth_revoke, ("introspect", "POST"): _oauth_introspect,
    ("playground", "GET"): _portal_playground,
    ("members_home", "GET"): _portal_members_home, ("members", "GET"): _portal_members,
    ("invite", "POST"): _portal_invite, ("member_role", "POST"): _portal_member_role,
    ("member_remove", "POST"): _portal_member_remove, ("invitation_revoke", "POST"): _portal_invitation_revoke,
    ("billing-statement", "GET"): _billing("statement/"), ("billing-statement-csv", "GET"): _billing("statement.csv"),
    ("billing-spend", "GET"): _billing("spend/"), ("billing-top-spenders", "GET"): _billing_top_spenders,
}

# /v1 and the WebSocket hold no object of a tenant but the models a key may use: charlie's key is
# limited to tbank/*, and nothing else of the catalogue is reachable or even named to it.
GATEWAY_CASES = {
    ("v1 /v1/chat/completions", "POST"): lambda g, key: _refused(httpx.post(
        g.v1 + "/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=10,
        json={"model": "gigachat/GigaChat", "messages": [{"role": "user", "content": "hi"}]})),
    ("v1 /v1/embeddings", "POST"): lambda g, key: _refused(httpx.post(
        g.v1 + "/embeddings", headers={"authorization": f"Bearer {key}"}, timeout=10,
        json={"model": "gigachat/Embeddings", "input": "hi"})),
    ("v1 /v1/responses", "POST"): lambda g, key: _refused(httpx.post(
        g.v1 + "/responses", headers={"authorization": f"Bearer {key}"}, timeout=10,
        json={"model": "gigachat/GigaChat", "input": "hi"})),
    ("v1 /v1/xrouter/tokenize", "POST"): lambda g, key: _refused(httpx.post(
        g.v1 + "/xrouter/tokenize", headers={"authorization": f"Bearer {key}"}, timeout=10,
        json={"model": "gigachat/GigaChat", "messages": [{"role": "user", "content": "hi"}]})),
    ("v1 /v1/models", "GET"): lambda g, key: _v1_models_only_tbank(g, key),
    ("v1 /v1/models/<id>", "GET"): lambda g, key: _refused(httpx.get(
        g.v1 + "/models/gigachat/GigaChat", headers={"authorization": f"Bearer {key}"}, timeout=10)),
    ("ws /v1/realtime/chat", "CONNECT"): lambda g, key: _ws_refuses_other_models(g, key),
}


def _v1_models_only_tbank(g, key):
    r = httpx.get(g.v1 + "/models", headers={"authorization": f"Bearer {key}"}, timeout=10)
    assert r.status_code == 200
    ids = [m["id"] for m in r.json()["data"]]
    assert ids and all(i.startswith("tbank/") for i in ids), ids


def _ws_refuses_other_models(g, key):
    import asyncio
    import json

    import websockets

    async def go():
        url = g.base_url.replace("http://", "ws://") + "/v1/realtime/chat"
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {key}"},
                                      open_timeout=10) as ws:
            await ws.send(json.dumps({"type": "request", "model": "gigachat/GigaChat",
                                      "messages": [{"role": "user", "content": "hi"}]}))
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    frame = asyncio.run(go())
    assert frame["type"] == "error" and frame["error"]["code"] in ("model_not_allowed", "model_not_found"), frame


# --- the tests ---


def test_every_route_has_an_ownership_case():
    routes = django_routes()
    missing = sorted(r for r in routes if r not in CASES and r not in NO_TENANT_OBJECT)
    missing += sorted(r for r in gateway_routes() | websocket_routes() if r not in GATEWAY_CASES)
    assert not missing, f"routes without an ownership case (add one to CASES/GATEWAY_CASES): {missing}"
    stale = sorted(set(CASES) - routes) + sorted(set(GATEWAY_CASES) - gateway_routes() - websocket_routes())
    assert not stale, f"cases for routes that no longer exist: {stale}"


@pytest.fixture
def world(alice, bob, charlie, acme, globex):
    from tests.accounts.conftest import _member

    _member(alice, acme, Membership.Role.OWNER)
    _member(bob, acme, Membership.Role.DEVELOPER)
    _member(charlie, globex, Membership.Role.OWNER)
    return World(alice, bob, charlie, acme, globex)


@pytest.mark.django_db
@pytest.mark.parametrize("route", sorted(CASES), ids=lambda r: f"{r[1]} {r[0]}")
def test_charlie_cannot_reach_acme_through(route, world):
    CASES[route](world)
    world.assert_unchanged()


@pytest.mark.parametrize("route", sorted(GATEWAY_CASES), ids=lambda r: f"{r[1]} {r[0]}")
def test_a_limited_key_reaches_nothing_else_through(route, gateway):
    GATEWAY_CASES[route](gateway, gateway.keys["charlie"])


@pytest.mark.django_db
def test_the_admin_is_closed_to_members_on_every_route(world):
    """Every admin route, with placeholder arguments, sends a signed-in non-staff owner to the login page."""
    client = world.client(world.alice)
    checked = 0
    for route, pattern in _walk(get_resolver().url_patterns):
        if not route.startswith("admin/") or pattern.name in (None, "login", "logout", "javascript-catalog"):
            continue
        args = {name: (str(world.key.id) if name == "object_id" else "1") for name in pattern.pattern.regex.groupindex}
        try:
            url = reverse(f"admin:{pattern.name}", kwargs=args) if args else reverse(f"admin:{pattern.name}")
        except Exception:  # a route whose arguments take another shape (app_label: a name): give it one
            url = reverse(f"admin:{pattern.name}", kwargs={**args, **{k: "keys" for k in args if k == "app_label"}})
        r = client.get(url)
        assert r.status_code == 302 and re.search(r"/admin/login/", r["Location"]), (url, r.status_code)
        checked += 1
    assert checked > 20
