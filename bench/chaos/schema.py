"""Schema-generated requests: schemathesis (`st run`) against the gateway's own OpenAPI schema (/api/schema/:
/v1 from the pydantic models that validate it, and the management API from drf-spectacular), authenticated
with a key that may also manage keys, every phase on (examples, coverage, fuzzing, stateful), positive and
negative data. The check that fails a run is `not_a_server_error` (no 5xx); the requests and their answers
are read back from the HAR report, for the split: how many reached routing and an emulator (a 2xx on
/v1/chat/completions or /v1/embeddings).

One change to the schema, in a schemathesis hook (bench/chaos/schema_hooks.py): the free-text `model` of the
/v1 bodies becomes the battery's configured models, so that positive cases can reach a provider at all
(a random string names no model, and all of them would end as 404s)."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from bench.chaos.harness import ROOT, Harness

REACHES_PROVIDER = ("/v1/chat/completions", "/v1/embeddings")


def run(harness: Harness, max_examples: int, max_time: int, seed: int = 14) -> dict:
    """Three passes: the /v1 calls a provider answers with valid data (half the time: the traffic that
    matters), the same with invalid data, then the rest (/v1/models and the management API) with both."""
    chat = ["--include-path-regex", "^/v1/(chat/completions|embeddings)$"]
    rest = ["--exclude-path-regex", "^/v1/(chat/completions|embeddings)$"]
    everything = ["--phases", "examples,coverage,fuzzing,stateful"]
    # The coverage phase sends malformed bodies whatever the mode: the valid-data pass leaves it to the others.
    valid = ["--phases", "examples,fuzzing,stateful", "--mode", "positive"]
    passes = [_pass(harness, "v1-positive", [*chat, *valid], max_examples * 3, max_time // 2, seed),
              _pass(harness, "v1-negative", [*chat, *everything, "--mode", "negative"], max_examples, max_time // 5, seed),
              _pass(harness, "rest", [*rest, *everything, "--mode", "all"], max_examples, max_time * 3 // 10, seed)]
    statuses, by_area = Counter(), Counter()
    reached = slowest = 0
    for entry in (e for p in passes for e in p.pop("entries")):
        status = entry["response"]["status"]
        path = "/" + entry["request"]["url"].split("/", 3)[-1].split("?")[0]
        statuses[str(status)] += 1
        area = "/v1" if path.startswith("/v1/") else "management API"
        by_area[f"{area} {status // 100}xx" if status else f"{area} no answer"] += 1
        if 200 <= status < 300 and path.startswith(REACHES_PROVIDER):
            reached += 1
        slowest = max(slowest, entry.get("time", 0) / 1000)
    total = sum(statuses.values())
    return {"requests": total, "reached_provider": reached, "reached_share": round(reached / total, 3) if total else 0,
            "http_500": statuses.get("500", 0), "http_5xx": sum(v for k, v in statuses.items() if k.startswith("5")),
            "no_answer": statuses.get("0", 0), "slowest_s": round(slowest, 2), "statuses": dict(statuses),
            "by_area": dict(by_area), "passes": passes}


def _pass(harness: Harness, name: str, select: list[str], max_examples: int, max_time: int, seed: int) -> dict:
    report = harness.root / f"schemathesis-{name}.har"
    env = {**harness.env, "SCHEMATHESIS_HOOKS": "bench.chaos.schema_hooks", "PYTHONPATH": str(ROOT),
           "NO_COLOR": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    base = harness.gateways[-1][1]  # not the gateway the billing scenario kills workers of
    # One worker: schemathesis's threads trip a CPython 3.11 compile() race (an internal "Runtime Error").
    argv = [str(Path(sys.executable).with_name("st")), "run", base + "/api/schema/?format=json", "--url", base, *select,
            "-H", f"Authorization: Bearer {harness.keys['manage']}", "--checks", "not_a_server_error",
            "-n", str(max_examples),
            "--max-time", str(max_time), "--workers", "1", "--seed", str(seed), "--request-timeout", "30",
            "--continue-on-failure", "--no-shrink", "--report", "har", "--report-har-path", str(report),
            "--suppress-health-check", "all", "--warnings", "off"]
    # In the run's own directory: schemathesis keeps a cache (.schemathesis/) wherever it runs.
    out = subprocess.run(argv, cwd=harness.root, env=env, capture_output=True, timeout=max_time + 300)
    text = out.stdout.decode(errors="replace")
    (harness.root / f"schemathesis-{name}.log").write_text(text + out.stderr.decode(errors="replace"))
    entries = json.loads(report.read_text())["log"]["entries"] if report.exists() else []
    return {"name": name, "exit_code": out.returncode, "requests": len(entries), "entries": entries,
            "stateful_scenarios": _stateful(text), "summary": _summary(text)}


def _stateful(text: str) -> str:
    at = text.find("Stateful")
    return " ".join(line.strip() for line in text[at:at + 400].splitlines()[1:6] if line.strip()) if at >= 0 else ""


def _summary(text: str) -> str:
    return next((line.strip("= ") for line in reversed(text.splitlines()) if line.startswith("=")), "")

