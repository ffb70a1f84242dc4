"""A portal user's own data in Chromium, through the real server: the JSON export, then deleting the account
(the confirmation refused once, then accepted): the key stops working, usage rows keep the bill, not the user."""

import json
import uuid

from django.db import connections
from django.utils import timezone
from openai import AuthenticationError, OpenAI


def test_a_user_exports_their_data_and_deletes_their_account(portal, page_for, django_db_blocker):
    from apps.accounts.models import Membership, Organisation, User
    from apps.accounts.services import membership_add
    from apps.keys.services import key_create
    from apps.usage.models import UsageRecord

    tag = uuid.uuid4().hex[:6]
    with django_db_blocker.unblock():
        organisation = Organisation.objects.create(name=f"leavers-{tag}")
        user = User.objects.create_user(f"lena-{tag}", f"lena-{tag}@example.com", "correct horse battery")
        membership_add(organisation, user, Membership.Role.OWNER)
        key, plaintext = key_create(user=user, name="website", organisation=organisation)
        UsageRecord.objects.create(request_id=f"leave-{tag}", user_id=user.id, api_key_id=key.id, principal_id=key.id,
                                   organisation_id=organisation.id, prompt_tokens=12, cost=3, created_at=timezone.now())
    connections.close_all()
    client = OpenAI(base_url=portal.v1, api_key=plaintext, max_retries=0, timeout=30)
    assert client.models.list().data

    page = page_for("en")
    page.goto(portal.base_url + "/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "correct horse battery")
    page.get_by_role("button", name="Sign in", exact=True).click()
    page.wait_for_url(portal.base_url + "/")
    page.get_by_role("link", name="Your data").click()

    with page.expect_download() as download:
        page.locator("#export-data").click()
    exported = json.loads(open(download.value.path(), encoding="utf-8").read())
    assert exported["user"]["username"] == user.username and exported["user"]["email"] == user.email
    assert [k["key"] for k in exported["api_keys"]] == [f"xr-{key.prefix}-…"]
    assert plaintext not in json.dumps(exported) and key.hashed_key not in json.dumps(exported)
    assert exported["memberships"] == [{"organisation": organisation.name, "role": "owner",
                                        "since": exported["memberships"][0]["since"]}]
    assert exported["usage"][0]["request_id"] == f"leave-{tag}"

    form = page.locator("#delete-account")
    form.locator("input[name=confirm]").fill("someone-else")
    form.locator("input[name=password]").fill("correct horse battery")
    form.get_by_role("button", name="Delete my account").click()
    assert "Type your username" in page.locator("#delete-error").inner_text()
    with django_db_blocker.unblock():
        assert User.objects.filter(id=user.id).exists()
    connections.close_all()

    form = page.locator("#delete-account")
    form.locator("input[name=confirm]").fill(user.username)
    form.locator("input[name=password]").fill("correct horse battery")
    form.get_by_role("button", name="Delete my account").click()
    page.wait_for_url(portal.base_url + "/accounts/login/")
    assert "deleted" in page.content()

    with django_db_blocker.unblock():
        assert not User.objects.filter(id=user.id).exists()
        row = UsageRecord.objects.get(request_id=f"leave-{tag}")
        assert (row.user_id, row.organisation_id, row.prompt_tokens) == (None, organisation.id, 12)
    connections.close_all()
    try:
        client.models.list()
        raise AssertionError("the deleted user's key still works")
    except AuthenticationError:
        pass
