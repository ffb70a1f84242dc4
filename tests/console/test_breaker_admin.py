"""Breakers set by hand through their own admin list go through breaker_set / breaker_clear: the target
is checked, the write audited, and the target cannot be changed under an existing breaker."""

import pytest

from apps.audit.models import AuditEvent
from apps.providers.models import Provider, ProviderModel
from apps.routing.models import ManualBreaker

ADD = "/admin/routing/manualbreaker/add/"


@pytest.fixture
def root(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    provider = Provider.objects.create(name="gigachat", kind="gigachat", base_url="https://gigachat.example.invalid/api/v1")
    ProviderModel.objects.create(provider=provider, name="GigaChat-2")
    return client


def test_a_breaker_added_in_its_list_is_checked_audited_and_released_on_delete(root):
    page = root.post(ADD, {"target": "gigachat/NoSuch", "open": "on", "reason": "x"})
    assert page.status_code == 200 and "no model &#x27;gigachat/NoSuch&#x27;" in page.content.decode()

    page = root.post(ADD, {"target": "gigachat/GigaChat-2", "open": "on", "reason": "incident"})
    assert page.status_code == 302
    breaker = ManualBreaker.objects.get(target="gigachat/GigaChat-2")
    assert breaker.open and breaker.set_by == "root"
    assert AuditEvent.objects.get(action="breaker.opened").detail["reason"] == "incident"
    assert 'name="target"' not in root.get(f"/admin/routing/manualbreaker/{breaker.pk}/change/").content.decode()

    root.post(f"/admin/routing/manualbreaker/{breaker.pk}/delete/", {"post": "yes"})
    assert not ManualBreaker.objects.exists() and AuditEvent.objects.filter(action="breaker.released").exists()
