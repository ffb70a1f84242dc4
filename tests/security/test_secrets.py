"""Issue 12, hardening, secrets: no key in a cookie, no URL password in a settings error, provider extra headers
encrypted at rest and exported as ${ENV}, and the Fernet keys rotated without downtime."""

import os
import subprocess
import sys

import pytest
import yaml
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from apps.common import crypto
from apps.providers.models import Credential, Provider
from tests.conftest import ROOT

PROVIDER_FORM = {
    "kind": "openai_compatible", "base_url": "https://example.invalid/v1", "auth_url": "", "enabled": "on",
    "jurisdiction": "RU", "options": "{}", "ca_bundle": "", "verify_tls": "on", "client_cert": "", "client_key": "",
    "timeout": "", "credentials-TOTAL_FORMS": "0", "credentials-INITIAL_FORMS": "0", "credentials-MIN_NUM_FORMS": "0",
    "credentials-MAX_NUM_FORMS": "1000", "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0",
    "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
}


@pytest.fixture
def root(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(user)
    return user


@pytest.mark.django_db
def test_the_new_key_shown_in_the_admin_travels_in_no_cookie(client, root):
    answer = client.post("/admin/keys/apikey/add/", {"user": root.pk, "name": "cookie-check", "scopes": ["chat"],
                                                     "allowed_models": "[]", "allowed_ips": "[]", "cost_centre": ""})
    assert answer.status_code == 302, answer.content.decode()[:2000]
    assert "messages" not in answer.cookies  # the message waits in the session, on the server
    page = client.get(answer["Location"]).content.decode()
    shown = page.split("it is not shown again): ", 1)[1].split("<", 1)[0].strip()
    assert shown.startswith("xr-")
    assert all(shown not in morsel.value for morsel in answer.cookies.values())


def test_a_malformed_url_in_the_environment_is_reported_without_its_password():
    for name, url in (("DATABASE_URL", "postgres://xrouter:Canary-Pa55@db:notaport/xrouter"),
                      ("REDIS_URL", "http://default:Canary-Pa55@redis:6379/0")):
        env = {**os.environ, name: url}
        result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                                text=True, timeout=120)
        assert result.returncode != 0 and name in result.stderr
        assert "Canary-Pa55" not in result.stdout + result.stderr
        assert "***@" in result.stderr


def test_url_passwords_are_redacted_whatever_they_hold():
    from xrouter_project.settings import redact_url_passwords

    assert redact_url_passwords("'postgres://u:p@ss/w@host:5432/db' bad") == "'postgres://u:***@host:5432/db' bad"
    assert redact_url_passwords("redis://:secret@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert redact_url_passwords("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"


@pytest.mark.django_db
def test_extra_headers_are_encrypted_at_rest_and_reach_the_adapter():
    from apps.providers.selectors import provider_configs

    Provider.objects.create(name="proxied", kind="openai_compatible", base_url="https://example.invalid/v1",
                            extra_headers={"X-Api-Key": "hdr-Canary-Secret"})
    with connection.cursor() as cursor:
        cursor.execute("SELECT extra_headers FROM providers_provider WHERE name = 'proxied'")
        stored = cursor.fetchone()[0]
    assert "hdr-Canary-Secret" not in stored and "X-Api-Key" not in stored
    assert provider_configs()["proxied"].extra_headers == {"X-Api-Key": "hdr-Canary-Secret"}


@pytest.mark.django_db
def test_extra_headers_are_write_only_in_the_admin(client, root):
    provider = Provider.objects.create(name="proxied", kind="openai_compatible", base_url="https://example.invalid/v1",
                                       extra_headers={"X-Api-Key": "hdr-Canary-Secret"})
    url = f"/admin/providers/provider/{provider.id}/change/"
    html = client.get(url).content.decode()
    assert "hdr-Canary-Secret" not in html and "Stored: X-Api-Key." in html
    # An empty box keeps the stored headers; a new object replaces them.
    assert client.post(url, {**PROVIDER_FORM, "name": "proxied", "extra_headers": ""}).status_code == 302
    provider.refresh_from_db()
    assert provider.extra_headers == {"X-Api-Key": "hdr-Canary-Secret"}
    assert client.post(url, {**PROVIDER_FORM, "name": "proxied", "extra_headers": '{"X-Api-Key": "new"}'}).status_code == 302
    provider.refresh_from_db()
    assert provider.extra_headers == {"X-Api-Key": "new"}


@pytest.mark.django_db
def test_extra_headers_are_exported_as_env_references_and_imported_back(monkeypatch):
    from apps.routing.config_schema import parse_config
    from apps.routing.services import config_export, config_import

    Provider.objects.create(name="proxied", kind="openai_compatible", base_url="https://example.invalid/v1",
                            extra_headers={"X-Api-Key": "hdr-Canary-Secret"})
    exported = config_export()
    text = yaml.safe_dump(exported)
    assert "hdr-Canary-Secret" not in text
    assert exported["providers"]["proxied"]["extra_headers"] == {"X-Api-Key": "${PROXIED_HEADER_X_API_KEY}"}
    Provider.objects.filter(name="proxied").delete()
    monkeypatch.setenv("PROXIED_HEADER_X_API_KEY", "from-the-environment")
    # Only this provider back: the shared database may hold others (the session gateway's demo providers),
    # whose secrets are references to variables this test does not set.
    config_import(parse_config({"providers": {"proxied": yaml.safe_load(text)["providers"]["proxied"]}}))
    assert Provider.objects.get(name="proxied").extra_headers == {"X-Api-Key": "from-the-environment"}


# --- Rotation ---


@pytest.fixture
def fernet_keys(settings):
    """fernet_keys(k1, k2, ...) → the process encrypts with k1 and decrypts with any. The session's own keys
    stay last: rows other tests committed (the session gateway's demo credentials) still decrypt, and the
    rotation, inside this test's transaction, re-encrypts them too."""
    session_keys = list(settings.FERNET_KEYS)

    def use(*keys):
        settings.FERNET_KEYS = [*keys, *session_keys]
        crypto.fernet.cache_clear()

    yield use
    crypto.fernet.cache_clear()


def stored_token(model, pk, column) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {model._meta.db_table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_rotation_re_encrypts_every_encrypted_field_with_the_new_key(fernet_keys, acme):
    from apps.billing.models import BillingSettings

    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    fernet_keys(old)
    provider = Provider.objects.create(name="rotated", kind="openai_compatible", base_url="https://example.invalid/v1",
                                       extra_headers={"X-Api-Key": "h"})
    credential = Credential.objects.create(provider=provider, secrets={"api_key": "k"})
    billing = BillingSettings.objects.create(organisation=acme, webhook_secret={"secret": "w"})

    fernet_keys(new, old)  # step 1: the new key first, everywhere; both still read
    assert Credential.objects.get(pk=credential.pk).secrets == {"api_key": "k"}
    call_command("rotate_fernet_keys")  # step 2
    fernet_keys(new)  # step 3: the old key is gone
    assert Credential.objects.get(pk=credential.pk).secrets == {"api_key": "k"}
    assert Provider.objects.get(pk=provider.pk).extra_headers == {"X-Api-Key": "h"}
    Fernet(new).decrypt(stored_token(Credential, credential.pk, "secrets").encode())
    assert BillingSettings.objects.get(pk=billing.pk).webhook_secret == {"secret": "w"}


@pytest.mark.django_db
def test_rotation_leaves_current_tokens_and_reports_undecryptable_ones(fernet_keys):
    lost, old, new = (Fernet.generate_key().decode() for _ in range(3))
    fernet_keys(lost)
    provider = Provider.objects.create(name="lost", kind="openai_compatible", base_url="https://example.invalid/v1")
    orphan = Credential.objects.create(provider=provider, name="orphan", secrets={"api_key": "gone"})
    fernet_keys(new)
    current = Credential.objects.create(provider=provider, name="current", secrets={"api_key": "k"})
    before = stored_token(Credential, current.pk, "secrets")
    fernet_keys(new, old)
    with pytest.raises(CommandError, match="1 value"):
        call_command("rotate_fernet_keys")
    assert stored_token(Credential, current.pk, "secrets") == before  # already under the first key: untouched
    assert stored_token(Credential, orphan.pk, "secrets") != ""  # kept, in case the lost key comes back


@pytest.mark.django_db
def test_the_migration_encrypts_headers_stored_in_the_clear():
    import importlib
    from types import SimpleNamespace

    migration = importlib.import_module("apps.providers.migrations.0006_hardening_extra_headers_encrypted")
    provider = Provider.objects.create(name="legacy", kind="openai_compatible", base_url="https://example.invalid/v1")
    empty = Provider.objects.create(name="bare", kind="openai_compatible", base_url="https://example.invalid/v1")
    with connection.cursor() as cursor:  # as the column type change leaves them: JSON text
        cursor.execute("UPDATE providers_provider SET extra_headers = %s WHERE id = %s",
                       ['{"X-Api-Key": "legacy-secret"}', provider.pk])
        cursor.execute("UPDATE providers_provider SET extra_headers = %s WHERE id = %s", ["{}", empty.pk])
    migration.encrypt_stored_headers(None, SimpleNamespace(connection=connection))
    assert "legacy-secret" not in stored_token(Provider, provider.pk, "extra_headers")
    assert Provider.objects.get(pk=provider.pk).extra_headers == {"X-Api-Key": "legacy-secret"}
    assert stored_token(Provider, empty.pk, "extra_headers") == ""
    migration.decrypt_stored_headers(None, SimpleNamespace(connection=connection))  # and back, for a rollback
    assert stored_token(Provider, provider.pk, "extra_headers") == '{"X-Api-Key": "legacy-secret"}'
