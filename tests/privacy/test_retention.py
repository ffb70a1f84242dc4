"""The prompt log (masked, batched, expired) and usage rows forgetting who made them."""

import asyncio
import datetime
from types import SimpleNamespace

from django.utils import timezone

PHONE = "+7 912 345-67-89"


def test_the_prompt_log_stores_masked_text_only_after_a_flush(db, settings):
    from apps.privacy import prompt_log
    from apps.privacy.models import PromptLog

    key = SimpleNamespace(kind="key", id=7, organisation_id=3)
    prompt_log.record("req-pl-1", key, "mts/gpt-4o", f"call {PHONE}", f"Echo: call {PHONE}", False)
    assert not PromptLog.objects.filter(request_id="req-pl-1").exists()  # nothing written on the request path
    batch, prompt_log._pending, prompt_log._pending_chars = prompt_log._pending, [], 0
    assert prompt_log.prompt_log_store(batch) == 1
    row = PromptLog.objects.get(request_id="req-pl-1")
    assert (row.prompt, row.answer, row.api_key_id, row.organisation_id) == (
        "call [PHONE_1]", "Echo: call [PHONE_1]", 7, 3)


def test_the_prompt_log_buffer_is_bounded(monkeypatch):
    from apps.privacy import prompt_log

    monkeypatch.setattr(prompt_log, "MAX_PENDING_CHARS", 10)
    monkeypatch.setattr(prompt_log, "_pending", [])
    monkeypatch.setattr(prompt_log, "_pending_chars", 0)
    key = SimpleNamespace(kind="oauth", id=1, organisation_id=None)
    prompt_log.record("a", key, "m", "12345", "", False)
    prompt_log.record("b", key, "m", "123456", "", False)  # would pass the bound: dropped
    assert [entry[0] for entry in prompt_log._pending] == ["a"]
    assert prompt_log._pending[0][1] is None  # only API keys are named by id


def test_prompt_log_rows_past_retention_are_deleted(db, settings):
    from apps.privacy.models import PromptLog
    from apps.privacy.tasks import prompt_log_retention_task

    settings.XROUTER = {**settings.XROUTER, "PROMPT_LOG_DAYS": 30}
    now = timezone.now()
    PromptLog.objects.create(request_id="old", prompt="x", created_at=now - datetime.timedelta(days=31))
    PromptLog.objects.create(request_id="new", prompt="x", created_at=now - datetime.timedelta(days=29))
    assert prompt_log_retention_task() == 1
    assert list(PromptLog.objects.filter(request_id__in=["old", "new"]).values_list("request_id", flat=True)) == ["new"]


def test_old_usage_rows_forget_their_user_and_keep_the_bill(db, settings):
    from apps.privacy.tasks import usage_forget_users_task
    from apps.usage.models import UsageRecord

    settings.XROUTER = {**settings.XROUTER, "USAGE_USER_RETENTION_DAYS": 365}
    now = timezone.now()
    old = now - datetime.timedelta(days=400)
    UsageRecord.objects.create(request_id="u-old", user_id=5, principal="key", principal_id=9, api_key_id=9,
                               organisation_id=2, prompt_tokens=10, cost=1, created_at=old)
    UsageRecord.objects.create(request_id="u-jwt", user_id=5, principal="jwt", principal_id=5, organisation_id=2,
                               created_at=old)
    UsageRecord.objects.create(request_id="u-new", user_id=5, principal="key", principal_id=9, created_at=now)
    assert usage_forget_users_task() == 2
    rows = {r.request_id: r for r in UsageRecord.objects.filter(request_id__startswith="u-")}
    assert (rows["u-old"].user_id, rows["u-old"].api_key_id, rows["u-old"].prompt_tokens) == (None, 9, 10)
    assert (rows["u-jwt"].user_id, rows["u-jwt"].principal_id) == (None, None)
    assert rows["u-new"].user_id == 5
    settings.XROUTER = {**settings.XROUTER, "USAGE_USER_RETENTION_DAYS": 0}
    assert usage_forget_users_task() == 0  # 0 keeps them


def test_the_gateway_queues_prompts_only_under_a_policy_with_logging_on(settings):
    from apps.common.personal_data import Policy
    from apps.privacy import prompt_log
    from apps.privacy.guardrails import guard_for

    key = SimpleNamespace(kind="key", id=1, organisation_id=None, policies=(Policy(mode="mask"),))
    plan = SimpleNamespace(policies=())
    body = {"messages": [{"role": "user", "content": f"hi {PHONE}"}]}
    settings.XROUTER = {**settings.XROUTER, "LOG_PROMPTS": False}
    assert guard_for(key, plan, body, "r") is None  # mask alone does nothing on the request path
    settings.XROUTER = {**settings.XROUTER, "LOG_PROMPTS": True}
    guard = guard_for(key, plan, body, "r-log")
    target = SimpleNamespace(model=SimpleNamespace(jurisdiction="RU", provider="p", public_id="p/m"))
    assert asyncio.run(guard.before()) is None and guard.upstream(target) is body  # mask: the provider sees it as is
    guard.after(target, "answer")
    assert prompt_log._pending[-1][0] == "r-log" and PHONE in prompt_log._pending[-1][4]  # masked at the flush
    prompt_log._pending.pop()


def test_the_only_owner_of_an_organisation_with_members_cannot_delete_their_account(alice, bob, acme):
    import pytest
    from django.core.exceptions import PermissionDenied

    from apps.accounts.models import User
    from apps.privacy.services import account_delete

    with pytest.raises(PermissionDenied, match="acme"):
        account_delete(alice)
    assert User.objects.filter(id=alice.id).exists()
    account_delete(bob)  # a developer may always go
    assert not User.objects.filter(id=bob.id).exists()


def test_auditors_read_the_prompt_log_and_other_staff_do_not(db):
    from django.contrib.auth.models import Group

    assert Group.objects.get(name="auditor").permissions.filter(codename="view_promptlog").exists()
    for name in ("operator", "support", "finance"):
        assert not Group.objects.get(name=name).permissions.filter(codename="view_promptlog").exists()


def test_an_export_holds_the_callers_data_only(alice, charlie, alice_key, charlie_key):
    from apps.privacy.services import account_export
    from apps.usage.models import UsageRecord

    UsageRecord.objects.create(request_id="alice-req", user_id=alice.id, created_at=timezone.now())
    exported = account_export(charlie)
    shown = [k["key"] for k in exported["api_keys"]]
    assert f"xr-{charlie_key.key.prefix}-…" in shown and f"xr-{alice_key.key.prefix}-…" not in shown
    assert "alice-req" not in {u["request_id"] for u in exported["usage"]} and exported["user"]["username"] == "charlie"
    assert [m["organisation"] for m in exported["memberships"]] == ["globex"]
