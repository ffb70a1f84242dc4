"""Scale-out, as two replicas run: two gateway instances on different ports behind one Redis and one
PostgreSQL. A key revoked and an alias added through one are enforced by the other within a second, and
every request either served is billed exactly once (the rate limits across both are proven in
tests/limits/test_limits_e2e.py)."""

import re
import time
import uuid

import httpx
import pytest
from django.conf import settings

from tests.conftest import need, start_gateway, wait_for_usage
from tests.gateway.conftest import _stop_with_children

PASSWORD = "correct-horse-battery-staple-9"


@pytest.fixture(scope="module")
def replicas(gateway):
    need("Redis", bool(settings.REDIS_URL))
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"}
    started = [start_gateway(env) for _ in range(2)]
    yield [base for _, base in started]
    for process, _ in started:
        _stop_with_children(process)


def _until(check, seconds: float = 1.0) -> float:
    """How long `check()` took to come true (polling every 20 ms); fails after `seconds` + a hang guard."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > seconds + 4:
            pytest.fail(f"not true within {seconds} s")
        time.sleep(0.02)
    return time.monotonic() - started


def _chat(base: str, key: str, model: str = "mts/mws-gpt-alpha") -> httpx.Response:
    return httpx.post(base + "/v1/chat/completions", headers={"authorization": f"Bearer {key}"}, timeout=30,
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5})


def test_a_key_revoked_through_one_replica_is_refused_by_the_other_within_a_second(replicas, committed_db):
    from apps.accounts.models import User
    from apps.keys.services import key_create

    owner, _ = User.objects.get_or_create(username="scale-out")
    _, manager = key_create(user=owner, name="manager", scopes=["chat", "keys:manage"])
    first, second = replicas
    made = httpx.post(first + "/api/v1/keys/", json={"name": "worker"}, headers={"authorization": f"Bearer {manager}"},
                      timeout=30)
    assert made.status_code == 201, made.text
    worker, worker_id = made.json()["key"], made.json()["id"]
    assert _chat(second, worker).status_code == 200
    revoked = httpx.post(f"{first}/api/v1/keys/{worker_id}/revoke/", headers={"authorization": f"Bearer {manager}"},
                         timeout=30)
    assert revoked.status_code == 200
    took = _until(lambda: _chat(second, worker).status_code == 401)
    assert took < 1.0, took


def test_an_alias_added_in_one_replicas_admin_is_served_by_the_other_within_a_second(replicas, committed_db):
    from apps.accounts.models import User

    name = f"scale-{uuid.uuid4().hex[:6]}"
    User.objects.create_superuser(f"root-{name}", f"{name}@example.com", PASSWORD)
    first, second = replicas
    admin = httpx.Client(base_url=first, timeout=30, follow_redirects=False)
    page = admin.get("/accounts/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    assert admin.post("/accounts/login/", data={"csrfmiddlewaretoken": csrf, "username": f"root-{name}",
                                                "password": PASSWORD, "next": "/admin/"}).status_code == 302
    form = admin.get("/admin/routing/alias/add/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    key = _key()
    assert _chat(second, key, name).status_code == 404
    saved = admin.post("/admin/routing/alias/add/", data={"csrfmiddlewaretoken": csrf, "name": name,
                                                           "target": "mts/mws-gpt-alpha", "enabled": "on"})
    assert saved.status_code == 302, saved.text[:1000]
    took = _until(lambda: _chat(second, key, name).status_code == 200)
    assert took < 1.0, took


def test_requests_spread_over_both_replicas_are_billed_exactly_once(replicas, committed_db, django_db_blocker):
    from apps.usage.models import UsageRecord

    key = _key()
    ids = []
    for i in range(20):
        answer = _chat(replicas[i % 2], key)
        assert answer.status_code == 200
        ids.append(answer.headers["x-request-id"])
    for request_id in ids:
        wait_for_usage(django_db_blocker, request_id)
    rows = UsageRecord.objects.filter(request_id__in=ids)
    assert rows.count() == 20 and len(set(rows.values_list("request_id", flat=True))) == 20


def _key() -> str:
    from apps.accounts.models import User
    from apps.keys.services import key_create

    owner, _ = User.objects.get_or_create(username="scale-out")
    return key_create(user=owner, name=f"k-{uuid.uuid4().hex[:6]}")[1]
