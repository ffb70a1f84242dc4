"""The routing rule's change form (apps/routing/forms.py): rows for targets, pickers for keys and
organisations, tags as words; the rule is stored as before (JSON lists) and a bad value is named."""

import html

import pytest

from apps.providers.models import Provider, ProviderModel
from apps.routing.models import RoutingRule

ADD = "/admin/routing/routingrule/add/"


@pytest.fixture
def root_client(client, django_user_model, db):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    provider = Provider.objects.create(name="gigachat", kind="gigachat", base_url="https://gigachat.example.invalid/api/v1")
    for name in ("GigaChat-2", "GigaChat-2-Max"):
        ProviderModel.objects.create(provider=provider, name=name)
    return client


def form(**extra) -> dict:
    data = {"name": "r1", "priority": "10", "enabled": "on", "match_model": "xrouter/*", "match_tags": "",
            "match_tools": "unknown", "match_stream": "unknown", "strategy": "weighted", "retries": "0",
            "fallback_on": ["5xx", "timeout"], "residency": "", "context_fallback": "on",
            "targets-rows": "2", "targets-0-model": "gigachat/GigaChat-2-Max", "targets-0-weight": "3",
            "targets-0-timeout": "12.5", "targets-1-model": "gigachat/GigaChat-2"}
    data.update(extra)
    return data


def test_a_rule_is_saved_from_rows_and_pickers_as_json_lists(root_client, alice_key):
    key = alice_key.key
    page = root_client.post(ADD, form(match_keys=[key.prefix], match_organisations=[str(key.organisation_id)],
                                      match_tags="batch, night ,batch"))
    assert page.status_code == 302, page.content.decode()[:3000]
    rule = RoutingRule.objects.get(name="r1")
    assert rule.targets == [{"model": "gigachat/GigaChat-2-Max", "weight": 3, "timeout": 12.5},
                            {"model": "gigachat/GigaChat-2"}]
    assert rule.match_keys == [key.prefix] and rule.match_organisations == [key.organisation_id]
    assert rule.match_tags == ["batch", "night"] and rule.fallback_on == ["5xx", "timeout"]

    text = root_client.get(f"/admin/routing/routingrule/{rule.pk}/change/").content.decode()
    assert 'name="targets-0-weight" value="3"' in text and 'name="targets-0-timeout" value="12.5"' in text
    assert f'<option value="{key.prefix}" selected>' in text and 'value="batch, night"' in text


@pytest.mark.parametrize("extra, named", [
    ({"targets-1-weight": "heavy"}, "targets[1].weight"),
    ({"targets-0-timeout": "-3"}, "targets[0].timeout"),
    ({"targets-1-model": "gigachat/NoSuchModel"}, "targets[1]: no model 'gigachat/NoSuchModel'"),
    ({"targets-0-model": "", "targets-1-model": ""}, "This field is required"),
])
def test_a_bad_target_is_refused_naming_the_row_and_field(root_client, extra, named):
    page = root_client.post(ADD, form(**extra))
    text = page.content.decode()
    assert page.status_code == 200 and not RoutingRule.objects.filter(name="r1").exists()
    errors = html.unescape(text.split('class="errorlist')[1])
    assert named in errors
    assert 'class="form-row errors field-targets' in text  # the error sits on the targets field


def test_the_form_reads_no_more_rows_than_its_bound(root_client):
    rows = {f"targets-{i}-model": "gigachat/GigaChat-2" for i in range(100)}
    page = root_client.post(ADD, form(**{"targets-rows": "1000000", **rows}))
    assert page.status_code == 302
    assert len(RoutingRule.objects.get(name="r1").targets) == 20
