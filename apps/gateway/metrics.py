"""Prometheus series for the /v1 path (scraped at /metrics; apps/common/metrics.py says how several
worker processes add up). Labels come from the configuration (providers, models, rules), never
from a request; a per-key label only with XROUTER_METRICS_PER_KEY=1."""

from django.conf import settings
from prometheus_client import Counter, Gauge, Histogram

SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
REQUESTS = Counter("xrouter_requests_total", "Gateway requests", ["endpoint", "provider", "model", "route", "status"])
REQUESTS_BY_KEY = (Counter("xrouter_key_requests_total", "Gateway requests by key prefix", ["key", "status"])
                   if settings.XROUTER["METRICS_PER_KEY"] else None)
LATENCY = Histogram("xrouter_request_seconds", "Gateway request latency (whole stream for streams)", ["endpoint"],
                    buckets=SECONDS)
TTFT = Histogram("xrouter_time_to_first_token_seconds", "Time to the first streamed token", ["provider"],
                 buckets=SECONDS)
# The gateway's own share of a request: total minus the provider's time (for a stream, up to its first token).
OVERHEAD = Histogram("xrouter_gateway_overhead_seconds", "Request time not spent waiting for the provider",
                     buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1))
TOKENS = Counter("xrouter_tokens_total", "Tokens billed", ["provider", "model", "direction"])
COST = Counter("xrouter_cost_roubles_total", "Spend in roubles (VAT as priced)", ["provider", "model"])
CACHE_HITS = Counter("xrouter_cache_hits_total", "Answers served from the response cache", ["endpoint"])
UPSTREAM_ERRORS = Counter("xrouter_upstream_errors_total", "Failed upstream attempts", ["provider", "kind"])
STREAM_REVISIONS = Counter(
    "xrouter_stream_revisions_total", "Cumulative streams whose provider rewrote already-sent text", ["provider"]
)
STREAMS_CANCELLED = Counter("xrouter_streams_cancelled_total", "Streams ended by the client disconnecting", ["provider"])
# Set once a second by each worker (apps/gateway/lifecycle.py), not per request; summed over live workers.
INFLIGHT = Gauge("xrouter_inflight_requests", "Requests being served", multiprocess_mode="livesum")
STREAMS_OPEN = Gauge("xrouter_open_streams", "Streamed answers being relayed", multiprocess_mode="livesum")

SAMPLE_INTERVAL = 1.0


async def run_sampler(inflight, streams) -> None:
    """Copy this worker's in-flight and open-stream counts into their gauges once a second (a gauge
    write per request would cost every request; a second's lag costs nobody)."""
    import asyncio

    while True:
        INFLIGHT.set(inflight())
        STREAMS_OPEN.set(streams())
        await asyncio.sleep(SAMPLE_INTERVAL)


async def metrics_endpoint(scope, receive, send) -> None:
    """GET /metrics: every worker's series in Prometheus's text format, for allowed scrapers only
    (XROUTER_METRICS_ALLOW, XROUTER_METRICS_TOKEN). Served beside /v1, not by Django: a scrape
    never waits for a Django thread."""
    import asyncio
    import hmac
    import ipaddress

    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    from apps.common.client_address import scope_client_address
    from apps.common.metrics import registry

    from .http import send_json

    xr = settings.XROUTER
    address = scope_client_address(scope)
    allowed = address is not None and any(address in ipaddress.ip_network(n) for n in xr["METRICS_ALLOW"])
    if not allowed and xr["METRICS_TOKEN"]:
        given = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        allowed = hmac.compare_digest(given, b"Bearer " + xr["METRICS_TOKEN"].encode())
    if not allowed:
        await send_json(send, 403, b'{"error":"metrics are served to XROUTER_METRICS_ALLOW or with XROUTER_METRICS_TOKEN"}')
        return
    body = await asyncio.to_thread(generate_latest, registry())  # reads every worker's files
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
