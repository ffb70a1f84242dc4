"""Issue 8 item 5 (and item 18's key part): the key lookup — shape check before any query, one key
invalidated at a time, re-checks while the bus is down, stale service while the database is down."""

import asyncio
import time
import uuid

import pytest
from django.conf import settings

from apps.common.errors import ApiError
from apps.keys.models import ApiKey
from apps.keys.selectors import akey_info_for, key_info_for
from apps.keys.services import key_create, key_revoke

from .support import database_unreachable


def lookup(plaintext: str):
    return asyncio.run(akey_info_for(plaintext))


@pytest.fixture(autouse=True)
def fresh_key_cache(monkeypatch):
    """Each test starts with this process's key cache empty and the database taken as up."""
    from apps.keys import selectors

    selectors._invalidate({})
    monkeypatch.setattr(selectors, "_down_until", 0.0)


@pytest.fixture
def committed_keys(django_db_setup, django_db_blocker):
    """Keys in committed rows: the async lookup queries from another thread."""
    from apps.accounts.models import User

    def make(n=1, **kwargs):
        with django_db_blocker.unblock():
            owner = User.objects.create(username=f"erin-{uuid.uuid4().hex[:6]}")
            return [key_create(user=owner, name=f"k{i}", **kwargs) for i in range(n)]

    with django_db_blocker.unblock():
        yield make


@pytest.mark.django_db
@pytest.mark.parametrize("token", ["nonsense", "xr-", "xr-zzzzzzzz-secret-secret-secret-secret", "sk-" + "a" * 48,
                                   "xr-0123abcd-" + "x" * 5000, "xr-0123ABCD-" + "a" * 43, "xr-0123abcd-" + "é" * 43])
def test_a_malformed_token_is_refused_without_a_query(token, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert key_info_for(token) is None
    with database_unreachable():  # the async path too: it would fail loudly if it tried the database
        assert lookup(token) is None


def test_revoking_one_key_leaves_the_others_cached(committed_keys):
    (a, a_plain), (b, b_plain) = committed_keys(2)
    assert lookup(a_plain).id == a.id and lookup(b_plain).id == b.id
    key_revoke(a)  # publishes the invalidation of key a only
    with database_unreachable():
        with pytest.raises(ApiError) as unavailable:
            lookup(a_plain)  # dropped from the cache: it needs the database again
        assert unavailable.value.status == 503
        assert lookup(b_plain).id == b.id  # still cached: no query needed


def test_while_the_bus_is_down_a_cached_key_is_rechecked_after_five_seconds(committed_keys):
    from apps.common import bus

    # This test process runs no bus listener: nothing tells it of changes made elsewhere.
    assert not getattr(bus, "connected", lambda: False)()
    [(key, plaintext)] = committed_keys()
    assert lookup(plaintext).id == key.id
    ApiKey.objects.filter(id=key.id).update(revoked_at="2020-01-01T00:00:00Z")  # a change no event announces
    assert lookup(plaintext) is not None  # within 5 s the cache answers
    time.sleep(5.2)
    assert lookup(plaintext) is None


def test_with_the_database_down_cached_keys_serve_until_stale_max_and_others_get_503(committed_keys, monkeypatch):
    from apps.keys import selectors

    [(key, plaintext), (_, uncached)] = committed_keys(2)
    assert lookup(plaintext).id == key.id
    with database_unreachable():
        monkeypatch.setattr(selectors, "RECHECK_DISCONNECTED", 0.0, raising=False)  # re-check at once: it fails, the cache serves
        assert lookup(plaintext).id == key.id
        with pytest.raises(ApiError) as unavailable:
            lookup(uncached)
        assert unavailable.value.status == 503 and int(unavailable.value.headers["retry-after"]) >= 1
        monkeypatch.setitem(settings.XROUTER, "STALE_MAX", 0.0)
        with pytest.raises(ApiError) as stale:
            lookup(plaintext)  # past STALE_MAX the cached entry is not trusted any more
        assert stale.value.status == 503
    time.sleep(selectors.DOWN_PAUSE)  # the pause after a failure, then it recovers without a restart
    assert lookup(plaintext).id == key.id


def random_token() -> str:
    import secrets

    return f"xr-{secrets.token_hex(4)}-{secrets.token_urlsafe(32)}"


def test_unknown_tokens_are_remembered_apart_and_never_push_out_valid_keys(committed_keys, monkeypatch):
    from apps.keys import selectors

    monkeypatch.setattr(selectors, "MAX_UNKNOWN", 5)
    [(key, plaintext)] = committed_keys()
    assert lookup(plaintext).id == key.id
    strangers = [random_token() for _ in range(20)]
    for token in strangers:
        assert lookup(token) is None
    assert len(selectors._unknown) <= 5
    with database_unreachable():
        assert lookup(plaintext).id == key.id  # still cached
        assert lookup(strangers[-1]) is None  # the negative cache answers, no query


def test_the_key_cache_is_bounded_and_evicts_the_least_recently_used(committed_keys, monkeypatch):
    from apps.keys import selectors

    monkeypatch.setattr(selectors, "MAX_KNOWN", 2)
    (a, a_plain), (b, b_plain), (c, c_plain) = committed_keys(3)
    for plaintext in (a_plain, b_plain, a_plain, c_plain):  # b is the least recently used when c arrives
        assert lookup(plaintext) is not None
    assert len(selectors._known) <= 2
    with database_unreachable():
        assert lookup(a_plain).id == a.id and lookup(c_plain).id == c.id
        with pytest.raises(ApiError):
            lookup(b_plain)


def test_deactivating_a_user_drops_only_that_users_keys(committed_keys, django_db_blocker):
    from apps.accounts.services import user_set_active

    [(a, a_plain)] = committed_keys()
    [(b, b_plain)] = committed_keys()
    assert lookup(a_plain) and lookup(b_plain)
    user_set_active(a.user, False)
    assert lookup(a_plain) is None
    with database_unreachable():
        assert lookup(b_plain).id == b.id
    user_set_active(a.user, True)
    assert lookup(a_plain).id == a.id
