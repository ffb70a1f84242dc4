"""The rule tester with a key: a key that /v1 would refuse says why, instead of a route; a key's own
restrictions shape the answer (explain_route, in process)."""

import datetime

import pytest
from django.utils import timezone

from apps.keys.models import ApiKey
from apps.providers.models import Provider, ProviderModel
from apps.routing.models import RoutingRule
from apps.routing.selectors import explain_route


@pytest.fixture
def rule(db):
    provider = Provider.objects.create(name="gigachat", kind="gigachat", base_url="https://gigachat.example.invalid/api/v1")
    ProviderModel.objects.create(provider=provider, name="GigaChat-2")
    return RoutingRule.objects.create(name="r", match_model="xrouter/*", targets=[{"model": "gigachat/GigaChat-2"}])


def test_a_revoked_or_expired_key_is_reported_as_refused(rule, alice_key, bob_key):
    ApiKey.objects.filter(pk=alice_key.key.pk).update(revoked_at=timezone.now())
    ApiKey.objects.filter(pk=bob_key.key.pk).update(expires_at=timezone.now() - datetime.timedelta(hours=1))

    revoked = explain_route("xrouter/auto", key_prefix=alice_key.key.prefix)
    expired = explain_route("xrouter/auto", key_prefix=bob_key.key.prefix)

    assert revoked["code"] == "invalid_api_key" and revoked["error"].endswith("would be refused: revoked")
    assert expired["code"] == "invalid_api_key" and "would be refused: expired on" in expired["error"]
    assert explain_route("xrouter/auto", key_prefix="nosuch00")["error"] == "No key with prefix nosuch00"


def test_an_active_key_gets_the_route_and_a_prompt_size_counts_as_given(rule, alice_key):
    result = explain_route("xrouter/auto", key_prefix=alice_key.key.prefix, prompt="x" * 400)
    assert result["rule"] == "r" and [t["model"] for t in result["targets"]] == ["gigachat/GigaChat-2"]
    assert result["prompt_tokens"] == 100
    assert explain_route("xrouter/auto", prompt_tokens=7, prompt="x" * 400)["prompt_tokens"] == 7
