"""/metrics with several worker processes: the series of every worker add up (prometheus_client's
multiprocess mode), and only allowed scrapers read them. A real gateway with two workers, real
traffic through the openai SDK against the emulators."""

import re
import uuid

import httpx
import pytest
from openai import OpenAI

from tests.conftest import start_gateway
from tests.gateway.conftest import _stop_with_children

MODEL = "mts/mws-gpt-alpha"


@pytest.fixture(scope="module")
def two_workers(gateway):
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}", "XROUTER_WORKERS": "2",
           "XROUTER_METRICS_TOKEN": "scrape-secret-0123456789"}
    process, base = start_gateway(env)
    yield base
    _stop_with_children(process)


def _samples(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line.partition("}")[0]))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_two_workers_series_add_up(two_workers, gateway):
    before = httpx.get(two_workers + "/metrics", timeout=10).text
    start = _samples(before, "xrouter_requests_total", provider="mts", model="mws-gpt-alpha", status="200")
    client = OpenAI(base_url=two_workers + "/v1", api_key=gateway.keys["alice"], max_retries=0, timeout=30)
    pids, prompt, completion = set(), 0, 0
    for i in range(30):
        # A new connection each time, so both workers serve some of them.
        with httpx.Client() as http:
            client = OpenAI(base_url=two_workers + "/v1", api_key=gateway.keys["alice"], max_retries=0, timeout=30,
                            http_client=http)
            if i % 3:
                answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": f"hi {i}"}],
                                                        max_tokens=8)
                prompt += answer.usage.prompt_tokens
                completion += answer.usage.completion_tokens
            else:
                chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                             max_tokens=8, stream=True,
                                                             stream_options={"include_usage": True}))
                usage = chunks[-1].usage
                prompt += usage.prompt_tokens
                completion += usage.completion_tokens
    text = httpx.get(two_workers + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("xrouter_ready{"):
            pids.add(re.search(r'pid="(\d+)"', line).group(1))
    assert _samples(text, "xrouter_requests_total", provider="mts", model="mws-gpt-alpha", status="200") - start == 30
    assert _samples(text, "xrouter_tokens_total", provider="mts", model="mws-gpt-alpha", direction="in") >= prompt
    assert _samples(text, "xrouter_tokens_total", provider="mts", model="mws-gpt-alpha", direction="out") >= completion
    assert _samples(text, "xrouter_time_to_first_token_seconds_count", provider="mts") >= 10
    assert _samples(text, "xrouter_gateway_overhead_seconds_count") >= 30
    assert _samples(text, "xrouter_request_seconds_count", endpoint="chat") >= 30
    # No per-key series unless asked for (XROUTER_METRICS_PER_KEY).
    assert "xrouter_key_requests_total" not in text and gateway.keys["alice"][:10] not in text
    # Both workers served: their /readyz gauges are both there (one series per live worker).
    for _ in range(20):
        httpx.get(two_workers + "/readyz", timeout=10)
    text = httpx.get(two_workers + "/metrics", timeout=10).text
    pids = set(re.findall(r'xrouter_ready\{pid="(\d+)"\}', text))
    assert len(pids) == 2, pids


def test_metrics_are_refused_to_others_and_served_with_the_token(two_workers, gateway):
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
           "XROUTER_METRICS_ALLOW": "10.0.0.0/8", "XROUTER_METRICS_TOKEN": "scrape-secret-0123456789"}
    process, base = start_gateway(env)
    try:
        refused = httpx.get(base + "/metrics", timeout=10)
        assert refused.status_code == 403 and "xrouter_" not in refused.text
        wrong = httpx.get(base + "/metrics", headers={"authorization": "Bearer scrape-secret-0123456780"}, timeout=10)
        assert wrong.status_code == 403
        # A proxy's X-Forwarded-For from a client is not believed (no trusted proxies configured).
        spoofed = httpx.get(base + "/metrics", headers={"x-forwarded-for": "10.1.2.3"}, timeout=10)
        assert spoofed.status_code == 403
        served = httpx.get(base + "/metrics", headers={"authorization": "Bearer scrape-secret-0123456789"}, timeout=10)
        assert served.status_code == 200 and "xrouter_usage_dead_letter_total" in served.text
        assert served.headers["content-type"].startswith("text/plain")
    finally:
        _stop_with_children(process)


def test_the_health_check_reports_provider_health_and_gigachat_balance_on_every_gateway(gateway, committed_db):
    """The Celery health task (run here in-process) reaches the gateway through the bus."""
    import time

    from apps.providers.models import Provider
    from apps.providers.services import provider_check_health

    result = provider_check_health(Provider.objects.get(name="gigachat"))
    assert result.ok
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        text = httpx.get(gateway.base_url + "/metrics", timeout=10).text
        # The emulator's balance (the SDK fixture balance.json).
        if _samples(text, "xrouter_provider_balance_tokens", provider="gigachat", usage="GigaChat") == 900000:
            break
        time.sleep(0.2)
    assert _samples(text, "xrouter_provider_balance_tokens", provider="gigachat", usage="GigaChat") == 900000
    assert _samples(text, "xrouter_provider_up", provider="gigachat") == 1
