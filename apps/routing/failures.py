"""What a failed upstream call means for routing: the one place that says what is retried, what
falls back and what opens a circuit breaker.

Adapters describe a failure (`ProviderError.kind`, `status`); `classify` turns it into a
FailureClass, and POLICY answers the three questions for each class. A class's value is the
name routing rules use in `fallback_on`.

Only failures that show the provider is unwell count for its breaker: its 5xx and 429, a
connection that failed, and silence while we were waiting to read. A local wait for a
concurrency slot (`capacity`), a client that reads slowly or leaves, a refused request (4xx),
a stream as long as its request asked for (past our byte bound), a content filter and a
rejected credential say nothing about the provider's health.
"""

from dataclasses import dataclass
from enum import StrEnum

from apps.providers.adapters.base import ProviderError


class FailureClass(StrEnum):
    SERVER = "5xx"
    RATE_LIMITED = "429"
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    CAPACITY = "capacity"  # no local concurrency slot came free in time: the provider was not called
    CONTENT_FILTER = "content_filter"
    AUTH = "auth"  # the provider refused our credential
    CLIENT = "client"  # the request itself was refused (4xx): the same request fails everywhere


@dataclass(frozen=True, slots=True)
class Policy:
    retry: bool  # try the same target again (within the rule's retries)
    fall_back: bool  # go on to the next target, when the rule's fallback_on names the class
    counts: bool  # a failure for the target's circuit breaker


POLICY: dict[FailureClass, Policy] = {
    FailureClass.SERVER: Policy(retry=True, fall_back=True, counts=True),
    FailureClass.RATE_LIMITED: Policy(retry=True, fall_back=True, counts=True),
    FailureClass.TIMEOUT: Policy(retry=True, fall_back=True, counts=True),
    FailureClass.CONNECTION: Policy(retry=True, fall_back=True, counts=True),
    # Waiting again for the same full slots would only spend the deadline.
    FailureClass.CAPACITY: Policy(retry=False, fall_back=True, counts=False),
    # The same prompt meets the same filter; another provider may answer it.
    FailureClass.CONTENT_FILTER: Policy(retry=False, fall_back=True, counts=False),
    # A wrong credential stays wrong until an operator fixes it.
    FailureClass.AUTH: Policy(retry=False, fall_back=True, counts=False),
    FailureClass.CLIENT: Policy(retry=False, fall_back=False, counts=False),
}

# What a rule's fallback_on may name (FailureClass values; `client` never falls back).
FALLBACK_NAMES = frozenset(c.value for c, p in POLICY.items() if p.fall_back)
DEFAULT_FALLBACK_ON = frozenset({FailureClass.SERVER, FailureClass.RATE_LIMITED, FailureClass.TIMEOUT,
                                 FailureClass.CONNECTION, FailureClass.CAPACITY})


def expand_fallback_on(names) -> frozenset:
    """A rule's fallback_on as the router reads it. `capacity` was part of `429` before it had a
    name of its own, so a rule that names `429` falls back on it too."""
    names = frozenset(names)
    return names | {FailureClass.CAPACITY} if FailureClass.RATE_LIMITED in names else names

_BY_KIND = {
    "timeout": FailureClass.TIMEOUT,
    "connection": FailureClass.CONNECTION,
    "empty_stream": FailureClass.CONNECTION,
    "stream_interrupted": FailureClass.CONNECTION,
    "truncated": FailureClass.CONNECTION,
    "rate_limited": FailureClass.RATE_LIMITED,
    "quota": FailureClass.RATE_LIMITED,  # the provider's own quota (GigaChat's 402), like OpenAI's insufficient_quota 429
    "concurrency": FailureClass.CAPACITY,
    "model_limit": FailureClass.CAPACITY,  # a fallback target's model limits refused it (apps.limits.admit_model)
    "content_filter": FailureClass.CONTENT_FILTER,
    "auth": FailureClass.AUTH,
    "client_slow": FailureClass.CLIENT,  # a stream's total timeout ran out while its client held the relay
    "too_large": FailureClass.CLIENT,  # a stream past XROUTER_MAX_STREAM_BYTES: as long as the request asked for
    "configuration": FailureClass.AUTH,  # our provider settings are incomplete: the operator's to fix
}


def classify(exc: ProviderError) -> FailureClass:
    """The failure class of a ProviderError: by its kind, else by the status the gateway answers."""
    klass = _BY_KIND.get(exc.kind)
    if klass is not None:
        return klass
    if exc.status == 429:
        return FailureClass.RATE_LIMITED
    if exc.status >= 500:
        return FailureClass.SERVER
    return FailureClass.CLIENT


def counts_for_breaker(exc: ProviderError) -> bool:
    return POLICY[classify(exc)].counts
