"""Import and export of the configuration from the admin: a preview of a merge and of a replace, then
either applied (a replace deletes unlisted rules and aliases, never a provider that has usage), audited,
and the file never put back into a page (it may hold secrets)."""

import datetime
from decimal import Decimal

import pytest
import yaml
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.providers.models import Credential, Provider, ProviderModel
from apps.routing.models import Alias, RoutingRule
from apps.usage.models import UsageRecord

CONFIG = "/admin/routing/routingrule/config/"
EXPORT = "/admin/routing/routingrule/config/export/"

FILE = """
providers:
  mts:
    kind: mts
    base_url: https://api.gpt.mws.ru/v1
    credentials: {api_key: sk-FILE-SECRET-123}
    models:
      mws-gpt-alpha: {input_price: "0.5", output_price: "0.5", context_window: 32768}
      QwQ-32B: {input_price: "0.6", output_price: "0.6"}
aliases:
  fast: mts/mws-gpt-alpha
rules:
  - name: default-chat
    priority: 5
    match: {model: "xrouter/*"}
    targets: [{model: mts/mws-gpt-alpha, weight: 2}]
"""


@pytest.fixture
def root(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    mts = Provider.objects.create(name="mts", kind="mts", base_url="https://api.gpt.mws.ru/v1")
    ProviderModel.objects.create(provider=mts, name="mws-gpt-alpha", input_price=Decimal("0.5"), output_price=Decimal("0.5"),
                                 context_window=32768)
    used = Provider.objects.create(name="tbank", kind="tbank", base_url="https://tbank.example.invalid/v1")
    ProviderModel.objects.create(provider=used, name="T-lite")
    Credential.objects.create(provider=used, secrets={"api_key": "sk-STORED-SECRET"})
    UsageRecord.objects.create(request_id="r1", provider="tbank", model="T-lite", created_at=timezone.now()
                               - datetime.timedelta(days=3))
    idle = Provider.objects.create(name="old", kind="openai_compatible", base_url="https://old.example.invalid/v1")
    ProviderModel.objects.create(provider=idle, name="m")
    RoutingRule.objects.create(name="default-chat", priority=10, match_model="xrouter/*", targets=[{"model": "mts/mws-gpt-alpha"}])
    RoutingRule.objects.create(name="legacy", priority=50, match_model="legacy/*", targets=[{"model": "tbank/T-lite"}])
    Alias.objects.create(name="cheap", target="tbank/T-lite")
    return client


def changes(html: str, mode: str) -> dict:
    block = html.split(f'id="diff-{mode}"')[1].split("</form>")[0]
    found = {}
    for item in block.split('<li class="change"')[1:]:
        section = item.split('data-section="')[1].split('"')[0]
        name = item.split('data-name="')[1].split('"')[0]
        found[(section, name)] = item.split(">", 1)[1].split("</li>")[0].split(": ", 1)[1]
    return found


def test_the_preview_shows_what_a_merge_and_a_replace_would_change_and_never_the_files_secrets(root):
    page = root.post(CONFIG, {"file": SimpleUploadedFile("c.yaml", FILE.encode())})
    html = page.content.decode()
    assert page.status_code == 200
    merge, replace = changes(html, "merge"), changes(html, "replace")
    assert merge[("rules", "default-chat")] == "changed: priority, targets"
    assert merge[("aliases", "fast")] == "added → mts/mws-gpt-alpha"
    assert merge[("providers", "mts")] == "changed: model QwQ-32B added; credential default set"
    assert not any(what == "deleted" for what in merge.values())
    assert replace[("rules", "legacy")] == "deleted" and replace[("aliases", "cheap")] == "deleted"
    assert replace[("providers", "old")].startswith("deleted")
    assert replace[("providers", "tbank")] == "kept: it has usage"
    assert "sk-FILE-SECRET-123" not in html and "sk-STORED-SECRET" not in html
    assert RoutingRule.objects.get(name="default-chat").priority == 10  # a preview writes nothing


def test_a_replace_deletes_unlisted_rules_aliases_and_unused_providers_and_is_audited(root):
    root.post(CONFIG, {"text": FILE})
    page = root.post(CONFIG, {"apply": "replace"})
    assert page.status_code == 302
    assert set(RoutingRule.objects.values_list("name", flat=True)) == {"default-chat"}
    assert RoutingRule.objects.get(name="default-chat").targets == [{"model": "mts/mws-gpt-alpha", "weight": 2}]
    assert set(Alias.objects.values_list("name", flat=True)) == {"fast"}
    assert set(Provider.objects.values_list("name", flat=True)) == {"mts", "tbank"}  # tbank has usage
    assert Credential.objects.get(provider__name="mts").secrets == {"api_key": "sk-FILE-SECRET-123"}
    event = AuditEvent.objects.get(action="config.imported")
    assert event.detail["mode"] == "replace" and event.detail["deleted_rules"] == 1 and event.actor == "root"
    assert "sk-FILE-SECRET-123" not in str(event.detail)
    assert root.post(CONFIG, {"apply": "replace"}).status_code == 302  # nothing stashed any more: refused, no change
    assert AuditEvent.objects.filter(action="config.imported").count() == 1


def test_a_merge_touches_nothing_outside_the_file(root):
    root.post(CONFIG, {"text": FILE})
    root.post(CONFIG, {"apply": "merge"})
    assert set(RoutingRule.objects.values_list("name", flat=True)) == {"default-chat", "legacy"}
    assert set(Alias.objects.values_list("name", flat=True)) == {"cheap", "fast"}
    assert Provider.objects.filter(name="old").exists()
    assert AuditEvent.objects.get(action="config.imported").detail["mode"] == "merge"


def test_a_bad_file_is_refused_naming_the_field(root):
    bad = FILE.replace("weight: 2", "weight: -1")
    html = root.post(CONFIG, {"text": bad}).content.decode()
    assert "rules.0.targets.0.weight" in html and 'id="diff-merge"' not in html
    assert "sk-FILE-SECRET-123" not in html


def test_a_pasted_file_is_not_echoed_into_the_preview(root):
    html = root.post(CONFIG, {"text": FILE}).content.decode()
    assert 'id="diff-replace"' in html and "sk-FILE-SECRET-123" not in html


def test_the_export_is_yaml_that_names_secrets_only_by_reference_and_is_audited(root):
    page = root.get(EXPORT)
    assert page.status_code == 200 and page["Content-Disposition"].startswith("attachment;")
    text = page.content.decode()
    exported = yaml.safe_load(text)
    assert {r["name"] for r in exported["rules"]} == {"default-chat", "legacy"}
    assert "sk-STORED-SECRET" not in text and "${TBANK_API_KEY}" in text
    assert AuditEvent.objects.filter(action="config.exported").exists()


def test_only_superusers_import(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_user("staff", "s@example.com", "pw", is_staff=True))
    assert client.post(CONFIG, {"text": FILE}).status_code == 403
    assert client.get(EXPORT).status_code == 403
