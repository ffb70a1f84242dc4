"""The reliability battery (issue 14): `make chaos` runs it in full; `--quick` is the subset CI runs.

    python -m bench.chaos [--quick] [--out bench/results]

Starts its own PostgreSQL, Redis, emulators, fault proxies and two gateway processes (bench/chaos/harness.py),
runs the scenarios — limits, billing under faults, fallback, hand-made hostile requests, schema-generated requests —
and writes `<out>/chaos.md` and `chaos.json` (`chaos-quick.*` with --quick): every figure with its target and
PASS or FAIL, and the figures the battery does not measure yet, named as such.
"""

import argparse
import json
import platform
import sys
import time
from pathlib import Path

from bench.chaos import billing, fallback, hostile, isolation, limits, outages, overload, schema, shutdown, soak
from bench.chaos.billing import WorkerWatch
from bench.chaos.harness import ROOT, Harness, log

FULL = {"billing": 10_000, "worker_kills": 3, "writer_kills": 1, "trials": 20, "schema_examples": 60, "schema_time": 300,
        "fallback_per_fault": 100, "outages": True}
QUICK = {"billing": 1_000, "worker_kills": 1, "writer_kills": 1, "trials": 3, "schema_examples": 10, "schema_time": 25,
         "fallback_per_fault": 20, "outages": False}
# The battery's gateway settings: upstream reads give up after 10 s (so a provider that hangs costs seconds, not
# the shipped 120; not less, or a loaded 2-CPU machine trips it where no fault was injected), and a worker_lost record waits 70 s instead of 120 (more than the writer's 60 s claim
# idle, as apps/usage/writer.py requires), so the run drains sooner; circuit breakers never open, so that every
# request meets the injected faults instead of a breaker's 503 (the breaker has tests of its own, tests/routing).
# Everything else is as shipped.
ENV = {"XROUTER_UPSTREAM_READ_TIMEOUT": "10", "XROUTER_USAGE_LOST_GRACE": "70", "XROUTER_BREAKER_FAILURES": "1000000",
       "XROUTER_BREAKER_ERROR_RATE": "2"}
# What a run did not measure: (scenario, sentence), listed under "Not measured" in the report when it did not run.
NOT_MEASURED = [
    ("outages", "Store outages (the quick subset does not run them; the full run does)"),
    ("isolation", "Isolation: a tenant at 10x its limit holding 200 unread streams costs another 0 errors and ≤ max(+20%, +5 ms) p99"),
    ("overload", "Overload at 100 requests/s against 50 × 1 s upstream capacity: refusals within the wait + 50 ms, admitted p99"),
    ("soak", "Soak: 15 minutes of steady load, summed RSS growth < 10% from minutes 4–5 to the last"),
    ("shutdown", "Graceful shutdown: a stopped worker finishes its open HTTP and WebSocket streams and loses no usage"),
]


def not_measured(results: dict) -> list[str]:
    return [text for scenario, text in NOT_MEASURED if scenario not in results]


def figure(section: str, name: str, value, target: str, ok: bool | None) -> dict:
    return {"section": section, "name": name, "value": value, "target": target,
            "verdict": "PASS" if ok else ("FAIL" if ok is not None else "reported")}


SCENARIOS = ["limits", "billing", "fallback", "hostile", "schema", "outages", "isolation", "overload", "soak", "shutdown"]
SOAK_MINUTES = 15.0


def run(quick: bool, only: list[str] | None = None, soak_minutes: float = SOAK_MINUTES) -> dict:
    """Every scenario in order (the quick subset: those CI runs), or `only` the ones named."""
    p = QUICK if quick else FULL
    chosen = set(only or ([s for s in SCENARIOS if s not in ("outages", "isolation", "overload", "soak", "shutdown")]
                          if quick else SCENARIOS))
    started = time.time()
    harness = Harness(workers=2, gateways=2, limit_keys=p["trials"], env=ENV).start()
    results: dict = {"quick": quick, "only": sorted(only) if only else None, "parameters": {**p, "soak_minutes": soak_minutes},
                     "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
                     "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs, "
                                f"Python {platform.python_version()}"}
    try:
        if "limits" in chosen:
            log("limits")
            results["limits"] = limits.run(harness, p["trials"])
        if "billing" in chosen:
            log("billing under faults")
            results["billing"] = billing.run(harness, p["billing"], p["worker_kills"], p["writer_kills"])
        with WorkerWatch(harness) as watch:
            if "fallback" in chosen:
                log("fallback")
                results["fallback"] = fallback.run(harness, p["fallback_per_fault"])
            if "hostile" in chosen:
                log("hand-made hostile requests")
                results["hostile"] = hostile.run(harness.gateways[-1][1], harness.keys)
            if "schema" in chosen:
                log("schema-generated requests (schemathesis)")
                results["schema"] = schema.run(harness, p["schema_examples"], p["schema_time"])
        if chosen & {"fallback", "hostile", "schema"}:
            results["hostile_worker_deaths"] = watch.deaths
        if "outages" in chosen and (p["outages"] or only):
            log("store outages")
            results["outages"] = outages.run(harness)
        if "isolation" in chosen:
            log("isolation between tenants")
            results["isolation"] = isolation.run(harness)
        if "overload" in chosen:
            log("overload against a bounded upstream")
            results["overload"] = overload.run(harness)
        if "soak" in chosen:
            log(f"soak ({soak_minutes:g} minutes)")
            results["soak"] = soak.run(harness, soak_minutes)
        if "shutdown" in chosen:  # last: it stops the second gateway process
            log("graceful shutdown")
            results["shutdown"] = shutdown.run(harness)
    finally:
        harness.stop(keep_logs=ROOT / "var" / "chaos-logs")
    results["seconds"] = round(time.time() - started)
    results["figures"] = figures(results, p)
    return results


def figures(r: dict, p: dict) -> list[dict]:
    out: list[dict] = []
    if "billing" in r:
        b = r["billing"]
        out += [
            figure("billing", "requests (half streamed) under faults", b["requests"], f"≥ {p['billing']:,}", b["requests"] >= p["billing"]),
            figure("billing", "upstream attempts in the emulators' ledger", b["ledger_entries"], "", None),
            figure("billing", "gateway workers killed (kill -9, mid-stream)", b["worker_kills"], f"{p['worker_kills']}",
                   b["worker_kills"] == p["worker_kills"]),
            figure("billing", "usage writers killed (kill -9)", b["writer_kills"], f"{p['writer_kills']}", b["writer_kills"] == p["writer_kills"]),
            figure("billing", "Redis restarts (kill -9) / PostgreSQL restarts (-m immediate)", "1 / 1", "1 / 1",
                   sum(e["event"].startswith(("Redis", "PostgreSQL")) for e in b["events"]) == 2),
            figure("billing", "lost (ledger entry without a usage row)", b["lost"], "0", b["lost"] == 0),
            figure("billing", "duplicated (two rows for one request id and attempt)", b["duplicated"], "0", b["duplicated"] == 0),
            figure("billing", "rows not marked estimated whose tokens differ from the ledger", b["mismatched"], "0", b["mismatched"] == 0),
            figure("billing", "answered 200 but not billed", b["unbilled"], "0", b["unbilled"] == 0),
            figure("billing", "rows marked estimated (interrupted, cut, no usage, worker_lost)", b["estimated_rows"], "", None),
            figure("billing", "HTTP 500", b["http_500"], "0", b["http_500"] == 0),
            figure("billing", "worker deaths not caused by the battery", b["worker_deaths"], "0", b["worker_deaths"] == 0),
            figure("billing", "seconds until the usage pipeline drained", b["drain_seconds"], "", None),
        ]
    if "fallback" in r:
        fb = r["fallback"]
        out += [
            figure("fallback", "served while the primary fails before the first byte (500, 503, reset, hang)",
                   f"{fb['served_share']:.1%} of {fb['requests']}", "100%", fb["requests"] > 0 and fb["served"] == fb["requests"]),
            figure("fallback", "streams cut after the first byte (cut, malformed chunk)", fb["cut_streams"], "", None),
            figure("fallback", "silent truncations (a cut stream without an error event)", fb["silent_truncations"], "0",
                   fb["cut_streams"] > 0 and fb["silent_truncations"] == 0),
        ]
    if "hostile" in r:
        h = r["hostile"]
        out += [
            figure("hostile", "hand-made hostile requests", h["requests"], "≥ 300", h["requests"] >= 300),
            figure("hostile", "categories", h["categories"], "≥ 30", h["categories"] >= 30),
            figure("hostile", "HTTP 500", h["http_500"], "0", h["http_500"] == 0),
            figure("hostile", "HTTP 502/503/504 (no fault injected)", h["unexpected_5xx"], "0", h["unexpected_5xx"] == 0),
            figure("hostile", "complete requests without an answer within 30 s", h["hung"], "0", h["hung"] == 0),
            figure("hostile", "slowest answer (s; the slow-body variants take ~11 s by design)", h["slowest_s"], "≤ 30", h["slowest_s"] <= 30),
        ]
    if "schema" in r:
        s = r["schema"]
        out += [
            figure("schema", "schema-generated requests", s["requests"], f"≥ {5000 if p is FULL else 500:,}",
                   s["requests"] >= (5000 if p is FULL else 500)),
            figure("schema", "share that reached routing and an emulator (2xx)", f"{s['reached_share']:.0%} ({s['reached_provider']:,})",
                   "≥ 30%" if p is FULL else "reported", s["reached_share"] >= 0.3 if p is FULL else None),
            figure("schema", "HTTP 500", s["http_500"], "0", s["http_500"] == 0),
            figure("schema", "HTTP 5xx (no fault injected)", s["http_5xx"], "0", s["http_5xx"] == 0),
        ]
    if "hostile_worker_deaths" in r:
        out += [
            figure("fallback+hostile+schema", "worker deaths", r["hostile_worker_deaths"], "0", r["hostile_worker_deaths"] == 0),
        ]
    if "limits" in r:
        li = r["limits"]
        out += [
            figure("limits", f"trials of {li['burst']} simultaneous requests vs rpm={li['rpm']}, {li['gateways']} gateway processes",
                   li["trials"], f"{p['trials']}", li["trials"] == p["trials"]),
            figure("limits", "over-admitted requests", li["over_admitted"], "0", li["over_admitted"] == 0),
            figure("limits", "trials that admitted fewer than the limit", li["under_admitted_trials"], "0", li["under_admitted_trials"] == 0),
            figure("limits", f"budget burst: spend over the {li['budget_roubles']} ₽ budget", li["budget_overshoot"], "0",
                   not li["budget_overshot"]),
        ]
    if "outages" in r:
        o = r["outages"]
        fr, pg, rw = o["redis_frozen"], o["postgres_down"], o["worker_restarted_while_down"]
        out += [
            figure("outages", "Redis frozen 5 s (SIGSTOP): slowest request (s)", fr["max_latency_s"],
                   f"≤ {outages.REDIS_BOUND:g}", fr["max_latency_s"] <= outages.REDIS_BOUND),
            figure("outages", "Redis frozen 5 s: answered 200 (limiter fails open)", f"{fr['ok']} of {fr['requests']}",
                   "all", fr["requests"] > 0 and fr["ok"] == fr["requests"]),
            figure("outages", "PostgreSQL down 10 s: /v1 answered 200 from the last good configuration",
                   f"{pg['ok']} of {pg['requests']}", "all", pg["requests"] > 0 and pg["ok"] == pg["requests"]),
            figure("outages", "PostgreSQL down: slowest request (s)", pg["max_latency_s"], "≤ 1", pg["max_latency_s"] <= 1),
            figure("outages", "a worker started while PostgreSQL was down: answers meanwhile",
                   rw["while_down"]["statuses"], "503 + Retry-After, no 500", "500" not in rw["while_down"]["statuses"]),
            figure("outages", "recovery after PostgreSQL returned, without a restart (s)", rw["recovery_s"], "≤ 10",
                   rw["recovery_s"] is not None and rw["recovery_s"] <= 10),
        ]
    if "isolation" in r:
        iso = r["isolation"]
        so, no = iso["solo"], iso["noisy"]
        held = min(run["held_streams"] for run in iso["noisy_runs"])
        offered = min(run["offered_per_s"] for run in iso["noisy_runs"])
        out += [
            figure("isolation", f"noisy tenant ({iso['noisy_rate']} key): offered requests/s, streams held unread",
                   f"{offered:g}/s, {held}", "≥ 450/s, 200", offered >= 0.9 * iso["offered_per_s"] and held >= 200),
            figure("isolation", "quiet tenant: requests solo / during the noise", f"{so['requests']} / {no['requests']}", "", None),
            figure("isolation", "quiet tenant: extra errors during the noise", iso["extra_errors"], "0",
                   iso["extra_errors"] == 0 and no["requests"] > 0),
            figure("isolation", f"quiet tenant: gateway-added p99 (ms; round trip − {iso['upstream_delay_ms']:g} ms upstream), solo → noisy",
                   f"{so['added_p99_ms']} → {no['added_p99_ms']}", f"≤ {iso['allowed_p99_ms']}",
                   no["added_p99_ms"] is not None and iso["allowed_p99_ms"] is not None and no["added_p99_ms"] <= iso["allowed_p99_ms"]),
            figure("isolation", "quiet tenant: gateway-added p50 (ms), solo → noisy", f"{so['added_p50_ms']} → {no['added_p50_ms']}", "", None),
            figure("isolation", "quiet tenant while the 200 streams open and the emulators catch up: p50 / p99 (ms), errors",
                   f"{iso['opening']['added_p50_ms']} / {iso['opening']['added_p99_ms']}, {iso['opening']['errors']}"
                   if iso.get("opening") else "n/a", "", None),
            figure("isolation", "CPU busy (s/s, whole machine) solo → noisy; of which the gateway process",
                   f"{iso['cpu_per_s']['solo']['machine']} → {iso['cpu_per_s']['noisy']['machine']}; "
                   f"{iso['cpu_per_s']['solo']['gateway']} → {iso['cpu_per_s']['noisy']['gateway']}", "", None),
        ]
    if "overload" in r:
        ov = r["overload"]
        cap, over = ov["at_capacity"], ov["overload"]
        out += [
            figure("overload", f"at capacity ({ov['bounded']} rps, {ov['bounded']} × {ov['upstream_s']:g} s upstream): admitted, p99 (s)",
                   f"{cap['admitted']} of {cap['requests']}, {cap['admitted_p99_s']}", "", None),
            figure("overload", "at 100 rps: admitted / refused", f"{over['admitted']} / {over['refused']} {over['statuses']}", "", None),
            figure("overload", f"refusals as 429/503 + Retry-After within the wait + 50 ms ({ov['wait_s'] + 0.05:g} s)",
                   f"{over['refusals_in_bound_share']:.1%} (slowest {over['refusal_max_s']} s)" if over["refused"] else "no refusals",
                   "≥ 95%", over["refused"] > 0 and over["refusals_in_bound_share"] >= 0.95),
            figure("overload", "admitted requests' p99 at 100 rps (s)", over["admitted_p99_s"],
                   f"≤ {ov['admitted_p99_allowed_s']} (at-capacity p99 + the wait)",
                   over["admitted_p99_s"] is not None and ov["admitted_p99_allowed_s"] is not None
                   and over["admitted_p99_s"] <= ov["admitted_p99_allowed_s"]),
        ]
    if "soak" in r:
        so = r["soak"]
        errors = {k: v for k, v in so["statuses"].items() if k != "200"}
        out += [
            figure("soak", f"{so['minutes']:g} minutes at {so['rate']:g} requests/s (half streamed): requests, not 200",
                   f"{so['requests']}, {sum(errors.values())} {errors or ''}".strip(), "", None),
            figure("soak", f"summed RSS of {so['processes']} gateway processes: minutes 4–5 → last minute (MiB)"
                   if so["minutes"] >= 6 else f"summed RSS of {so['processes']} gateway processes: s {so['reference_window_s']} → last minute (MiB)",
                   f"{so['reference_rss_mib']} → {so['last_minute_rss_mib']} ({so['growth']:+.1%})" if so["growth"] is not None else "no samples",
                   "growth < 10%", so["growth"] is not None and so["growth"] < 0.10),
        ]
    if "shutdown" in r:
        sd = r["shutdown"]
        total = 3 * sd["per_kind"]
        out += [
            figure("shutdown", f"open at SIGTERM ({sd['per_kind']} SSE streams, {sd['per_kind']} slow requests, {sd['per_kind']} WebSocket streams)",
                   sd["open_at_signal"], f"{total}", sd["open_at_signal"] == total),
            figure("shutdown", "completed normally / cut", f"{sd['completed']} / {sd['cut']}", f"{total} / 0",
                   sd["completed"] == total and sd["cut"] == 0),
            figure("shutdown", "requests with exactly one usage row", f"{sd['requests_with_one_row']} of {sd['request_ids']} "
                   f"({sd['usage_rows']} rows)", f"{total} of {total}",
                   sd["request_ids"] == total and sd["requests_with_one_row"] == total and sd["usage_rows"] == total),
            figure("shutdown", f"seconds from SIGTERM to the process's exit (grace {sd['grace_s']:g} s)", sd["exit_s"],
                   "≤ grace + 15, exit code 0", sd["exit_code"] == 0 and sd["exit_s"] <= sd["grace_s"] + 15),
        ]
    return out


def write(results: dict, out: Path) -> tuple[Path, Path]:
    only = results.get("only")
    stem = "chaos-quick" if results["quick"] else "chaos"
    if only:  # a partial run never overwrites the full report
        stem += "-only-" + "-".join(only)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(results, indent=1, ensure_ascii=False, default=str))
    failed = sum(f["verdict"] == "FAIL" for f in results["figures"])
    command = "python -m bench.chaos --quick" if results["quick"] else "make chaos"
    if only:
        command = "python -m bench.chaos" + (" --quick" if results["quick"] else "") + " --only " + " ".join(only)
    lines = [f"# Reliability battery{' (quick subset)' if results['quick'] else ''}", "",
             f"`{command}`, {results['started']}, "
             f"{results['seconds']} s, {results['machine']}. **{'PASS' if not failed else f'FAIL ({failed})'}**", "",
             "| Section | Figure | Value | Target | Verdict |", "|---|---|---|---|---|"]
    lines += [f"| {f['section']} | {f['name']} | {f['value']} | {f['target']} | {f['verdict']} |" for f in results["figures"]]
    if "billing" in results:
        b = results["billing"]
        lines += ["", "## Billing details", "", f"- client statuses: {b['statuses']}", f"- refusals by error code: {b['refusals']}", f"- stream endings: {b['stream_endings']}",
                  f"- usage rows by status: {b['row_statuses']}",
                  "- chaos events: " + "; ".join(f"{e['event']} at request {e['at_request']} ({e['streams_open']} streams open)"
                                                 for e in b["events"])]
    if "schema" in results:
        lines += ["", "## Schema-generated requests", "", f"- by area: {results['schema']['by_area']}"]
        lines += [f"- pass `{p['name']}`: {p['requests']} requests; stateful: {p['stateful_scenarios'] or 'n/a'}; {p['summary']}"
                  for p in results["schema"]["passes"]]
    if "hostile" in results:
        lines += ["", "## Hand-made hostile requests by category", "",
                  *(f"- {name}: {counts}" for name, counts in results["hostile"]["by_category"].items())]
    lines += details(results)
    lines += ["", "## Not measured yet", "", *(f"- {item}" for item in not_measured(results)), ""]
    (out / f"{stem}.md").write_text("\n".join(lines))
    return out / f"{stem}.md", out / f"{stem}.json"


def details(r: dict) -> list[str]:
    """The new scenarios' details under the table."""
    lines = []
    if "isolation" in r:
        iso = r["isolation"]
        lines += ["", "## Isolation details", "",
                  f"- quiet tenant solo: {iso['solo']}", f"- quiet tenant during the noise: {iso['noisy']}",
                  f"- CPU seconds per second by role: {iso['cpu_per_s']}",
                  *(f"- noisy run {i + 1}: {run}" for i, run in enumerate(iso["noisy_runs"]))]
    if "overload" in r:
        ov = r["overload"]
        lines += ["", "## Overload details", "", f"- at capacity: {ov['at_capacity']}", f"- at 100 rps: {ov['overload']}"]
    if "soak" in r:
        so = r["soak"]
        lines += ["", "## Soak details", "", f"- statuses: {so['statuses']}",
                  "- summed RSS (s from start → MiB), one sample a minute: "
                  + ", ".join(f"{t}→{m}" for t, m in so["samples_mib"][::12])]
    if "shutdown" in r:
        sd = r["shutdown"]
        lines += ["", "## Graceful shutdown details", "", f"- endings: {sd['endings']}",
                  f"- all answered {sd['answered_s']} s after SIGTERM; process exited with {sd['exit_code']} after {sd['exit_s']} s"]
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos")
    parser.add_argument("--quick", action="store_true", help="the CI subset (counts only)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios (report: chaos-only-….md)")
    parser.add_argument("--soak-minutes", type=float, default=SOAK_MINUTES, help="the soak's duration (default 15)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    args = parser.parse_args(argv)
    results = run(args.quick, args.only, args.soak_minutes)
    md, _ = write(results, Path(args.out))
    for f in results["figures"]:
        print(f"{f['verdict']:<8} {f['section']:<14} {f['name']}: {f['value']} (target {f['target'] or '-'})")
    for item in not_measured(results):
        print(f"{'n/a':<8} {'not measured':<14} {item}")
    print(f"written: {md}")
    return 1 if any(f["verdict"] == "FAIL" for f in results["figures"]) else 0


if __name__ == "__main__":
    sys.exit(main())
