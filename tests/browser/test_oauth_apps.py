"""The OAuth applications page in headless Chromium: a developer registers a server application, copies
the secret the page shows once, and that application's client-credentials token calls /v1."""

import re

import httpx
from authlib.integrations.httpx_client import OAuth2Client

from tests.browser.test_login import _sign_in_with_password, person  # noqa: F401 (fixture)


def test_a_developer_registers_an_application_and_its_token_calls_v1(portal, page_for, person):  # noqa: F811
    user = person()
    page = page_for("ru")
    _sign_in_with_password(page, portal.base_url, user)
    page.click("text=OAuth-приложения")
    page.fill("input[name=name]", "ночной отчёт")
    page.select_option("select[name=client_type]", "confidential")
    page.select_option("select[name=authorization_grant_type]", "client-credentials")
    page.click("text=Зарегистрировать приложение")
    client_id = page.locator("#new-client-id").inner_text()
    secret = page.locator("#new-client-secret").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9]{40}", client_id) and len(secret) >= 64
    page.reload()  # shown once: not on the page again
    assert "ночной отчёт" in page.content() and secret not in page.content()

    token = OAuth2Client(client_id, secret, scope="models:read", timeout=30).fetch_token(
        portal.base_url + "/o/token/", grant_type="client_credentials")["access_token"]
    models = httpx.get(portal.base_url + "/v1/models", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert models.status_code == 200 and models.json()["data"]


def test_the_page_in_english(portal, page_for, person):  # noqa: F811
    page = page_for("en")
    _sign_in_with_password(page, portal.base_url, person())
    page.goto(portal.base_url + "/oauth-apps/")
    assert page.locator("h1").inner_text() == "OAuth applications"
    assert page.locator("text=Register the application").is_visible()
