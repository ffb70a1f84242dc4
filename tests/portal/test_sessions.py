"""Sessions live in Redis when REDIS_URL is set (every process sees them, none is kept in the database), and
in the database without it."""

import os
import re
import subprocess
import sys
import uuid

import httpx
import pytest
import redis
from django.conf import settings
from django.contrib.sessions.models import Session
from django.core.cache import cache

from tests.conftest import ROOT, need, start_gateway, stop_gateway

PASSWORD = "session-password-42"


def _redis_key(session_key: str) -> str:
    return cache.make_key("django.contrib.sessions.cache" + session_key)  # what the cache backend names it


@pytest.fixture
def person(django_db_blocker):
    from apps.accounts.models import User

    name = f"session-{uuid.uuid4().hex[:8]}"
    with django_db_blocker.unblock():
        user = User.objects.create_user(name, f"{name}@example.com", PASSWORD)
    yield user
    with django_db_blocker.unblock():
        user.delete()


def test_a_session_survives_a_restart_in_redis_and_not_in_the_database(django_db_setup, django_db_blocker, person):
    need("Redis", bool(settings.REDIS_URL))
    process, base = start_gateway()
    try:
        with httpx.Client(base_url=base, timeout=30) as browser:
            login = browser.get("/accounts/login/")
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
            signed_in = browser.post("/accounts/login/", data={"csrfmiddlewaretoken": csrf, "username": person.username,
                                                               "password": PASSWORD})
            assert signed_in.status_code == 302
            cookies = dict(browser.cookies)
    finally:
        stop_gateway(process)
    session_key = cookies["sessionid"]
    stored = redis.Redis.from_url(settings.REDIS_URL)
    assert stored.exists(_redis_key(session_key)) and 0 < stored.ttl(_redis_key(session_key)) <= settings.SESSION_COOKIE_AGE
    with django_db_blocker.unblock():
        assert not Session.objects.filter(session_key=session_key).exists()

    process, base = start_gateway()  # another process: nothing of the first one's memory is left
    try:
        page = httpx.get(base + "/", cookies=cookies, timeout=30)
    finally:
        stop_gateway(process)

    assert page.status_code == 200 and person.username in page.text


def test_without_redis_sessions_stay_in_the_database():
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | {"DJANGO_SETTINGS_MODULE": "xrouter_project.settings"}
    out = subprocess.run([sys.executable, "-c", "import django; django.setup(); from django.conf import settings; "
                                                "print(settings.SESSION_ENGINE)"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "django.contrib.sessions.backends.db"
