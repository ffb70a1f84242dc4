"""The usage durability contract end to end: real gateway processes (`manage.py serve`), real Redis,
PostgreSQL and usage writers, the provider emulators over HTTP.

- one row per upstream attempt, keyed (request_id, attempt): a fallback leaves two;
- the attempt's id `<request id>.<attempt>` reaches the provider in its request-id header, so the
  emulators' ledger joins the usage rows one to one;
- a gateway process killed with SIGKILL mid-stream leaves exactly one `worker_lost` row for the
  attempt it was serving (replayed from its start journal by another process), and the real rows
  of everything it had finished.
"""

import os
import signal
import time
import uuid

import httpx
import psutil
import pytest
from django.conf import settings

from tests.conftest import need, start_gateway, wait_for_usage
from tests.gateway.conftest import _stop_with_children
from tests.gateway.support import LONG_PROMPT, chat_body

PRIMARY = "gigachat/GigaChat-2-Max"
SECONDARY = "mts/mws-gpt-alpha"
STREAMED = "tbank/t-tech/T-lite-it-2.1"


@pytest.fixture(scope="module")
def fallback_rule(gateway, django_db_blocker):
    """A rule made before the module's gateways start (so they load it with their catalog)."""
    from apps.routing.models import RoutingRule
    from apps.routing.services import rule_save, rules_delete

    name = f"durable-{uuid.uuid4().hex[:6]}"
    with django_db_blocker.unblock():
        rule_save(RoutingRule(name=name, priority=1, match_model=name, fallback_on=["5xx"],
                              targets=[{"model": PRIMARY}, {"model": SECONDARY}]))
    yield name
    with django_db_blocker.unblock():
        rules_delete(RoutingRule.objects.filter(name=name))


@pytest.fixture(scope="module")
def pair(gateway, fallback_rule, tmp_path_factory):
    """Two gateway processes sharing a usage stream and a spool directory (as the workers of one
    host do), each with its writer; worker_lost records wait 2 s for their real row."""
    need("Redis", bool(settings.REDIS_URL))
    env = {**gateway.env, "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
           "XROUTER_SPOOL_DIR": str(tmp_path_factory.mktemp("spool")), "XROUTER_USAGE_LOST_GRACE": "2"}
    started = [start_gateway(env) for _ in range(2)]
    yield started, env
    for process, _ in started:
        if process.poll() is None:
            _stop_with_children(process)


def _rows(django_db_blocker, request_id: str, count: int, timeout: float = 20.0) -> list:
    from apps.usage.models import UsageRecord

    deadline = time.monotonic() + timeout
    with django_db_blocker.unblock():
        while True:
            rows = list(UsageRecord.objects.filter(request_id=request_id).order_by("attempt"))
            if len(rows) >= count or time.monotonic() > deadline:
                return rows
            time.sleep(0.1)


def _ledger(emulators, name: str) -> list[dict]:
    return httpx.get(emulators[name].control_url + "/ledger", timeout=5).json()["entries"]


def test_a_fallback_leaves_one_row_per_attempt_and_the_ledger_joins_them(pair, gateway, fallback_rule, emulators,
                                                                          emulator_control, django_db_blocker):
    base = pair[0][0][1]
    for name in ("gigachat", "mts"):
        httpx.delete(emulators[name].control_url + "/ledger", timeout=5)
    emulator_control("gigachat", status=500, message="primary down", count=1, path="/api/v1/chat/completions")
    headers = {"authorization": f"Bearer {gateway.keys['alice']}"}
    answer = httpx.post(base + "/v1/chat/completions", headers=headers, json=chat_body(fallback_rule), timeout=30)
    assert answer.status_code == 200, answer.text
    request_id = answer.headers["x-request-id"]
    plain = httpx.post(base + "/v1/chat/completions", headers=headers, json=chat_body(SECONDARY), timeout=30)
    assert plain.status_code == 200, plain.text

    failed, answered = _rows(django_db_blocker, request_id, 2)
    assert len(_rows(django_db_blocker, request_id, 3, timeout=1)) == 2  # and no third
    assert (failed.attempt, failed.provider, failed.status, failed.http_status) == (0, "gigachat", "error", 502)
    assert (answered.attempt, answered.provider, answered.status) == (1, "mts", "ok")
    assert answered.fallback_chain == PRIMARY and failed.fallback_chain == ""
    assert answered.prompt_tokens > 0 and answered.cost > 0
    assert failed.created_at <= answered.created_at
    single = _rows(django_db_blocker, plain.headers["x-request-id"], 1)
    assert [(r.attempt, r.status) for r in single] == [(0, "ok")]

    # The provider saw `<request id>.<attempt>` in its own request-id header: ledger and rows join 1:1.
    ours = {request_id, plain.headers["x-request-id"]}
    calls = [e for name in ("gigachat", "mts") for e in _ledger(emulators, name)
             if e["path"].endswith("/chat/completions") and e["client_request_id"].split(".")[0] in ours]
    rows = failed, answered, single[0]
    assert sorted(e["client_request_id"] for e in calls) == sorted(f"{r.request_id}.{r.attempt}" for r in rows)
    by_id = {e["client_request_id"]: e for e in calls}
    for row in rows:
        entry = by_id[f"{row.request_id}.{row.attempt}"]
        if row.status == "ok":
            assert entry["status"] == 200
            assert (entry["prompt_tokens"], entry["completion_tokens"]) == (row.prompt_tokens, row.completion_tokens)
        else:
            assert entry["status"] == 500  # the provider's; the row keeps what the client would have got (502)


def test_each_provider_receives_the_attempt_id_in_its_own_header(pair, gateway, emulators, django_db_blocker):
    base = pair[0][0][1]
    headers = {"authorization": f"Bearer {gateway.keys['alice']}"}
    for name, model in (("gigachat", PRIMARY), ("yandexgpt", "yandexgpt/yandexgpt-lite"), ("mts", SECONDARY),
                        ("tbank", STREAMED)):
        answer = httpx.post(base + "/v1/chat/completions", headers=headers, json=chat_body(model), timeout=30)
        assert answer.status_code == 200, answer.text
        expected = answer.headers["x-request-id"] + ".0"
        assert [e for e in _ledger(emulators, name) if e["client_request_id"] == expected], (name, expected)


def test_a_worker_killed_mid_stream_leaves_one_worker_lost_row_and_every_real_row(pair, gateway, emulators,
                                                                                   emulator_control, django_db_blocker):
    (victim, victim_base), (_, survivor_base) = pair[0]
    spool = pair[1]["XROUTER_SPOOL_DIR"]
    headers = {"authorization": f"Bearer {gateway.keys['alice']}"}
    finished = []
    for _ in range(3):
        answer = httpx.post(victim_base + "/v1/chat/completions", headers=headers, json=chat_body(STREAMED), timeout=30)
        assert answer.status_code == 200, answer.text
        finished.append(answer.headers["x-request-id"])
    for request_id in finished:
        wait_for_usage(django_db_blocker, request_id)  # their end records left the victim

    emulator_control("tbank", chunk_delay_ms=500, count=1)
    writer_children = psutil.Process(victim.pid).children(recursive=True)
    with httpx.stream("POST", victim_base + "/v1/chat/completions", headers=headers, timeout=30,
                      json=chat_body(STREAMED, LONG_PROMPT, stream=True)) as stream:
        assert stream.status_code == 200
        lost_id = stream.headers["x-request-id"]
        lines = stream.iter_lines()
        assert next(lines).startswith("data: ")
        assert any(name.startswith(f"starts-{victim.pid}-") for name in os.listdir(spool))
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        with pytest.raises(httpx.HTTPError):
            for _ in lines:
                pass
    psutil.wait_procs(writer_children, timeout=10)  # the victim's writer drains and follows it

    # The survivor replays the dead journal (every 5 s); its writer waits out the 2 s grace.
    rows = _rows(django_db_blocker, lost_id, 1, timeout=30)
    assert len(rows) == 1, rows
    lost = rows[0]
    assert (lost.attempt, lost.status, lost.provider, lost.stream, lost.estimated) == (0, "worker_lost", "tbank", True, True)
    assert lost.prompt_tokens > 0 and lost.completion_tokens == 0 and lost.cost > 0
    assert lost.key_prefix and lost.organisation_id == wait_for_usage(django_db_blocker, finished[0]).organisation_id

    time.sleep(4)  # a second grace: nothing else of the victim turns up
    for request_id in finished:
        assert [(r.attempt, r.status) for r in _rows(django_db_blocker, request_id, 2, timeout=0.5)] == [(0, "ok")]
    assert len(_rows(django_db_blocker, lost_id, 2, timeout=0.5)) == 1
    assert not [n for n in os.listdir(spool) if n.startswith(("starts-", "usage-")) and f"-{victim.pid}-" in n]
    # The survivor still serves, and its journals are bounded: a few flush intervals' worth at most.
    answer = httpx.post(survivor_base + "/v1/chat/completions", headers=headers, json=chat_body(STREAMED), timeout=30)
    assert answer.status_code == 200
    assert len([n for n in os.listdir(spool) if n.startswith("starts-")]) <= 4
