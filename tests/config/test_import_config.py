import pytest
import yaml
from django.core.management import CommandError, call_command

from apps.providers.models import Credential, Provider, ProviderModel
from apps.routing.models import Alias

GOOD = """
providers:
  gigachat:
    kind: gigachat
    base_url: https://gigachat.devices.sberbank.ru/api/v1
    auth_url: https://ngw.devices.sberbank.ru:9443/api/v2/oauth
    credentials: {authorization_key: "${GIGACHAT_AUTH_KEY}", scope: GIGACHAT_API_PERS}
    models:
      GigaChat-2-Max: {input_price: "1.95", output_price: "1.95"}
  yandexgpt:
    kind: yandexgpt
    base_url: https://llm.api.cloud.yandex.net
    credentials: {api_key: "${YANDEX_API_KEY}", folder_id: "${YANDEX_FOLDER_ID}"}
    models:
      yandexgpt-lite: {input_price: "0.20", output_price: "0.20"}
aliases:
  gpt-4o: gigachat/GigaChat-2-Max
"""


@pytest.fixture
def secrets_env(monkeypatch):
    monkeypatch.setenv("GIGACHAT_AUTH_KEY", "c2VjcmV0LWF1dGgta2V5")
    monkeypatch.setenv("YANDEX_API_KEY", "AQVN-secret-api-key")
    monkeypatch.setenv("YANDEX_FOLDER_ID", "b1gfolder")


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.django_db
def test_it_imports_the_issue_example_idempotently(tmp_path, secrets_env):
    path = write(tmp_path, GOOD)
    call_command("import_config", path)
    call_command("import_config", path)
    assert Provider.objects.count() == 2
    assert str(ProviderModel.objects.get(name="GigaChat-2-Max").input_price) == "1.950000"
    assert Alias.objects.get(name="gpt-4o").target == "gigachat/GigaChat-2-Max"
    credential = Credential.objects.get(provider__name="gigachat")
    assert credential.secrets["authorization_key"] == "c2VjcmV0LWF1dGgta2V5"


@pytest.mark.django_db
def test_it_stores_credentials_encrypted(tmp_path, secrets_env):
    from django.db import connection

    call_command("import_config", write(tmp_path, GOOD))
    with connection.cursor() as cursor:
        cursor.execute("SELECT secrets FROM providers_credential")
        stored = " ".join(row[0] for row in cursor.fetchall())
    assert "c2VjcmV0LWF1dGgta2V5" not in stored and "AQVN-secret-api-key" not in stored


@pytest.mark.django_db
@pytest.mark.parametrize(
    "mutate, path_in_message",
    [
        (lambda d: d["providers"]["gigachat"].update(kind="openai"), "providers.gigachat.kind"),
        (lambda d: d["providers"]["gigachat"]["models"]["GigaChat-2-Max"].update(input_price="-1"), "input_price"),
        (lambda d: d["providers"]["gigachat"].update(base_url="ftp://x"), "providers.gigachat.base_url"),
        (lambda d: d["aliases"].update({"bad": "gigachat/NoSuchModel"}), "aliases.bad"),
        (lambda d: d["providers"]["gigachat"].update(colour="red"), "providers.gigachat.colour"),
    ],
)
def test_it_refuses_a_bad_file_whole_naming_the_field(tmp_path, secrets_env, mutate, path_in_message):
    data = yaml.safe_load(GOOD)
    mutate(data)
    with pytest.raises(CommandError) as exc:
        call_command("import_config", write(tmp_path, yaml.safe_dump(data)))
    assert path_in_message in str(exc.value)
    assert Provider.objects.count() == 0 and Alias.objects.count() == 0


@pytest.mark.django_db
def test_it_names_a_missing_environment_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("GIGACHAT_AUTH_KEY", raising=False)
    with pytest.raises(CommandError, match="GIGACHAT_AUTH_KEY"):
        call_command("import_config", write(tmp_path, GOOD))


@pytest.mark.django_db
def test_export_never_contains_secret_values_and_round_trips(tmp_path, secrets_env, capsys):
    call_command("import_config", write(tmp_path, GOOD))
    capsys.readouterr()
    call_command("export_config")
    exported = capsys.readouterr().out
    assert "c2VjcmV0LWF1dGgta2V5" not in exported and "AQVN-secret-api-key" not in exported
    data = yaml.safe_load(exported)
    assert data["providers"]["gigachat"]["models"]["GigaChat-2-Max"]["input_price"] == "1.950000"
    assert "${GIGACHAT_AUTHORIZATION_KEY}" in exported
