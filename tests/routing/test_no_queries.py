"""Routing adds no database query per request in steady state (issue 3, "Done means")."""

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from .conftest import unique_model


@pytest.mark.django_db
def test_planning_a_route_makes_no_query_once_the_catalog_is_loaded(gateway, django_assert_num_queries):
    from apps.keys.selectors import KeyInfo
    from apps.routing.catalog import load_catalog
    from apps.routing.models import RoutingRule
    from apps.routing.router import plan_route
    from apps.routing.rules import RequestContext

    RoutingRule.objects.create(
        name="t-no-query",
        priority=1,
        match_model="test/no-query-*",
        strategy="weighted",
        targets=[{"model": "gigachat/GigaChat-2", "weight": 3}, {"model": "tbank/t-tech/T-lite-it-2.1"}],
    )
    catalog = load_catalog()
    key = KeyInfo(
        id=1, prefix="abcd1234", name="k", user_id=1, organisation_id=None, allowed_models=(), residency="", expires_at=None
    )

    with django_assert_num_queries(0):
        for i in range(100):
            ctx = RequestContext(model=f"test/no-query-{i}", key_prefix=key.prefix, stream=bool(i % 2), prompt_tokens=i)
            assert plan_route(catalog, ctx.model, key, ctx=ctx).rule == "t-no-query"
            assert plan_route(catalog, "gpt-4o", key).rule == "alias:gpt-4o"
            assert plan_route(catalog, "mts/mws-gpt-alpha", key).targets[0].label == "mts/mws-gpt-alpha"


def _any_query():
    from apps.routing.models import RoutingRule

    return RoutingRule.objects.count()


@pytest.fixture
def asgi_rule(rules):
    model = unique_model("asgi")
    rules.create(
        name="t-asgi",
        match_model=model,
        strategy="round_robin",
        targets=[{"model": "tbank/t-tech/T-lite-it-2.1"}, {"model": "mts/mws-gpt-alpha"}],
    )
    return model


async def test_the_gateway_makes_no_query_per_request_in_steady_state(gateway, emulators, asgi_rule, django_db_blocker):
    from apps.providers.adapters.registry import close_all
    from apps.usage import buffer
    from xrouter_project.asgi import application

    transport = httpx.ASGITransport(app=application)
    headers = {"authorization": f"Bearer {gateway.keys['alice']}"}

    async def ask(i: int) -> httpx.Response:
        body = {"model": asgi_rule, "stream": bool(i % 2), "messages": [{"role": "user", "content": f"hi {i}"}]}
        return await client.post("/v1/chat/completions", json=body)

    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers, timeout=30) as client:
            with django_db_blocker.unblock():  # warm-up: the key and the catalog are read once
                for i in range(2):
                    assert (await ask(i)).status_code == 200
            # The gateway reads the database only in worker threads (sync_to_async), where a
            # CaptureQueriesContext on this thread's connection sees nothing; pytest-django's
            # blocker is process-wide instead: any query, from any thread, now raises.
            with django_db_blocker.block():
                with pytest.raises(RuntimeError, match="Database access not allowed"):
                    await sync_to_async(_any_query, thread_sensitive=False)()
                answers = [await ask(i) for i in range(20)]

        assert [r.status_code for r in answers] == [200] * 20, [r.text for r in answers if r.status_code != 200][:1]
        assert {r.headers["x-xrouter-route"].split(";")[0] for r in answers} == {"t-asgi"}
    finally:
        buffer._pending.clear()  # no flusher runs in this process; nothing to bill here
        await close_all()
        # The worker threads' connections land in this task's context (asgiref copies it back):
        # close them, or PostgreSQL refuses to drop the test database at the end of the run.
        with django_db_blocker.unblock():
            await sync_to_async(connections.close_all, thread_sensitive=False)()
