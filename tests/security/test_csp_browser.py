"""Issue 12, hardening: the Content-Security-Policy (no inline script) leaves the portal, the admin and the API
docs working: headless Chromium opens each page of theirs and reports no violation; Swagger UI renders."""

import shutil
import uuid

import pytest
from django.db import connections

from tests.browser.conftest import CHROMIUM, FLAGS
from tests.conftest import need, start_gateway, stop_gateway

PORTAL_PAGES = ["/", "/keys/", "/models/", "/playground/", "/usage/", "/security/", "/oauth-apps/", "/members/"]
ADMIN_PAGES = ["/admin/", "/admin/keys/apikey/add/", "/admin/accounts/organisation/", "/admin/providers/provider/",
               "/admin/audit/auditevent/"]


@pytest.fixture(scope="module")
def site(gateway, django_db_blocker):
    """A staff member's password, and a server of the whole product (the session gateway's database)."""
    from apps.accounts.models import Membership, Organisation, User
    from apps.accounts.services import membership_add
    from apps.providers.models import Provider

    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        organisation = Organisation.objects.create(name=f"csp-{tag}")
        user = User.objects.create_superuser(f"csp-{tag}", f"csp-{tag}@example.com", "correct horse battery")
        membership_add(organisation, user, Membership.Role.OWNER)
        provider_id = Provider.objects.order_by("id").values_list("id", flat=True).first()
    connections.close_all()
    process, base = start_gateway()
    yield base, user.username, provider_id
    stop_gateway(process)


@pytest.fixture(scope="module")
def page(site):
    need("Chromium (/usr/bin/chromium; apt-get install chromium)", shutil.which(CHROMIUM) is not None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        context = browser.new_context(locale="en", extra_http_headers={"Accept-Language": "en"})
        context.set_default_timeout(15_000)
        tab = context.new_page()
        tab.violations = []
        tab.on("console", lambda message: "Content Security Policy" in message.text and tab.violations.append(message.text))
        tab.on("pageerror", lambda error: tab.violations.append(f"page error: {error}"))
        base, username, _ = site
        tab.goto(base + "/accounts/login/")
        tab.fill("input[name=username]", username)
        tab.fill("input[name=password]", "correct horse battery")
        tab.locator("form button.primary[type=submit]").click()
        tab.wait_for_url(base + "/")
        yield tab
        browser.close()


def visit(page, url):
    page.violations.clear()
    answer = page.goto(url)
    page.wait_for_load_state("networkidle")
    assert answer.status == 200, url
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert not page.violations, (url, page.violations)


def test_the_portal_pages_work_under_the_policy(site, page):
    for path in PORTAL_PAGES:
        visit(page, site[0] + path)


def test_the_admin_works_under_the_policy(site, page):
    base, _, provider_id = site
    for path in [*ADMIN_PAGES, f"/admin/providers/provider/{provider_id}/change/"]:
        visit(page, base + path)
    # The admin's own scripts run (its JavaScript, from static files): the "select all" box checks every row.
    page.goto(base + "/admin/providers/provider/")
    page.locator("#action-toggle").check()
    assert page.locator("input.action-select:checked").count() == page.locator("input.action-select").count() > 0


def test_the_api_docs_render_under_the_policy(site, page):
    visit(page, site[0] + "/api/docs/")
    page.locator(".swagger-ui .info .title").wait_for()
    assert "XRouter API" in page.locator(".swagger-ui .info .title").inner_text()
    assert page.locator(".opblock").count() > 5  # the operations, from the schema Swagger UI fetched
