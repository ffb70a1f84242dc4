"""Issue 8 item 20: a provider's stored secrets go only to the origin they were entered for, and
only staff who may change providers make the gateway send them (the health check).

Through Django's test client with the real database, as an operator would.
"""

import httpx
import pytest
from django.contrib.auth.models import Permission

from apps.providers.models import Credential, HealthCheck, Provider
from apps.routing.config_schema import ConfigError, parse_config
from apps.routing.services import config_import

pytestmark = pytest.mark.django_db


def change_form(provider, **changes) -> dict:
    form = {
        "name": provider.name, "kind": provider.kind, "base_url": provider.base_url, "auth_url": provider.auth_url,
        "enabled": "on", "jurisdiction": "RU", "extra_headers": "{}", "options": "{}", "ca_bundle": "",
        "verify_tls": "on", "client_cert": "", "client_key": "", "timeout": "",
        "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    credentials = list(provider.credentials.order_by("id"))
    form.update({"credentials-TOTAL_FORMS": str(len(credentials)), "credentials-INITIAL_FORMS": str(len(credentials)),
                 "credentials-MIN_NUM_FORMS": "0", "credentials-MAX_NUM_FORMS": "1000"})
    for i, c in enumerate(credentials):
        form.update({f"credentials-{i}-id": str(c.id), f"credentials-{i}-provider": str(provider.id),
                     f"credentials-{i}-name": c.name, f"credentials-{i}-new_secrets": "",
                     f"credentials-{i}-max_concurrency": str(c.max_concurrency), f"credentials-{i}-enabled": "on"})
    form.update(changes)
    return form


@pytest.fixture
def root_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    return client


@pytest.fixture
def mts_provider(emulators):
    # openai_compatible: a kind with no default host list, so the new origins below pass the host check.
    provider = Provider.objects.create(name="mts-urls", kind="openai_compatible", base_url=emulators["mts"].base_url)
    Credential.objects.create(provider=provider, secrets={"api_key": "sk-demo-mts-key"})
    return provider


def test_changing_the_origin_without_new_secrets_is_refused(root_client, mts_provider):
    url = f"/admin/providers/provider/{mts_provider.id}/change/"
    answer = root_client.post(url, change_form(mts_provider, base_url="https://attacker.example/v1"))
    assert answer.status_code == 200  # the form again, with the error
    assert "re-enter" in answer.content.decode()
    mts_provider.refresh_from_db()
    assert mts_provider.base_url.startswith("http://127.0.0.1")

    # The same origin (another path) keeps the secrets; a new origin with new secrets is saved.
    same_origin = mts_provider.base_url.rstrip("/") + "/other"
    assert root_client.post(url, change_form(mts_provider, base_url=same_origin)).status_code == 302
    moved = change_form(mts_provider, base_url="https://new-home.example/v1")
    moved["credentials-0-new_secrets"] = '{"api_key": "sk-for-the-new-home"}'
    assert root_client.post(url, moved).status_code == 302
    mts_provider.refresh_from_db()
    assert mts_provider.base_url == "https://new-home.example/v1"
    assert mts_provider.credentials.get().secrets == {"api_key": "sk-for-the-new-home"}


def test_changing_the_auth_url_origin_without_new_secrets_is_refused(root_client, emulators):
    provider = Provider.objects.create(name="giga-urls", kind="gigachat", base_url=emulators["gigachat"].base_url,
                                       auth_url=emulators["gigachat"].auth_url)
    Credential.objects.create(provider=provider, secrets={"authorization_key": "c2VjcmV0"})
    answer = root_client.post(f"/admin/providers/provider/{provider.id}/change/",
                              change_form(provider, auth_url="https://attacker.example/oauth"))
    assert answer.status_code == 200 and "re-enter" in answer.content.decode()
    provider.refresh_from_db()
    assert provider.auth_url == emulators["gigachat"].auth_url


def test_import_config_refuses_an_origin_change_without_the_secrets(mts_provider):
    def spec(base_url, credentials=None):
        provider = {"kind": "openai_compatible", "base_url": base_url, "models": {}}
        if credentials is not None:
            provider["credentials"] = credentials
        return parse_config({"providers": {"mts-urls": provider}})

    with pytest.raises(ConfigError, match="another origin"):
        config_import(spec("https://attacker.example/v1"))
    mts_provider.refresh_from_db()
    assert mts_provider.base_url.startswith("http://127.0.0.1")
    config_import(spec("https://new-home.example/v1", {"api_key": "sk-for-the-new-home"}))
    mts_provider.refresh_from_db()
    assert mts_provider.base_url == "https://new-home.example/v1"


def test_import_config_refuses_weaker_tls_trust_without_the_secrets(mts_provider):
    def spec(**tls):
        return parse_config({"providers": {"mts-urls": {"kind": "openai_compatible", "base_url": mts_provider.base_url, "models": {}, **tls}}})

    for weaker in ({"verify_tls": False}, {"ca_bundle": "/tmp/the-editors-own-ca.pem"}):
        with pytest.raises(ConfigError, match="weakens TLS trust"):
            config_import(spec(**weaker))
    mts_provider.refresh_from_db()
    assert mts_provider.verify_tls and not mts_provider.ca_bundle
    config_import(spec())  # the same trust keeps the stored secrets
    assert mts_provider.credentials.get().secrets == {"api_key": "sk-demo-mts-key"}


@pytest.fixture
def viewer_client(client, django_user_model):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(*Permission.objects.filter(codename__in=["view_provider", "view_healthcheck"]))
    client.force_login(viewer)
    return client


def _ledger_size(emulators):
    return len(httpx.get(f"{emulators['mts'].control_url}/ledger", timeout=5).json()["entries"])


def test_view_only_staff_cannot_run_a_health_check(viewer_client, mts_provider, emulators):
    before = _ledger_size(emulators)
    assert viewer_client.get(f"/admin/providers/provider/{mts_provider.id}/change/").status_code == 200
    assert viewer_client.post(f"/admin/providers/provider/{mts_provider.id}/health-check/").status_code == 403
    viewer_client.post("/admin/providers/provider/",
                       {"action": "run_health_check", "_selected_action": [str(mts_provider.id)], "index": "0"})
    assert not HealthCheck.objects.filter(provider=mts_provider).exists()
    assert _ledger_size(emulators) == before


def test_staff_with_change_rights_run_the_health_check(root_client, mts_provider):
    answer = root_client.post(f"/admin/providers/provider/{mts_provider.id}/health-check/")
    assert answer.status_code == 302
    assert HealthCheck.objects.get(provider=mts_provider).ok
