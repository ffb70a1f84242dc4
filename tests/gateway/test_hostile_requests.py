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
