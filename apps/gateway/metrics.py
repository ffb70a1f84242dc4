"""Prometheus series for the /v1 path (scraped at /metrics with Django's own)."""

from prometheus_client import Counter, Histogram

REQUESTS = Counter("xrouter_requests_total", "Gateway requests", ["endpoint", "provider", "status"])
LATENCY = Histogram(
    "xrouter_request_seconds",
    "Gateway request latency (whole stream for streams)",
    ["endpoint"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)
UPSTREAM_ERRORS = Counter("xrouter_upstream_errors_total", "Failed upstream attempts", ["provider", "kind"])
STREAM_REVISIONS = Counter(
    "xrouter_stream_revisions_total", "Cumulative streams whose provider rewrote already-sent text", ["provider"]
)
STREAMS_CANCELLED = Counter("xrouter_streams_cancelled_total", "Streams ended by the client disconnecting", ["provider"])
