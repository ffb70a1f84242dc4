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


def test_a_redis_that_stops_answering_counts_as_a_deaf_bus_within_seconds(django_db_setup, django_db_blocker, settings):
    import os
    import signal
    import subprocess
    import time

    from django.utils import timezone

    from apps.accounts.models import User
    from apps.common import bus
    from apps.keys.models import ApiKey
    from tests.conftest import free_port

    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--save", "", "--daemonize", "no"],
                             stdout=subprocess.DEVNULL)
    settings.REDIS_URL = f"redis://127.0.0.1:{port}/0"

    def revoke_elsewhere(key_id):  # another process revokes; its event cannot reach us through a frozen Redis
        from django.db import connection

        try:
            ApiKey.objects.filter(pk=key_id).update(revoked_at=timezone.now())
        finally:
            connection.close()  # this pool thread's own connection would outlive the test database

    async def scenario(key_id, plaintext):
        ready = asyncio.Event()
        listener = asyncio.create_task(bus.listen(ready))
        try:
            await asyncio.wait_for(ready.wait(), 10)
            assert (await akey_info_for(plaintext)).id == key_id  # cached while the bus is up
            os.kill(redis.pid, signal.SIGSTOP)  # Redis stops answering, its sockets stay open
            await asyncio.to_thread(revoke_elsewhere, key_id)
            await asyncio.sleep(8)  # 5 s (RECHECK_DISCONNECTED) plus a margin for noticing
            return await akey_info_for(plaintext)
        finally:
            listener.cancel()
            os.kill(redis.pid, signal.SIGCONT)

    try:
        time.sleep(0.3)
        with django_db_blocker.unblock():
            owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
            key, plaintext = key_create(user=owner, name="k")
            assert asyncio.run(scenario(key.id, plaintext)) is None, "a key revoked 8 s ago still served"
    finally:
        redis.terminate()
        redis.wait(10)


def test_invalidations_from_another_thread_never_break_a_lookup(django_db_setup, django_db_blocker):
    """key_revoke, user_set_active… publish from Django's sync threads, in the process that serves /v1 on
    its loop: the key cache is touched from both at once."""
    import sys
    import threading
    import time

    from apps.accounts.models import User
    from apps.keys import selectors

    with django_db_blocker.unblock():
        owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
        key, plaintext = key_create(user=owner, name="k")

    async def scenario():
        assert (await akey_info_for(plaintext)).id == key.id
        hashed = selectors._by_ref[("key", key.id)]
        entry = selectors._known[hashed]
        stop = threading.Event()

        def revoke_and_restore():  # the invalidation a revocation publishes, over and over (and the entry back)
            while not stop.is_set():
                selectors._invalidate({"key_ids": [key.id]})
                selectors._remember(hashed, entry)

        thread = threading.Thread(target=revoke_and_restore)
        thread.start()
        try:
            end = time.monotonic() + 8
            while time.monotonic() < end:
                await akey_info_for(plaintext)  # raises KeyError when the race hits
        finally:
            stop.set()
            thread.join()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race shows within seconds
    try:
        with django_db_blocker.unblock():
            asyncio.run(scenario())
    finally:
        sys.setswitchinterval(interval)
