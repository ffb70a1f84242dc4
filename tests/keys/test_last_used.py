"""last_used_at in batches: the write never goes backwards, and marks survive a failed write."""

import asyncio
import datetime

import pytest
from django.utils import timezone

from apps.keys import last_used
from apps.keys.services import key_create, key_mark_used

from .support import database_unreachable


@pytest.mark.django_db
def test_one_update_marks_a_batch_and_never_moves_a_key_back_in_time(alice):
    keys = [key_create(user=alice, name=f"k{i}")[0] for i in range(3)]
    now = timezone.now()
    key_mark_used({k.id for k in keys[:2]}, now)
    key_mark_used({keys[0].id}, now - datetime.timedelta(minutes=5))  # a slower process's older batch
    for key in keys:
        key.refresh_from_db()
    assert [k.last_used_at for k in keys] == [now, now, None]


def test_marks_are_kept_when_the_database_cannot_take_them(committed_db):
    from apps.accounts.models import User

    user, _ = User.objects.get_or_create(username="last-used-outage")
    key, _ = key_create(user=user, name="k")
    last_used.mark(key.id)
    with database_unreachable():
        assert asyncio.run(last_used.flush()) == 0
    assert asyncio.run(last_used.flush()) >= 1  # the same marks, written once the database is back
    key.refresh_from_db()
    assert key.last_used_at is not None


def test_only_api_keys_are_marked_used_an_oauth_token_or_jwt_marks_no_key(monkeypatch):
    # A KeyInfo's id is an ApiKey's for kind "key" only (an access token's for "oauth", a user's for "jwt"):
    # marking those would stamp some other tenant's key with the same number as used.
    from apps.gateway.admission import admit
    from apps.keys.selectors import KeyInfo

    monkeypatch.setattr(last_used, "_used", set())
    scope = {"client": ("127.0.0.1", 5000), "headers": []}
    common = {"prefix": "", "name": "n", "user_id": 1, "organisation_id": 1, "allowed_models": (), "residency": "",
              "expires_at": None}
    admit(KeyInfo(id=41, kind="oauth", **common), scope)
    admit(KeyInfo(id=42, kind="jwt", **common), scope)
    admit(KeyInfo(id=43, kind="key", **common), scope)
    assert last_used._used == {43}
