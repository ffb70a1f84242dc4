"""Prometheus series of the guardrail pipeline (multiprocess mode as everywhere: apps/common/metrics.py).
Labels are bounded: providers come from the configuration, stages from the code."""

from prometheus_client import Counter

UNRESTORED = Counter("xrouter_pd_unrestored_total",
                     "Placeholders that came back altered in an answer and were left as they are", ["provider"])
REFUSALS = Counter("xrouter_guardrail_refusals_total", "Requests refused by a guardrail stage", ["stage"])
