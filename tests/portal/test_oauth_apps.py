"""The portal's OAuth applications page: register (secret shown once), see, edit and delete, by role and tenant,
in Russian by default and in English."""

import re

import pytest

from apps.oauth.models import Application
from apps.oauth.services import application_create

PAGE = "/oauth-apps/"


def _register(client, acme, **fields):
    return client.post(PAGE, {"name": "acme batch", "organisation": acme.id, "client_type": "confidential",
                              "authorization_grant_type": "client-credentials", "redirect_uris": "", **fields})


@pytest.mark.django_db
def test_a_developer_registers_an_application_and_sees_the_secret_once(browser, bob, acme):
    client = browser(bob)
    page = _register(client, acme)
    assert page.status_code == 200 and page["Cache-Control"] == "no-store"
    secret = re.search(r'<pre class="secret" id="new-client-secret">([^<]+)</pre>', page.content.decode()).group(1)
    application = Application.objects.get(organisation=acme, name="acme batch")
    assert application.user == bob and application.client_secret != secret  # stored hashed
    assert application.client_id in page.content.decode()
    again = client.get(PAGE).content.decode()
    assert "acme batch" in again and secret not in again


@pytest.mark.django_db
def test_a_public_pkce_client_gets_no_secret_and_needs_good_redirect_uris(browser, alice, acme):
    client = browser(alice)
    refused = _register(client, acme, client_type="public", authorization_grant_type="authorization-code",
                        redirect_uris="http://app.example.com/callback")
    assert refused.status_code == 200 and not Application.objects.filter(organisation=acme).exists()
    assert "loopback" in refused.content.decode()
    made = _register(client, acme, client_type="public", authorization_grant_type="authorization-code",
                     redirect_uris="https://app.example.com/callback\nhttp://127.0.0.1/callback")
    assert 'id="new-client-secret"' not in made.content.decode()
    assert Application.objects.get(organisation=acme).redirect_uris == "https://app.example.com/callback http://127.0.0.1/callback"


@pytest.mark.django_db
def test_who_may_change_what(browser, alice, bob, charlie, dave, acme):
    application, _ = application_create(user=alice, organisation=acme, name="alice app", client_type="public",
                                        redirect_uris="https://a.example/cb")
    edit, delete = f"{PAGE}{application.pk}/", f"{PAGE}{application.pk}/delete/"
    assert "alice app" in browser(bob).get(PAGE).content.decode()  # members see
    assert "alice app" in browser(dave).get(PAGE).content.decode()
    assert 'action="/oauth-apps/"' not in browser(dave).get(PAGE).content.decode()  # billing viewers register nothing
    assert browser(bob).get(edit).status_code == 403 and browser(bob).post(delete).status_code == 403
    assert "alice" not in browser(charlie).get(PAGE).content.decode()
    assert browser(charlie).get(edit).status_code == 404 and browser(charlie).post(delete).status_code == 404
    saved = browser(alice).post(edit, {"name": "renamed", "redirect_uris": "https://b.example/cb"})
    assert saved.status_code == 302
    application.refresh_from_db()
    assert (application.name, application.redirect_uris) == ("renamed", "https://b.example/cb")
    assert browser(alice).post(delete).status_code == 302
    assert not Application.objects.filter(pk=application.pk).exists()


@pytest.mark.django_db
def test_the_page_speaks_russian_and_english(browser, alice):
    client = browser(alice)
    russian = client.get(PAGE).content.decode()
    assert "OAuth-приложения" in russian and "Зарегистрировать приложение" in russian
    client.post("/i18n/setlang/", {"language": "en", "next": PAGE})
    english = client.get(PAGE).content.decode()
    assert "Register the application" in english and "OAuth applications" in english
