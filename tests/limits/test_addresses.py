"""The limiter on Django's side, against real Redis: sign-up, login and the OAuth token endpoint per
client address, the management API per caller (DRF's throttle)."""

import random

import pytest
from django.conf import settings
from django.test import Client

from apps.limits import addresses
from tests.conftest import need


@pytest.fixture
def rates(settings):
    need("Redis", bool(settings.REDIS_URL))

    def set_rates(**given):
        settings.XROUTER = {**settings.XROUTER, "ADDRESS_RATES": {**dict.fromkeys(("signup", "login", "token", "api"), ""),
                                                                  **given}}

    return set_rates


def _address() -> str:
    """An address of its own per test (the counters live in a Redis that runs share)."""
    return f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"


def _forget(bucket: str, who: str) -> None:
    import redis

    client = redis.Redis.from_url(settings.REDIS_URL)
    for key in client.scan_iter(addresses._scope(bucket, who).prefix + ":*"):
        client.delete(key)
    client.close()


@pytest.mark.django_db
def test_sign_ups_beyond_the_rate_from_one_address_are_refused_with_retry_after(rates):
    rates(signup="2/h")
    here, elsewhere = _address(), _address()
    form = {"username": "someone", "email": "x@example.com", "password1": "x", "password2": "x"}
    answers = [Client(REMOTE_ADDR=here).post("/signup/", form).status_code for _ in range(3)]
    assert answers[:2] != [429, 429] and answers[2] == 429
    refused = Client(REMOTE_ADDR=here).post("/signup/", form)
    assert refused.status_code == 429 and 1 <= int(refused["Retry-After"]) <= 3600 + 360
    assert Client(REMOTE_ADDR=elsewhere).post("/signup/", form).status_code != 429  # another address: its own count
    assert Client(REMOTE_ADDR=here).get("/signup/").status_code == 200  # reading the form is not limited


@pytest.mark.django_db
def test_logins_and_token_requests_are_limited_per_address(rates):
    rates(login="3/min", token="2/min")
    here = _address()
    client = Client(REMOTE_ADDR=here)
    logins = [client.post("/accounts/login/", {"username": "nobody", "password": "wrong"}).status_code for _ in range(4)]
    assert logins[:3] == [200, 200, 200] and logins[3] == 429  # three wrong passwords shown, then the limit
    tokens = [client.post("/o/token/", {"grant_type": "client_credentials"}) for _ in range(3)]
    assert [t.status_code for t in tokens[:2]] == [401, 401]  # no client: the toolkit's own answer
    refused = tokens[2]
    assert refused.status_code == 429 and refused.json()["error"] == "too_many_requests"
    assert int(refused["Retry-After"]) >= 1 and refused["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_the_management_api_throttle_is_the_same_limiter(rates, alice):
    from rest_framework.test import APIClient

    from apps.keys.services import key_create

    rates(api="3/min")
    key, plaintext = key_create(user=alice, name="throttled", scopes=["keys:manage"])
    _forget("api", f"key:{key.id}")  # a recreated test database reuses key ids
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {plaintext}")
    answers = [api.get("/api/v1/keys/") for _ in range(4)]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    refused = answers[3]
    assert refused.json()["error"]["type"] == "rate_limit_error" and 1 <= int(refused["Retry-After"]) <= 66


def test_without_redis_the_in_process_limiter_counts(settings, monkeypatch):
    settings.REDIS_URL = ""
    settings.XROUTER = {**settings.XROUTER, "ADDRESS_RATES": {"login": "2/min"}}
    monkeypatch.setattr(addresses, "_local", addresses.LocalLimiter())
    who = _address()
    assert [addresses.retry_after("login", who) for _ in range(3)][:2] == [None, None]
    assert addresses.retry_after("login", who) >= 1
    assert addresses.retry_after("signup", who) is None  # no rate set: not limited


def test_redis_unreachable_fails_as_the_setting_says(settings, monkeypatch):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    settings.XROUTER = {**settings.XROUTER, "ADDRESS_RATES": {"login": "1/min"}, "LIMITS_FAIL": "closed",
                        "LIMITS_TIMEOUT": 0.2}
    monkeypatch.setattr(addresses, "_client", None)
    monkeypatch.setattr(addresses, "_down_until", 0.0)
    assert addresses.retry_after("login", _address()) == 1  # closed: refused, at once
    settings.XROUTER = {**settings.XROUTER, "LIMITS_FAIL": "open"}
    monkeypatch.setattr(addresses, "_fallback", addresses.LocalLimiter())
    who = _address()
    assert addresses.retry_after("login", who) is None and addresses.retry_after("login", who) >= 1
    monkeypatch.setattr(addresses, "_client", None)  # not the unreachable one for later tests
