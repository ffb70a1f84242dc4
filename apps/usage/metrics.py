"""Prometheus series of the usage path (no Django here: the lean writer imports it)."""

from prometheus_client import Counter, Gauge
from prometheus_client.core import CounterMetricFamily

from apps.common.metrics import register_shared


class _ClusterTotal:
    """A counter the writers keep in Redis. The writer process has no /metrics, so a gateway reports the
    larger of its own count and the cluster-wide total (`read_cluster`, set by the gateway, reads it at
    each scrape)."""

    def __init__(self, name: str, documentation: str):
        self.name, self.documentation = name, documentation
        self.local = 0
        self.cluster = 0
        self.read_cluster = None

    def inc(self, n: int = 1) -> None:
        self.local += n

    def collect(self):
        if self.read_cluster is not None:
            try:
                self.cluster = int(self.read_cluster() or 0)
            except Exception:  # Redis away: report the last value read  # nosec B110 # a scrape must not fail
                pass
        family = CounterMetricFamily(self.name, self.documentation)
        family.add_metric([], max(self.local, self.cluster))
        yield family


DEAD_LETTER = _ClusterTotal("xrouter_usage_dead_letter", "Usage records moved to the dead letter")
register_shared(DEAD_LETTER)
UNSIGNED = _ClusterTotal("xrouter_usage_unsigned", "Usage stream entries refused for a missing or wrong signature "
                                                   "(moved to the dead letter, not billed)")
register_shared(UNSIGNED)
SPOOLED = Counter("xrouter_usage_spooled_batches_total", "Usage batches Redis could not take, spooled to disk")
BACKLOG = Gauge("xrouter_usage_backlog", "Usage not yet in the database, by where it waits (set by /readyz)", ["where"],
                multiprocess_mode="mostrecent")
