"""Issue 8 item 19: XROUTER_ENV=production refuses an insecure start; development keeps working
defaults and says which are in use; one undecryptable credential disables only itself.

The settings are read once per process, so the production rules are checked in subprocesses
started with the environment an operator would set.
"""

import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.db import connection

from tests.conftest import ROOT, free_port

STRONG_KEY = "k" * 30 + "-a-long-enough-secret-key-for-tests"  # 65 characters


def run(argv, timeout=120, **env_vars):
    env = {k: v for k, v in os.environ.items()
           if k not in {"XROUTER_ENV", "DJANGO_SECRET_KEY", "XROUTER_FERNET_KEYS", "XROUTER_FERNET_KEY",
                        "DJANGO_SECRET_KEY_FALLBACKS"}}
    env.update({"XROUTER_LOG_JSON": "false", **env_vars})
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_check_deploy_fails_in_production_with_the_default_secret_key():
    result = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", XROUTER_FERNET_KEYS=Fernet.generate_key().decode())
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY" in result.stderr and "ERROR" in result.stderr


def test_check_deploy_fails_in_production_without_fernet_keys():
    short = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", DJANGO_SECRET_KEY="short-but-not-default",
                XROUTER_FERNET_KEYS=Fernet.generate_key().decode())
    assert short.returncode != 0 and "DJANGO_SECRET_KEY" in short.stderr
    unset = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", DJANGO_SECRET_KEY=STRONG_KEY)
    assert unset.returncode != 0 and "XROUTER_FERNET_KEYS" in unset.stderr
    good = run(["manage.py", "check", "--deploy"], XROUTER_ENV="production", DJANGO_SECRET_KEY=STRONG_KEY,
               XROUTER_FERNET_KEYS=Fernet.generate_key().decode())
    assert good.returncode == 0, good.stderr
    assert "xrouter.E" not in good.stderr
    # Cookies only over HTTPS and HSTS on: Django's deploy checks find nothing to say about them.
    for check in ("security.W004", "security.W012", "security.W016"):
        assert check not in good.stderr + good.stdout, check


def test_the_server_refuses_to_start_in_production_with_insecure_secrets():
    port = str(free_port())
    serve = run(["manage.py", "serve", "--port", port, "--no-writer"], timeout=30, XROUTER_ENV="production")
    assert serve.returncode != 0
    assert "DJANGO_SECRET_KEY" in serve.stderr
    # The ASGI app refuses too, however it is started (uvicorn directly, another server).
    direct = run(["-m", "xrouter_project.server", "--port", port], timeout=30, XROUTER_ENV="production",
                 DJANGO_SECRET_KEY=STRONG_KEY)
    assert direct.returncode != 0
    assert "XROUTER_FERNET_KEYS" in direct.stdout + direct.stderr


def test_development_keeps_zero_config_defaults():
    result = run(["manage.py", "check"])
    assert result.returncode == 0, result.stderr


def test_development_names_each_default_in_use_once(caplog):
    from apps.common.checks import warn_about_defaults

    with caplog.at_level(logging.WARNING, logger="apps.common.checks"):
        warn_about_defaults()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1
    assert "DJANGO_SECRET_KEY" in lines[0] and "XROUTER_FERNET_KEYS" in lines[0]


ENCRYPT = "import django; django.setup(); from apps.common.crypto import encrypt_json; print(encrypt_json({'k': 'v'}))"
DECRYPT = "import sys, django; django.setup(); from apps.common.crypto import decrypt_json; print(decrypt_json(sys.argv[1]))"
PREFIX = "import os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'xrouter_project.settings'); "


def test_secrets_encrypted_under_an_old_secret_key_decrypt_with_it_as_a_fallback():
    old, new = "old-" + STRONG_KEY, "new-" + STRONG_KEY
    token = run(["-c", PREFIX + ENCRYPT], DJANGO_SECRET_KEY=old).stdout.strip()
    assert token
    rotated = run(["-c", PREFIX + DECRYPT, token], DJANGO_SECRET_KEY=new, DJANGO_SECRET_KEY_FALLBACKS=f"other,{old}")
    assert rotated.returncode == 0, rotated.stderr
    assert rotated.stdout.strip() == "{'k': 'v'}"
    lost = run(["-c", PREFIX + DECRYPT, token], DJANGO_SECRET_KEY=new)
    assert lost.returncode != 0


def test_the_development_fernet_key_is_derived_with_hkdf():
    import base64

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    script = PREFIX + "import django; django.setup(); from django.conf import settings; print(settings.FERNET_KEYS[0])"
    derived = run(["-c", script], DJANGO_SECRET_KEY=STRONG_KEY).stdout.strip()
    expected = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"xrouter fernet v1").derive(STRONG_KEY.encode())
    assert derived == base64.urlsafe_b64encode(expected).decode()


@pytest.mark.django_db
def test_an_undecryptable_credential_disables_only_itself(caplog, client, django_user_model):
    from apps.providers.models import Credential, Provider
    from apps.providers.selectors import provider_configs
    from apps.routing.catalog import load_catalog

    good = Provider.objects.create(name="good", kind="mts", base_url="http://127.0.0.1:9/v1")
    Credential.objects.create(provider=good, secrets={"api_key": "sk-good"})
    broken = Provider.objects.create(name="broken", kind="mts", base_url="http://127.0.0.1:9/v1")
    spare = Credential.objects.create(provider=broken, name="spare", secrets={"api_key": "sk-spare"})
    lost = Credential.objects.create(provider=broken, name="lost", secrets={"api_key": "sk-lost"})
    foreign = Fernet(Fernet.generate_key()).encrypt(b'{"api_key": "sk-lost"}').decode()
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Credential._meta.db_table} SET secrets = %s WHERE id = %s", [foreign, lost.id])

    with caplog.at_level(logging.ERROR):
        configs = provider_configs()
        catalog = load_catalog()
    assert [c.name for c in configs["good"].credentials] == ["default"]
    assert [c.name for c in configs["broken"].credentials] == ["spare"]
    assert set(catalog.providers) >= {"good", "broken"}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("broken" in m and "lost" in m for m in errors), errors
    assert not any("sk-" in m for m in errors)

    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(f"/admin/providers/provider/{broken.id}/change/").content.decode()
    assert "cannot decrypt — re-enter the secret" in page
    # Saving the provider without touching it keeps the unreadable token (it may decrypt after a key fix).
    Credential.objects.get(id=lost.id).save()
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT secrets FROM {Credential._meta.db_table} WHERE id = %s", [lost.id])
        assert cursor.fetchone()[0] == foreign
    assert spare.secrets == {"api_key": "sk-spare"}
