"""The results table: each figure beside its target from issue 4 and the peers' figures."""

# (key, label, unit, comparison, target, peers) — peers are LiteLLM / Portkey as measured in issue 4.
TARGETS = {
    "cpu_ms_per_request": ("<=", 0.8, "10.5 / 0.95"),
    "oauth_cpu_ms_per_request": ("<=", 0.8, ""),
    "added_p50_ms": ("<=", 1.0, "11.6 / 0.7"),
    "rps_64": (">=", 2000, "~180 / ~1,200"),
    "cpu_ms_per_chunk": ("<=", 0.1, "0.7 / –"),
    "added_ttft_p50_ms": ("<=", 5.0, ""),
    "hold_wall_ratio": ("<=", 1.1, "4.5 / 1.07"),
    "hold_errors": ("==", 0, ""),
    "slow_errors": ("==", 0, ""),
    "rss_idle_mib": ("<=", 300, "~1,024 / ~200"),
    "rss_per_stream_kib": ("<=", 50, ""),
    "ws_errors": ("==", 0, ""),
    "rss_per_socket_kib": ("<=", 50, ""),
    "usage_rows_ok": ("==", True, ""),
    "limits_cost_ms": ("<=", 0.15, ""),
    "statement_p95_s": ("<=", 1.0, ""),
    "dashboard_p95_s": ("<=", 1.0, ""),
    "console_p95_s": ("<=", 1.0, ""),
}


def check(key, value):
    """True / False against the target, None when there is no target or no value."""
    if key not in TARGETS or value is None:
        return None
    op, target, _ = TARGETS[key]
    if op == "<=":
        return value <= target
    if op == ">=":
        return value >= target
    return value == target


def _fmt(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _mark(ok):
    return {True: "✅ pass", False: "❌ FAIL", None: ""}[ok]


def _target_text(key):
    if key not in TARGETS:
        return ""
    op, target, _ = TARGETS[key]
    if isinstance(target, bool):
        return "yes"
    sym = {"<=": "≤", ">=": "≥", "==": "="}[op]
    return f"{sym} {_fmt(target)}"


def rows(r: dict) -> list[tuple]:
    """(measure, XRouter, direct/baseline, target, peers, mark) for the main table."""
    out = []

    def row(label, key, value, baseline="", digits=2, shown=None):
        peers = TARGETS.get(key, (None, None, ""))[2]
        out.append((label, shown if shown is not None else _fmt(value, digits), baseline, _target_text(key), peers,
                    _mark(check(key, value))))

    cpu = r.get("cpu") or {}
    if cpu:
        row(f"CPU per non-streamed request, ms (= CPU s per 1,000 requests; {cpu['requests']:,} requests at "
            f"{cpu['connections']} clients, all {cpu['processes']} gateway processes)",
            "cpu_ms_per_request", cpu.get("gateway_ms_per_request"), f"mock: {_fmt(cpu.get('mock_ms_per_request'), 3)}",
            digits=3)
    limited = r.get("limited_cpu") or {}
    if limited:
        extra = (limited.get("gateway_ms_per_request") or 0) - (cpu.get("gateway_ms_per_request") or 0)
        row(f"… the same with a rate-limited key (requests, tokens, concurrency; {limited['requests']:,} requests, "
            f"{limited['errors']} errors); redis-server {_fmt(limited.get('redis_ms_per_request'), 3)} ms/request",
            "limited_cpu_ms_per_request", limited.get("gateway_ms_per_request"),
            f"limits: +{_fmt(extra, 3)} gateway", digits=3)
    unlimited = r.get("unlimited_cpu") or {}
    if unlimited:
        total = lambda run: (run.get("gateway_ms_per_request") or 0) + (run.get("redis_ms_per_request") or 0)  # noqa: E731
        row(f"… the same with a key and model without limits or budget ({unlimited['requests']:,} requests, "
            f"{unlimited['errors']} errors): the limits' and budget's cost, redis-server's CPU included, is "
            f"+{_fmt(total(cpu) - total(unlimited), 3)} ms (target ≤ +0.15)",
            "unlimited_cpu_ms_per_request", unlimited.get("gateway_ms_per_request"),
            f"redis-server {_fmt(cpu.get('redis_ms_per_request'), 3)} vs {_fmt(unlimited.get('redis_ms_per_request'), 3)}",
            digits=3)
    oauth = r.get("oauth_cpu") or {}
    if oauth:
        row(f"… the same with an OAuth access token instead of the key ({oauth['requests']:,} requests, "
            f"{oauth['errors']} errors)", "oauth_cpu_ms_per_request", oauth.get("gateway_ms_per_request"),
            f"mock: {_fmt(oauth.get('mock_ms_per_request'), 3)}", digits=3)
    for c, run in sorted((r.get("rps") or {}).items(), key=lambda kv: int(kv[0])):
        g, d = run.get("gateway") or {}, run.get("direct") or {}
        key = "rps_64" if int(c) == 64 else f"rps_{c}"
        errs = (g.get("errors") or 0)
        label = f"Requests/s at {c} client{'s' if int(c) > 1 else ''}" + (f" ({errs} errors)" if errs else "")
        row(label, key, g.get("rps"), _fmt(d.get("rps")))
    lat = r.get("latency") or {}
    if lat:
        row(f"Added latency p50 at 1 client, ms (gateway {_fmt(lat.get('gateway_p50_ms'), 3)})", "added_p50_ms",
            lat.get("added_p50_ms"), _fmt(lat.get("direct_p50_ms"), 3), digits=3)
        row(f"Added latency p99 at 1 client, ms (gateway {_fmt(lat.get('gateway_p99_ms'), 3)})", "added_p99_ms",
            lat.get("added_p99_ms"), _fmt(lat.get("direct_p99_ms"), 3), digits=3)
    ttft = r.get("ttft") or {}
    if ttft:
        n = ttft.get("streams")
        row(f"Added time-to-first-token p50 at {n} concurrent streams, ms", "added_ttft_p50_ms",
            ttft.get("added_p50_ms"), _fmt(ttft.get("direct_p50_ms"), 3), digits=3)
        row(f"Added time-to-first-token p99 at {n} concurrent streams, ms", "added_ttft_p99_ms",
            ttft.get("added_p99_ms"), _fmt(ttft.get("direct_p99_ms"), 3), digits=3)
    chunk = r.get("chunk") or {}
    if chunk:
        row(f"CPU per relayed stream chunk, ms ({chunk['chunks']:,} chunks)", "cpu_ms_per_chunk",
            chunk.get("gateway_ms_per_chunk"), f"mock: {_fmt(chunk.get('mock_ms_per_chunk'), 4)}", digits=4)
        floor = chunk.get("floor") or {}
        if floor.get("ms_per_chunk") is not None:
            row(f"… the same streams through a bare pass-through (uvicorn + aiohttp copying bytes, same workers; "
                f"{floor['chunks']:,} chunks, {floor['errors']} errors): CPU per chunk, ms", "chunk_floor",
                None, _fmt(floor["ms_per_chunk"], 4), shown="")
        if chunk.get("marginal_ms_per_chunk") is not None:
            short = chunk["short_run"]
            row(f"… split by a second run of {short['streams']:,} shorter streams: fixed CPU per stream, ms / "
                f"marginal CPU per chunk, ms", "chunk_split", None, "",
                shown=f"{_fmt(chunk['fixed_ms_per_stream'], 3)} / {_fmt(chunk['marginal_ms_per_chunk'], 4)}")
    for name, key_prefix in (("hold", "hold"), ("slow", "slow")):
        h = r.get(name) or {}
        g, d = h.get("gateway") or {}, h.get("direct") or {}
        if not g:
            continue
        shape = f"{h['streams']:,} streams × {h['chunks']} chunks at {h['interval_ms']} ms"
        row(f"{shape}: completed / errors", f"{key_prefix}_errors", g.get("errors"),
            f"{_fmt(d.get('completed'))} / {_fmt(d.get('errors'))}" if d else "",
            shown=f"{_fmt(g.get('completed'))} / {_fmt(g.get('errors'))}")
        if name == "hold":
            row(f"{shape}: total time ÷ upstream pace ({h['pace_s']:.0f} s)", "hold_wall_ratio", h.get("wall_ratio"),
                _fmt(h.get("direct_wall_ratio"), 3), digits=3)
        else:
            row(f"{shape}: slowest stream ÷ pace ({h['pace_s']:.0f} s; starts spread over {h['ramp_s']:g} s)",
                "slow_max_ratio", h.get("max_ratio"), _fmt(h.get("direct_max_ratio"), 3), digits=3)
            row(f"{shape}: streams open at once, receiving (connected)", "slow_open", None,
                f"{_fmt(d.get('max_streaming'))} ({_fmt(d.get('max_open'))})" if d else "",
                shown=f"{_fmt(g.get('max_streaming'))} ({_fmt(g.get('max_open'))})")
        row(f"{shape}: time-to-first-token p50 / p99, ms", f"{key_prefix}_ttft", None,
            f"{_fmt(d.get('ttft_ms_p50'), 1)} / {_fmt(d.get('ttft_ms_p99'), 1)}" if d else "",
            shown=f"{_fmt(g.get('ttft_ms_p50'), 1)} / {_fmt(g.get('ttft_ms_p99'), 1)}")
        if h.get("gateway_ms_per_chunk") is not None:
            row(f"{shape}: CPU per relayed chunk, ms", f"{key_prefix}_chunk", h.get("gateway_ms_per_chunk"), "", digits=4)
    mem = r.get("memory") or {}
    if mem:
        row(f"Resident memory at idle, MiB (all {mem.get('processes')} gateway processes)", "rss_idle_mib",
            mem.get("idle_mib"), f"mock: {_fmt(mem.get('mock_idle_mib'), 1)}", digits=1)
        row("Proportional set size (PSS) at idle, MiB (shared pages counted once)", "pss_idle_mib",
            mem.get("idle_pss_mib"), "", digits=1)
        if mem.get("peak_mib") is not None:
            row(f"Resident memory at peak (during the {mem.get('peak_streams', 0):,}-stream hold), MiB", "rss_peak_mib",
                mem.get("peak_mib"), "", digits=1)
            row("Resident memory per open stream, KiB ((peak − idle) ÷ streams)", "rss_per_stream_kib",
                mem.get("per_stream_kib"), "", digits=1)
    ws = r.get("websockets") or {}
    if ws:
        shape = f"{ws['sockets']:,} WebSockets (/v1/realtime/chat), one streamed answer each"
        row(f"{shape}: completed / errors", "ws_errors", ws.get("errors"),
            shown=f"{_fmt(ws.get('completed'))} / {_fmt(ws.get('errors'))}")
        row(f"{shape}: resident memory per open socket, KiB ((peak − before) ÷ {_fmt(ws.get('max_open'))} open)",
            "rss_per_socket_kib", ws.get("per_socket_kib"), digits=1)
    usage = r.get("usage") or {}
    if usage:
        row(f"Usage rows in PostgreSQL = requests the gateway forwarded ({_fmt(usage.get('rows'))} / "
            f"{_fmt(usage.get('forwarded'))}, tolerance {usage.get('tolerance')})", "usage_rows_ok", usage.get("ok"))
    reports = r.get("reports") or {}
    if reports:
        shape = (f"over {_fmt((reports.get('rows') or {}).get('rows'))} usage rows, an organisation holding "
                 f"{_fmt(reports.get('org_rows'))}; cold, p95 of 5 runs")
        row(f"Monthly statement ({reports.get('month')}: {_fmt(reports.get('month_rows'))} rows) {shape}, s",
            "statement_p95_s", (reports.get("statement") or {}).get("p95_s"), digits=3)
        row(f"30-day dashboard (by day, model, key, provider) {shape}, s", "dashboard_p95_s",
            (reports.get("dashboard") or {}).get("p95_s"), digits=3)
        row(f"Admin overview (last hour, today, 7 days, top keys and organisations) {shape}, s", "console_p95_s",
            (reports.get("console") or {}).get("p95_s"), digits=3)
    return out


def markdown(r: dict) -> str:
    m = r["machine"]
    lines = [
        "# XRouter benchmark",
        "",
        f"`{r['command']}` — {m['date']}, {m['nproc']} cores ({m['cpu_model']}), {m['mem_gib']:.0f} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}, {m['wrk']}, commit {m['commit']}.",
        "",
        f"Gateway: `manage.py serve --workers {r['settings']['workers']}` (uvicorn, uvloop, httptools) with PostgreSQL "
        f"and Redis, the usage writer as its child; key in the database, usage through buffer → Redis stream → "
        f"writer → PostgreSQL, alias `bench-model`{' and one routing rule' if r['settings'].get('rule') else ''}. "
        f"Upstream: `bench/mock_upstream.py` on the same machine; \"direct\" is the same load sent to the mock "
        f"itself, in the same sitting. Load: `wrk` and `bench/streamclient.py`, sharing the cores.",
        "",
        "| Measure | XRouter | Direct / baseline | Target | LiteLLM / Portkey | |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for label, value, base, target, peers, mark in rows(r):
        lines.append(f"| {label} | {value} | {base} | {target} | {peers} | {mark} |")
    checks = [c for c in r.get("checks", []) if c["pass"] is not None]
    failed = [c["key"] for c in checks if not c["pass"]]
    lines += ["", f"Targets met: {len(checks) - len(failed)} of {len(checks)}"
              + (f" (missed: {', '.join(failed)})." if failed else ".")]
    cpu = r.get("cpu") or {}
    if cpu.get("by_role_ms_per_request"):
        parts = ", ".join(f"{role} {ms:.3f}" for role, ms in sorted(cpu["by_role_ms_per_request"].items(),
                                                                     key=lambda kv: -kv[1]))
        lines += ["", f"CPU per request in the CPU run, ms, by gateway process: {parts}. Outside the gateway "
                      f"processes: PostgreSQL {cpu.get('postgres_ms_per_request', 0):.3f}, Redis "
                      f"{cpu.get('redis_ms_per_request', 0):.3f}, the mock {cpu.get('mock_ms_per_request', 0):.3f}, "
                      f"wrk {cpu.get('load_tool_ms_per_request', 0):.3f}."]
    details = r.get("rps") or {}
    if details:
        lines += ["", "## Per-run detail", "",
                  "| wrk run | RPS | p50 ms | p99 ms | gateway CPU ms/req | mock CPU ms/req | errors | other load |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for c, run in sorted(details.items(), key=lambda kv: int(kv[0])):
            for side in ("gateway", "direct"):
                x = run.get(side)
                if not x:
                    continue
                lines.append(f"| {side}, {c} connections | {_fmt(x.get('rps'))} | {_fmt(x.get('p50_ms'), 3)} | "
                             f"{_fmt(x.get('p99_ms'), 3)} | {_fmt(x.get('gateway_cpu_ms_per_request'), 3)} | "
                             f"{_fmt(x.get('mock_cpu_ms_per_request'), 3)} | {x.get('errors', 0)} | "
                             f"{x.get('other_cpu_share', 0):.0%} |")
    procs = r.get("processes") or []
    if procs:
        lines += ["", "## Gateway processes (idle)", "", "| pid | role | RSS MiB | PSS MiB | open-files limit |",
                  "|---:|---|---:|---:|---:|"]
        for p in procs:
            lines.append(f"| {p['pid']} | {p['role']} | {p['rss_kib'] / 1024:.1f} | {p.get('pss_kib', 0) / 1024:.1f} | "
                         f"{p['nofile']} |")
    steps = (r.get("other_load") or {}).get("steps") or []
    if steps:
        lines += ["", "## CPU seconds by party in each measured step", "",
                  "Gateway = master, workers, usage writer. PostgreSQL = this database's backends. Redis = the whole "
                  "server. Load = wrk or the stream client (and this script). Other = the rest of the machine.", "",
                  "| step | wall s | gateway | mock | PostgreSQL | Redis | load | other |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for st in steps:
            lines.append(f"| {st.get('step', '')} | {st['elapsed_s']:.1f} | {st['gateway']:.2f} | {st['mock']:.2f} | "
                         f"{st['postgres']:.2f} | {st['redis']:.2f} | {st['load_tools']:.2f} | {st['other']:.2f} |")
    if r.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in r["notes"]]
    return "\n".join(lines) + "\n"


def _limits_cost(cpu: dict, other: dict | None):
    """CPU-ms per request that limits and budgets add, redis-server's included: the headline against the run
    with the other kind of key (without limits when the headline has them, with them otherwise)."""
    if not cpu or not other:
        return None
    total = lambda run: (run.get("gateway_ms_per_request") or 0) + (run.get("redis_ms_per_request") or 0)  # noqa: E731
    return abs(total(cpu) - total(other))


def checks(r: dict) -> list[dict]:
    """Every target with its measured value and verdict (for the JSON and the summary line)."""
    cpu, lat, ttft, chunk = r.get("cpu") or {}, r.get("latency") or {}, r.get("ttft") or {}, r.get("chunk") or {}
    hold, slow, mem, usage = r.get("hold") or {}, r.get("slow") or {}, r.get("memory") or {}, r.get("usage") or {}
    rps64 = ((r.get("rps") or {}).get("64") or {}).get("gateway") or {}
    values = {
        "cpu_ms_per_request": cpu.get("gateway_ms_per_request"),
        "oauth_cpu_ms_per_request": (r.get("oauth_cpu") or {}).get("gateway_ms_per_request"),
        "added_p50_ms": lat.get("added_p50_ms"),
        "rps_64": rps64.get("rps"),
        "cpu_ms_per_chunk": chunk.get("gateway_ms_per_chunk"),
        "added_ttft_p50_ms": ttft.get("added_p50_ms"),
        "hold_wall_ratio": hold.get("wall_ratio"),
        "hold_errors": (hold.get("gateway") or {}).get("errors"),
        "slow_errors": (slow.get("gateway") or {}).get("errors"),
        "rss_idle_mib": mem.get("idle_mib"),
        "rss_per_stream_kib": mem.get("per_stream_kib"),
        "usage_rows_ok": usage.get("ok"),
        "limits_cost_ms": _limits_cost(cpu, r.get("unlimited_cpu") or r.get("limited_cpu")),
        "statement_p95_s": ((r.get("reports") or {}).get("statement") or {}).get("p95_s"),
        "dashboard_p95_s": ((r.get("reports") or {}).get("dashboard") or {}).get("p95_s"),
        "console_p95_s": ((r.get("reports") or {}).get("console") or {}).get("p95_s"),
    }
    out = []
    for key, value in values.items():
        op, target, peers = TARGETS[key]
        out.append({"key": key, "value": value, "op": op, "target": target, "pass": check(key, value)})
    return out
