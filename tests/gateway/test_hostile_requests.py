"""Hostile requests against the running gateway: one body must not stall the others (issue 8
item 6), and n > 1 emulation cancels and bills its siblings when one fails (item 11)."""

import threading
import time

import httpx
import orjson

from tests.conftest import wait_for_usage

from .support import assert_error

GIGA = "gigachat/GigaChat-2-Max"


def test_a_body_of_many_messages_is_refused_without_stalling_the_gateway(gateway, http):
    messages = [{"role": "user", "content": "many little messages"}] * 70_000
    raw = orjson.dumps({"model": GIGA, "messages": messages, "n": 4})
    assert len(raw) < 4 * 1024 * 1024
    stalls: list[float] = []
    done = threading.Event()

    def probe():
        with httpx.Client(base_url=gateway.base_url, timeout=30) as client:
            while not done.is_set():
                started = time.monotonic()
                client.get("/healthz").raise_for_status()
                stalls.append(time.monotonic() - started)
                time.sleep(0.02)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        response = http.post("/v1/chat/completions", content=raw, headers={"content-type": "application/json"}, timeout=60)
    finally:
        done.set()
        prober.join()
    error = assert_error(response, 400, param="messages")
    assert "2048" in error["message"]
    assert max(stalls) < 2.0, f"/healthz waited {max(stalls):.1f}s"


def test_a_failed_n_call_bills_the_siblings_that_answered(http, emulator_control, django_db_blocker):
    # One sibling fails after 0.3 s, one would take 4 s, one answers at once.
    emulator_control("gigachat", faults=[{"status": 400, "message": "bad sibling", "latency_ms": 300, "count": 1},
                                         {"latency_ms": 4000, "count": 1}])
    started = time.monotonic()
    response = http.post("/v1/chat/completions", json={"model": GIGA, "messages": [{"role": "user", "content": "three of us"}], "n": 3})
    assert time.monotonic() - started < 3.5
    assert "bad sibling" in assert_error(response, 400)["message"]
    record = wait_for_usage(django_db_blocker, response.headers["x-request-id"])
    assert record.status == "error"
    assert record.prompt_tokens > 0 and record.completion_tokens > 0


def test_siblings_that_answered_before_a_fallback_are_billed_on_a_row_of_their_own(http, emulator_control, django_db_blocker):
    """n > 1 on GigaChat: one sibling answers, one fails with a 500, the third is cancelled; the
    rule falls back to T-Bank, which answers. The request's row bills T-Bank; the GigaChat sibling
    that answered is billed on its own row (attempt 0, before T-Bank's attempt 1) at GigaChat's price."""
    import uuid

    from apps.routing.models import RoutingRule
    from apps.routing.services import rule_save, rules_delete

    name = f"n-fallback-{uuid.uuid4().hex[:6]}"
    with django_db_blocker.unblock():
        rule_save(RoutingRule(name=name, priority=1, match_model=name, fallback_on=["5xx"],
                              targets=[{"model": GIGA}, {"model": "tbank/t-tech/T-lite-it-2.1"}]))
    try:
        emulator_control("gigachat", faults=[{"status": 500, "message": "sibling broke", "latency_ms": 300, "count": 1},
                                             {"latency_ms": 4000, "count": 1}])
        body = {"model": name, "messages": [{"role": "user", "content": "three of us"}], "n": 3}
        deadline = time.monotonic() + 5  # the rule reaches the gateway through the bus
        while (response := http.post("/v1/chat/completions", json=body)).status_code == 404 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert response.status_code == 200, response.text
        assert response.headers["x-xrouter-provider"] == "tbank"
        request_id = response.headers["x-request-id"]
        answered = wait_for_usage(django_db_blocker, request_id)
        assert (answered.provider, answered.status) == ("tbank", "ok")
        sibling = wait_for_usage(django_db_blocker, request_id, attempt=0)
        assert (sibling.provider, sibling.status) == ("gigachat", "error")
        assert sibling.prompt_tokens > 0 and sibling.completion_tokens > 0 and sibling.cost > 0
    finally:
        with django_db_blocker.unblock():
            rules_delete(RoutingRule.objects.filter(name=name))
