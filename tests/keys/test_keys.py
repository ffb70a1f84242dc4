import hashlib

import pytest
from django.core.management import call_command

from apps.keys.models import ApiKey
from apps.keys.selectors import akey_info_for
from apps.keys.services import key_create, key_revoke


@pytest.mark.django_db
def test_create_api_key_prints_the_key_alone_on_the_last_line(capsys):
    call_command("create_api_key", "--user", "bob", "--name", "ci")
    lines = capsys.readouterr().out.strip().splitlines()
    key = lines[-1]
    assert key.startswith("xr-") and " " not in key
    stored = ApiKey.objects.get(user__username="bob")
    assert stored.hashed_key == hashlib.sha256(key.encode()).hexdigest()
    assert key not in (stored.prefix, stored.hashed_key)


def test_it_finds_an_active_key_and_refuses_a_revoked_one(django_db_setup, django_db_blocker):
    import asyncio
    import uuid

    from apps.accounts.models import User

    # Committed rows (not a test transaction): the async lookup runs its query in another thread.
    with django_db_blocker.unblock():
        owner = User.objects.create(username=f"dora-{uuid.uuid4().hex[:6]}")
        key, plaintext = key_create(user=owner, name="k")
        info = asyncio.run(akey_info_for(plaintext))
        assert info is not None and info.id == key.id
        key_revoke(key)  # the bus clears this process's cache at once
        assert asyncio.run(akey_info_for(plaintext)) is None
        assert asyncio.run(akey_info_for(plaintext + "x")) is None


@pytest.mark.django_db
def test_the_admin_never_shows_more_than_the_prefix(client, alice):
    admin_user = type(alice).objects.create_superuser("root", "root@example.com", "pw")
    client.force_login(admin_user)
    key, plaintext = key_create(user=alice, name="k")
    for url in ("/admin/keys/apikey/", f"/admin/keys/apikey/{key.id}/change/"):
        html = client.get(url).content.decode()
        assert key.prefix in html
        assert plaintext not in html and key.hashed_key not in html
