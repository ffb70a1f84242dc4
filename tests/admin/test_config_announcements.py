"""Configuration writes reach every gateway process through the bus, announced by the services
and admin paths that write (not by model signals): each is checked for its "config" event."""

import pytest

from apps.common import bus
from apps.providers.models import Provider
from apps.routing.config_schema import parse_config
from apps.routing.models import Alias, RoutingRule
from apps.routing.services import config_import, rule_save, rules_delete

pytestmark = pytest.mark.django_db


@pytest.fixture
def heard():
    events = []
    bus.subscribe("config", events.append)
    yield events
    bus._handlers["config"].remove(events.append)


def test_config_import_and_rule_services_announce_after_commit(heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        config_import(parse_config({"providers": {"announced": {"kind": "mts", "base_url": "http://127.0.0.1:9/v1"}}}))
    assert len(heard) == 1
    with django_capture_on_commit_callbacks(execute=True):
        rule = rule_save(RoutingRule(name="t-announced", match_model="x/*", targets=[{"model": "announced/m"}]))
    with django_capture_on_commit_callbacks(execute=True):
        rules_delete(RoutingRule.objects.filter(pk=rule.pk))
    assert len(heard) == 3


def test_an_admin_edit_is_announced_and_a_bare_orm_write_is_not(admin_client, heard, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        Provider.objects.create(name="quiet", kind="mts", base_url="http://127.0.0.1:9/v1")
    assert heard == []  # no signal: writes go through services
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.post("/admin/routing/alias/add/", {"name": "fast", "target": "quiet/m", "enabled": "on"})
    assert answer.status_code == 302, answer.content.decode()[:1000]
    assert Alias.objects.filter(name="fast").exists() and len(heard) == 1
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(f"/admin/routing/alias/{Alias.objects.get(name='fast').pk}/delete/", {"post": "yes"})
    assert not Alias.objects.filter(name="fast").exists() and len(heard) == 2
