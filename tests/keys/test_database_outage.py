"""Issue 8 item 18, the keys' part, end to end: a gateway whose PostgreSQL goes away keeps serving the keys it
has cached, answers 503 with Retry-After (never 500) for a key it would have to look up, and recovers
without a restart when the database comes back."""

import uuid

import httpx
from django.conf import settings

from apps.keys.services import key_create
from tests.conftest import _database_url, need

from .support import TcpProxy, gateway_process, status_within


def models(base: str, plaintext: str) -> httpx.Response:
    return httpx.get(base + "/v1/models", headers={"authorization": f"Bearer {plaintext}"}, timeout=15)


def test_a_gateway_without_its_database_serves_cached_keys_and_503s_the_others_then_recovers(
    gateway, django_db_blocker
):
    need("PostgreSQL", "postgresql" in settings.DATABASES["default"]["ENGINE"])
    from apps.accounts.models import User

    db = settings.DATABASES["default"]
    proxy = TcpProxy(db.get("HOST") or "127.0.0.1", int(db.get("PORT") or 5432)).restore()
    url = _database_url().replace(f":{db.get('PORT') or 5432}/", f":{proxy.port}/")
    with django_db_blocker.unblock():
        user = User.objects.create(username=f"frank-{uuid.uuid4().hex[:6]}")
        _, cached = key_create(user=user, name="cached")
        _, uncached = key_create(user=user, name="uncached")
    try:
        # A namespace of its own: a config event from another test run would make this gateway reload its
        # catalog, which (until the catalog serves stale itself) fails while the database is away.
        with gateway_process(DATABASE_URL=url, XROUTER_REDIS_NAMESPACE=f"xr-outage-{uuid.uuid4().hex[:8]}") as base:
            assert models(base, cached).status_code == 200
            proxy.cut()

            assert models(base, cached).status_code == 200
            refused = models(base, uncached)
            assert refused.status_code == 503, refused.text
            assert int(refused.headers["retry-after"]) >= 1
            assert refused.json()["error"]["type"] == "service_unavailable"

            proxy.restore()
            status, _ = status_within(lambda: models(base, uncached).status_code, 200, timeout=10)
            assert status == 200
    finally:
        proxy.cut()
