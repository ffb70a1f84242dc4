"""Prometheus series recorded below the gateway (routing, providers, limits), and the process-wide
setup: multiprocess mode and the /metrics payload.

Several worker processes serve one port, so each keeps its series in memory-mapped files under
PROMETHEUS_MULTIPROC_DIR (xrouter_project/server.py makes the directory before the workers start)
and /metrics sums every process's files — prometheus_client's multiprocess mode. A gauge states how
processes combine (`multiprocess_mode`). Without the directory (a test's in-process server) the
process's own registry is read. The gateway's own series live in apps/gateway/metrics.py, the usage
path's in apps/usage/metrics.py. Labels are bounded: providers, models and rules come from the
configuration, never from a request.
"""

import os

from prometheus_client import Counter

from .processes import alive

# Routing (apps/routing): what the router did with a request beyond its first target.
FALLBACKS = Counter("xrouter_fallbacks_total", "Requests moved to another target after a failure",
                    ["provider", "failure"])
RETRIES = Counter("xrouter_retries_total", "Attempts repeated on the same target", ["provider"])
# Providers (apps/providers): token refreshes against their auth endpoints, and what the health task saw.
TOKEN_REFRESHES = Counter("xrouter_provider_token_refreshes_total", "Provider access-token fetches",
                          ["provider", "result"])
# Limits (apps/limits): requests refused before the provider was called.
LIMIT_REFUSALS = Counter("xrouter_limit_refusals_total", "Requests refused by a limit or budget",
                         ["scope", "limit"])


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def registry():
    """What /metrics reads: every process's series (multiprocess mode) or this process's, plus the
    collectors that read shared state at scrape time (registered on the default registry)."""
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    directory = multiprocess_dir()
    if directory is None:
        return REGISTRY
    merged = CollectorRegistry()
    multiprocess.MultiProcessCollector(merged, path=directory)
    for collector in SHARED_COLLECTORS:
        merged.register(collector)
    return merged


SHARED_COLLECTORS: list = []  # collectors whose values are the cluster's, not a process's (read at scrape)


def register_shared(collector) -> None:
    """A collector that reads state every process shares (the bus, Redis) at scrape time."""
    from prometheus_client import REGISTRY

    SHARED_COLLECTORS.append(collector)
    if multiprocess_dir() is None:
        REGISTRY.register(collector)


def forget_dead_processes() -> None:
    """Drop the live-gauge files of workers that died (uvicorn restarts them with new pids), so an
    in-flight gauge does not keep a dead worker's last value. Called by each worker as it starts."""
    directory = multiprocess_dir()
    if directory is None:
        return
    from prometheus_client import multiprocess

    for name in os.listdir(directory):
        if not name.startswith("gauge_live"):
            continue
        try:
            pid = int(name.rsplit("_", 1)[1].split(".", 1)[0])
        except ValueError:
            continue
        if not alive(pid):
            multiprocess.mark_process_dead(pid, directory)
