"""Issue 8 review (item 5): a storm of unknown keys must not take valid cached keys down with it."""

import asyncio
import uuid

import pytest

from apps.common.errors import ApiError
from apps.keys.selectors import akey_info_for
from apps.keys.services import key_create


@pytest.fixture(autouse=True)
def fresh_key_cache(monkeypatch):
    from apps.keys import selectors

    selectors._invalidate({})
    monkeypatch.setattr(selectors, "_down_until", 0.0)


def test_a_cached_key_due_for_a_recheck_is_served_while_lookups_are_full(django_db_setup, django_db_blocker,
                                                                           monkeypatch):
    from apps.accounts.models import User
    from apps.keys import selectors

    with django_db_blocker.unblock():
        owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
        key, plaintext = key_create(user=owner, name="k")
        assert asyncio.run(akey_info_for(plaintext)).id == key.id  # cached
        # Random well-formed tokens fill the lookup queue (here: a queue with no room), and the bus has
        # just reconnected, so every cached key is due for a re-check.
        monkeypatch.setattr(selectors, "MAX_WAITING", 0)
        selectors._invalidate({"resync": True})
        assert asyncio.run(akey_info_for(plaintext)).id == key.id
        with pytest.raises(ApiError) as full:  # an unknown token still cannot queue: 503, not 500
            asyncio.run(akey_info_for(f"xr-{uuid.uuid4().hex[:8]}-{'a' * 43}"))
        assert full.value.status == 503
