"""Provider.extra_headers: plain JSON → a Fernet token (apps.common.crypto.EncryptedJSONField)."""

import json

from django.db import migrations

import apps.common.crypto

FERNET_TOKEN = "gAAAAA"  # nosec B105 # how every Fernet token starts (version byte 0x80, base64), no secret


def encrypt_stored_headers(apps, schema_editor):
    # Raw SQL: the column now holds the JSON text the type change left, which the field would read as a token.
    from apps.common.crypto import encrypt_json

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, extra_headers FROM providers_provider")
        for pk, raw in cursor.fetchall():
            if raw and raw.startswith(FERNET_TOKEN):
                continue  # encrypted already (a re-run)
            headers = json.loads(raw) if raw else {}
            value = encrypt_json(headers) if headers else ""
            cursor.execute("UPDATE providers_provider SET extra_headers = %s WHERE id = %s", [value, pk])


def decrypt_stored_headers(apps, schema_editor):
    from apps.common.crypto import decrypt_json

    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, extra_headers FROM providers_provider")
        for pk, token in cursor.fetchall():
            if token and not token.startswith(FERNET_TOKEN):
                continue
            cursor.execute("UPDATE providers_provider SET extra_headers = %s WHERE id = %s",
                           [json.dumps(decrypt_json(token) if token else {}), pk])


class Migration(migrations.Migration):
    dependencies = [("providers", "0005_credential_requests_rate")]

    operations = [
        migrations.AlterField(
            model_name="provider", name="extra_headers",
            field=apps.common.crypto.EncryptedJSONField(blank=True, default=dict),
        ),
        migrations.RunPython(encrypt_stored_headers, decrypt_stored_headers),
    ]
