"""The reliability battery's quick subset (issue 14), as CI runs it: bench/chaos with --quick on stores,
emulators, fault proxies and gateway processes of its own — 1,000 billing requests under provider faults
with one worker and one writer killed and Redis and PostgreSQL restarted, fallback past a failing provider,
≥ 500 schema-generated requests, the hand-made hostile requests, 3 limit trials. Counts only: the latency and share figures are judged by
`make chaos`."""

import shutil
from pathlib import Path

import pytest

from bench.chaos.__main__ import QUICK, run, write
from bench.chaos.stores import PG_BIN
from tests.conftest import need

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def battery(tmp_path_factory):
    need("initdb and redis-server (the battery's own stores)",
         (PG_BIN / "initdb").exists() and shutil.which("redis-server") is not None)
    results = run(quick=True)
    write(results, tmp_path_factory.mktemp("chaos"))
    return results


def test_billing_under_faults_loses_and_duplicates_nothing(battery):
    billing = battery["billing"]
    assert billing["requests"] >= 1000 and billing["ledger_entries"] >= 900
    assert (billing["worker_kills"], billing["writer_kills"]) == (1, 1)
    assert [e["event"].split()[0] for e in billing["events"] if e["event"].startswith(("Redis", "PostgreSQL"))] == \
        ["Redis", "PostgreSQL"]
    problems = {k: billing[k] for k in ("lost", "duplicated", "mismatched", "unbilled", "http_500", "worker_deaths")}
    assert problems == dict.fromkeys(problems, 0), billing["examples"]
    assert billing["estimated_rows"] > 0  # the interrupted attempts were there, and marked


def test_fallback_serves_everything_and_never_truncates_silently(battery):
    fallback = battery["fallback"]
    assert fallback["requests"] > 0 and fallback["served"] == fallback["requests"], fallback["statuses"]
    assert fallback["cut_streams"] > 0 and fallback["silent_truncations"] == 0 and fallback["http_500"] == 0


def test_hostile_and_schema_generated_requests_get_no_server_error(battery):
    hostile, schema = battery["hostile"], battery["schema"]
    assert hostile["requests"] >= 300 and hostile["categories"] >= 30
    assert (hostile["http_500"], hostile["unexpected_5xx"], hostile["hung"]) == (0, 0, 0), hostile["by_category"]
    assert schema["requests"] >= 500 and schema["reached_provider"] > 0
    assert schema["http_500"] == 0, schema["statuses"]
    assert schema["http_5xx"] == 0, schema["statuses"]  # no fault is injected here (transport.without_read_timer)
    assert battery["hostile_worker_deaths"] == 0


def test_limits_hold_across_two_gateway_processes(battery):
    limits = battery["limits"]
    assert limits["trials"] == QUICK["trials"] and limits["gateways"] == 2
    assert limits["admitted_per_trial"] == [limits["rpm"]] * QUICK["trials"]
    assert limits["over_admitted"] == 0 and not limits["budget_overshot"] and limits["budget_admitted"] > 0


def test_the_report_names_every_figure_with_a_verdict(battery, tmp_path):
    md, _ = write(battery, tmp_path)
    text = Path(md).read_text()
    assert "| billing | lost (ledger entry without a usage row) | 0 | 0 | PASS |" in text
    assert "## Not measured yet" in text
    assert not [f for f in battery["figures"] if f["verdict"] == "FAIL"]
