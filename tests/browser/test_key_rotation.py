"""The keys page in Chromium: rotate one's key with a grace period, the new key shown once and working with the
openai SDK beside the old one; then revoke the old one (Russian, the default language)."""

import uuid

from django.db import connections
from openai import AuthenticationError, OpenAI

from tests.keys.support import models_status, status_within


def test_rotating_and_revoking_a_key_in_the_portal(portal, page_for, django_db_blocker):
    from apps.accounts.models import Membership, Organisation, User
    from apps.accounts.services import membership_add
    from apps.keys.services import key_create

    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        organisation = Organisation.objects.create(name=f"rotors-{tag}")
        user = User.objects.create_user(f"rita-{tag}", f"rita-{tag}@example.com", "correct horse battery")
        membership_add(organisation, user, Membership.Role.OWNER)
        old, old_plain = key_create(user=user, name="website", organisation=organisation)
    connections.close_all()  # made beside Playwright's event loop: not closed with the session's, so here

    page = page_for("ru")
    page.goto(portal.base_url + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Войти").click()
    page.wait_for_url(portal.base_url + "/")  # signed in: the dashboard
    page.goto(portal.base_url + "/keys/")
    row = page.locator("tr", has_text=f"xr-{old.prefix}-")
    row.locator("select[name=grace]").select_option("86400")
    row.get_by_role("button", name="Заменить").click()

    new_plain = page.locator("#new-key").inner_text().strip()
    assert new_plain.startswith("xr-") and new_plain != old_plain
    assert f"xr-{old.prefix}-" in page.locator("section.created").inner_text()  # "it replaces …"
    for plaintext in (new_plain, old_plain):  # the grace period: both work
        client = OpenAI(base_url=portal.v1, api_key=plaintext, max_retries=0, timeout=30)
        assert client.chat.completions.create(model="gigachat/GigaChat-2",
                                              messages=[{"role": "user", "content": "hi"}]).choices[0].message.content

    page.goto(portal.base_url + "/keys/")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("tr", has_text=f"xr-{old.prefix}-").get_by_role("button", name="Отозвать").click()
    assert status_within(lambda: models_status(portal.base_url, old_plain), 401, timeout=10.0)[0] == 401
    try:
        OpenAI(base_url=portal.v1, api_key=old_plain, max_retries=0, timeout=30).models.list()
        raise AssertionError("the revoked key still works")
    except AuthenticationError:
        pass
    assert models_status(portal.base_url, new_plain) == 200
