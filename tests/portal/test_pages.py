"""The portal's pages: keys (shown once, working, revocable), ownership, usage, models, language, CSRF."""

import uuid
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.keys.models import ApiKey
from apps.keys.selectors import key_info_for
from apps.keys.services import key_create
from apps.providers.models import Provider, ProviderModel
from apps.usage.models import UsageRecord

pytestmark = pytest.mark.django_db


def _create_key(client, organisation, name="portal-key", **extra):
    data = {"name": name, "organisation": organisation.pk, "scopes": ["chat", "models:read"]} | extra
    return client.post("/keys/", data)


def test_a_key_is_shown_once_works_and_is_revoked(browser, alice, acme):
    client = browser(alice)

    page = _create_key(client, acme, allowed_models="gigachat/*")

    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    plaintext = page.context["plaintext"]
    assert plaintext.startswith("xr-") and plaintext in page.content.decode()
    info = key_info_for(plaintext)  # the key works: the gateway's lookup finds it
    key = ApiKey.objects.get(pk=page.context["created"].pk)
    assert info is not None and info.id == key.id
    assert (key.organisation, key.scopes, key.allowed_models) == (acme, ["chat", "models:read"], ["gigachat/*"])
    # Never in a cookie, the session or the messages framework; never again on the page.
    assert all(plaintext not in morsel.value for morsel in page.cookies.values())
    assert plaintext not in str(dict(client.session))
    again = client.get("/keys/")
    assert plaintext not in again.content.decode() and f"xr-{key.prefix}-…" in again.content.decode()

    revoked = client.post(f"/keys/{key.pk}/revoke/")

    assert revoked.status_code == 302
    assert key_info_for(plaintext) is None
    assert ApiKey.objects.get(pk=key.pk).revoked_at is not None


def test_the_plaintext_reaches_no_log(browser, alice, acme, caplog):
    caplog.set_level("DEBUG")
    page = _create_key(browser(alice), acme)
    assert page.context["plaintext"] and page.context["plaintext"] not in caplog.text


def test_the_organisation_policy_bounds_portal_keys(browser, alice, acme):
    acme.allowed_models = ["gigachat/*"]
    acme.save()

    page = _create_key(browser(alice), acme, allowed_models="yandexgpt/*")

    assert page.status_code == 200 and page.context["plaintext"] is None
    assert "gigachat/*" in str(page.context["form"].non_field_errors())
    assert not ApiKey.objects.filter(name="portal-key").exists()


def test_an_expiry_in_the_past_is_refused(browser, alice, acme):
    page = _create_key(browser(alice), acme, expires_on="2000-01-01")
    assert page.context["form"].errors["expires_on"] and not ApiKey.objects.filter(name="portal-key").exists()


def test_who_sees_which_keys(browser, alice, bob, charlie, dave):
    alice_key, _ = key_create(user=alice, name="alice-key")
    bob_key, _ = key_create(user=bob, name="bob-key")
    charlie_key, _ = key_create(user=charlie, name="charlie-key")

    ours = {"alice-key", "bob-key", "charlie-key"}  # keys other tests committed (the shared gateway's) are not ours

    def listed(user):
        return {k.name for k in browser(user).get("/keys/").context["keys"]} & ours

    assert listed(alice) == {"alice-key", "bob-key"}  # the owner: every key of acme
    assert listed(bob) == {"bob-key"}  # a developer: their own
    assert listed(charlie) == {"charlie-key"}  # another tenant
    page = browser(dave).get("/keys/")
    assert not page.context["keys"] and not page.context["can_issue"]  # a billing viewer: none, and no form


def test_nobody_revokes_keys_they_may_not_see(browser, alice, bob, charlie, dave):
    alice_key, _ = key_create(user=alice, name="alice-key")
    charlie_key, _ = key_create(user=charlie, name="charlie-key")

    assert browser(charlie).post(f"/keys/{alice_key.pk}/revoke/").status_code == 404  # another tenant
    assert browser(bob).post(f"/keys/{alice_key.pk}/revoke/").status_code == 404  # a colleague's key
    assert browser(dave).post(f"/keys/{alice_key.pk}/revoke/").status_code == 404  # a billing viewer
    assert browser(alice).post(f"/keys/{charlie_key.pk}/revoke/").status_code == 404
    assert not ApiKey.objects.filter(pk__in=[alice_key.pk, charlie_key.pk], revoked_at__isnull=False).exists()


def test_an_owner_revokes_a_developers_key(browser, alice, bob):
    bob_key, plaintext = key_create(user=bob, name="bob-key")
    assert browser(alice).post(f"/keys/{bob_key.pk}/revoke/").status_code == 302
    assert key_info_for(plaintext) is None


def test_a_developer_cannot_issue_in_another_organisation(browser, bob, globex):
    page = _create_key(browser(bob), globex)
    assert page.context["form"].errors["organisation"] and not ApiKey.objects.filter(name="portal-key").exists()


def test_revoking_needs_post_and_csrf(browser, alice):
    key, _ = key_create(user=alice, name="alice-key")
    strict = browser(enforce_csrf_checks=True)
    strict.force_login(alice)

    assert strict.get(f"/keys/{key.pk}/revoke/").status_code == 405
    assert strict.post(f"/keys/{key.pk}/revoke/").status_code == 403
    assert ApiKey.objects.get(pk=key.pk).revoked_at is None


def test_pages_need_a_session(browser):
    for path in ("/", "/keys/", "/models/", "/usage/", "/usage.csv"):
        page = browser().get(path)
        assert page.status_code == 302 and page["Location"].startswith("/accounts/login/?next="), path


def _usage(organisation, model, cost="0.5", **extra):
    return UsageRecord.objects.create(
        request_id=uuid.uuid4().hex, organisation_id=organisation.pk, key_prefix="abcd1234", model=model,
        provider="gigachat", prompt_tokens=10, completion_tokens=5, cost=Decimal(cost),
        created_at=timezone.now(), **extra)


def test_usage_dashboard_and_csv_show_only_ones_organisations(browser, alice, charlie, acme, globex):
    _usage(acme, "gigachat/GigaChat", cost="1.25")
    _usage(acme, "gigachat/GigaChat", cost="0.75")
    _usage(globex, "=cmd|evil", cost="9")
    client = browser(alice)

    dashboard = client.get("/")
    usage = client.get("/usage/")
    csv = b"".join(client.get("/usage.csv").streaming_content).decode()

    assert dashboard.context["totals"] == {"requests": 2, "tokens": 30, "spend": Decimal("2.000000")}
    assert [r.model for r in usage.context["rows"]] == ["gigachat/GigaChat"] * 2
    lines = csv.strip().splitlines()
    assert lines[0].startswith("created_at,request_id") and len(lines) == 3
    assert "evil" not in csv
    charlie_csv = b"".join(browser(charlie).get("/usage.csv").streaming_content).decode()
    assert "'=cmd|evil" in charlie_csv  # a formula is defused for spreadsheets


def test_billing_viewers_see_usage(browser, dave, acme):
    _usage(acme, "gigachat/GigaChat")
    assert len(browser(dave).get("/usage/").context["rows"]) == 1


def test_models_and_prices(browser, alice):
    provider = Provider.objects.create(name=f"p-{uuid.uuid4().hex[:6]}", kind="openai", base_url="http://127.0.0.1:1",
                                       jurisdiction="RU")
    ProviderModel.objects.create(provider=provider, name="m-large", input_price=Decimal("1.5"),
                                 output_price=Decimal("3"), context_window=32768)
    ProviderModel.objects.create(provider=provider, name="m-off", enabled=False)

    page = browser(alice).get("/models/").content.decode()

    assert f"{provider.name}/m-large" in page and "32768" in page and "1,5000" in page  # Russian number format
    assert "m-off" not in page


def test_russian_by_default_english_on_request(browser, alice):
    client = browser(alice)

    russian = client.get("/keys/").content.decode()
    switched = client.post("/i18n/setlang/", {"language": "en", "next": "/keys/"})
    english = client.get("/keys/").content.decode()

    assert 'lang="ru"' in russian and "API-ключи" in russian and "Создать ключ" in russian
    assert switched.status_code == 302 and switched["Location"] == "/keys/"
    assert 'lang="en"' in english and "Create the key" in english and "Создать ключ" not in english


def test_the_dashboard_names_roles_in_the_current_language(browser, alice):
    client = browser(alice)
    assert "acme · владелец" in client.get("/").content.decode()
    client.post("/i18n/setlang/", {"language": "en", "next": "/"})
    assert "acme · owner" in client.get("/").content.decode()


def test_the_management_api_stays_english(browser, alice):
    client = browser(HTTP_ACCEPT_LANGUAGE="ru")
    refused = client.get("/api/v1/keys/")
    assert refused.status_code in (401, 403)
    assert "credentials" in refused.content.decode().lower()


def test_login_page_offers_the_language_switch_and_csrf(browser):
    page = browser().get("/accounts/login/").content.decode()
    assert "Войти" in page and 'action="/i18n/setlang/"' in page and "csrfmiddlewaretoken" in page
