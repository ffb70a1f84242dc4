import sys

# redis-py (8.x) imports OpenTelemetry's metrics SDK whenever it is installed, for metrics of its own that
# XRouter never turns on (redis.observability); XRouter installs the SDK for tracing only (apps/common/
# tracing.py needs the trace half). Importing it costs every process that talks to Redis ≈ 7 MiB (measured
# with tracemalloc; README, "Performance"), so it is marked absent before anything imports redis: every
# process imports this package first. redis-py then runs as without the SDK (its OTEL_AVAILABLE is False).
sys.modules.setdefault("opentelemetry.sdk.metrics", None)
