import pytest

from apps.providers.models import Credential, Provider


@pytest.mark.django_db
def test_credentials_are_write_only_in_the_admin(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    provider = Provider.objects.create(name="gigachat", kind="gigachat", base_url="https://gigachat.devices.sberbank.ru/api/v1")
    Credential.objects.create(provider=provider, secrets={"authorization_key": "TOP-SECRET-VALUE"})
    html = client.get(f"/admin/providers/provider/{provider.id}/change/").content.decode()
    assert "TOP-SECRET-VALUE" not in html
    assert "authorization_key: set" in html


@pytest.mark.django_db
def test_a_new_secret_entered_in_the_admin_is_stored_encrypted(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    provider = Provider.objects.create(name="mts", kind="mts", base_url="https://api.gpt.mws.ru/v1")
    form = {
        "name": "mts", "kind": "mts", "base_url": "https://api.gpt.mws.ru/v1", "auth_url": "", "enabled": "on",
        "jurisdiction": "RU", "extra_headers": "{}", "options": "{}", "ca_bundle": "", "verify_tls": "on",
        "client_cert": "", "client_key": "", "timeout": "",
        "credentials-TOTAL_FORMS": "1", "credentials-INITIAL_FORMS": "0", "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000", "credentials-0-name": "default",
        "credentials-0-new_secrets": '{"api_key": "sk-NEW-SECRET"}', "credentials-0-max_concurrency": "2",
        "credentials-0-enabled": "on", "credentials-0-provider": str(provider.id),
        "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    response = client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    credential = Credential.objects.get(provider=provider)
    assert credential.secrets == {"api_key": "sk-NEW-SECRET"} and credential.max_concurrency == 2
    html = client.get(f"/admin/providers/provider/{provider.id}/change/").content.decode()
    assert "sk-NEW-SECRET" not in html


@pytest.mark.django_db
@pytest.mark.parametrize("owner, ok", [("", False), ("service_account", True)])
def test_a_yandex_iam_token_credential_must_say_whose_token_it_is(client, django_user_model, owner, ok):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    provider = Provider.objects.create(name="yandexgpt", kind="yandexgpt", base_url="https://llm.api.cloud.yandex.net")
    form = {
        "name": "yandexgpt", "kind": "yandexgpt", "base_url": "https://llm.api.cloud.yandex.net", "auth_url": "", "enabled": "on",
        "jurisdiction": "RU", "extra_headers": "{}", "options": "{}", "ca_bundle": "", "verify_tls": "on",
        "client_cert": "", "client_key": "", "timeout": "",
        "credentials-TOTAL_FORMS": "1", "credentials-INITIAL_FORMS": "0", "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000", "credentials-0-name": "default",
        "credentials-0-new_secrets": '{"iam_token": "t1.abc", "folder_id": "b1g"}', "credentials-0-max_concurrency": "0",
        "credentials-0-token_owner": owner, "credentials-0-enabled": "on", "credentials-0-provider": str(provider.id),
        "models-TOTAL_FORMS": "0", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
    }
    response = client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    if ok:
        assert response.status_code == 302, response.content.decode()[:2000]
        assert Credential.objects.get(provider=provider).token_owner == "service_account"
    else:
        assert response.status_code == 200 and "must say whose token it is" in response.content.decode()
        assert not Credential.objects.filter(provider=provider).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("options, ok", [('{"output_limit_field": "max_completion_tokens"}', True), ('{"output_limit_field": 5}', False)])
def test_model_options_are_edited_and_validated_in_the_admin(client, django_user_model, options, ok):
    from apps.providers.models import ProviderModel

    root = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(root)
    provider = Provider.objects.create(name="mts", kind="mts", base_url="https://api.gpt.mws.ru/v1")
    form = {
        "name": "mts", "kind": "mts", "base_url": "https://api.gpt.mws.ru/v1", "auth_url": "", "enabled": "on",
        "jurisdiction": "RU", "extra_headers": "{}", "options": "{}", "ca_bundle": "", "verify_tls": "on",
        "client_cert": "", "client_key": "", "timeout": "",
        "credentials-TOTAL_FORMS": "0", "credentials-INITIAL_FORMS": "0", "credentials-MIN_NUM_FORMS": "0",
        "credentials-MAX_NUM_FORMS": "1000",
        "models-TOTAL_FORMS": "1", "models-INITIAL_FORMS": "0", "models-MIN_NUM_FORMS": "0", "models-MAX_NUM_FORMS": "1000",
        "models-0-name": "gpt-5", "models-0-kind": "chat", "models-0-enabled": "on", "models-0-input_price": "1",
        "models-0-output_price": "1", "models-0-cached_input_price": "", "models-0-context_window": "",
        "models-0-jurisdiction": "", "models-0-options": options, "models-0-provider": str(provider.id),
    }
    response = client.post(f"/admin/providers/provider/{provider.id}/change/", form)
    if ok:
        assert response.status_code == 302, response.content.decode()[:3000]
        assert ProviderModel.objects.get(provider=provider).options == {"output_limit_field": "max_completion_tokens"}
    else:
        assert response.status_code == 200 and "output_limit_field" in response.content.decode()
