"""Issue 8 review: `manage.py dumpdata` (backups, fixtures) wrote every stored credential's
secrets in plaintext: the encrypted field serialised its decrypted dict. It writes the Fernet
token, and `loaddata` reads it back."""

import io
import json

import pytest
from django.core.management import call_command

from apps.providers.models import Credential, Provider

pytestmark = pytest.mark.django_db


def test_dumpdata_writes_secrets_encrypted_and_loaddata_reads_them_back(tmp_path):
    provider = Provider.objects.create(name="dump-me", kind="mts", base_url="https://api.example/v1")
    Credential.objects.create(provider=provider, secrets={"api_key": "sk-plaintext-must-not-leak"})
    out = io.StringIO()
    call_command("dumpdata", "providers.provider", "providers.credential", stdout=out)
    assert "sk-plaintext-must-not-leak" not in out.getvalue()
    assert any(row["model"] == "providers.credential" for row in json.loads(out.getvalue()))

    fixture = tmp_path / "backup.json"
    fixture.write_text(out.getvalue())
    Credential.objects.all().delete()
    call_command("loaddata", str(fixture), verbosity=0)
    assert Credential.objects.get(provider__name="dump-me").secrets == {"api_key": "sk-plaintext-must-not-leak"}
