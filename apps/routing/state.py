"""Fast-moving routing state, per process so routing never waits on Redis: circuit breakers,
latency averages, in-flight counts, round-robin positions. What other processes must know —
a breaker opening, an active health result — is broadcast on the bus and applied here."""

import os
import time
from collections import deque
from dataclasses import dataclass, field

from apps.common import bus, metrics

FAILURE_THRESHOLD = int(os.environ.get("XROUTER_BREAKER_FAILURES", "5"))
ERROR_RATE = float(os.environ.get("XROUTER_BREAKER_ERROR_RATE", "0.5"))
WINDOW = int(os.environ.get("XROUTER_BREAKER_WINDOW", "20"))
COOLDOWN = float(os.environ.get("XROUTER_BREAKER_COOLDOWN", "30"))
LATENCY_ALPHA = 0.2  # weight of the newest sample in the moving average
# Bounds on what bus events may set here (apps/common/bus.py: signed, and still clamped).
MAX_COOLDOWN = 3600.0  # seconds a breaker or an unhealthy mark may last
MAX_TARGETS = 10_000  # breaker states this process keeps for targets it learns of from the bus
MAX_NAME = 300  # characters of a target ("provider/model") or provider name
MAX_BALANCE = 1e15  # tokens


@dataclass
class TargetState:
    consecutive_failures: int = 0
    recent: deque = field(default_factory=lambda: deque(maxlen=WINDOW))  # True = success
    open_until: float = 0.0  # monotonic; 0 = closed
    probing_since: float = 0.0  # half-open: one request is testing the target since then
    latency: float | None = None  # seconds, moving average
    in_flight: int = 0


_targets: dict[str, TargetState] = {}
_unhealthy_providers: dict[str, float] = {}  # provider → until (monotonic)
_round_robin: dict[str, int] = {}
_health: dict[str, bool] = {}  # provider → its last active check passed (for /metrics)
_balances: dict[str, dict[str, float]] = {}  # provider → prepaid tokens left by usage kind
# Breakers set by hand (apps/routing/models.ManualBreaker), target or provider → (open, until: wall-clock
# time or None). Replaced whole at each catalog load, so it follows the database in every process.
_forced: dict[str, tuple[bool, float | None]] = {}


def state(target: str) -> TargetState:
    st = _targets.get(target)
    if st is None:
        st = _targets[target] = TargetState()
    return st


def available(target: str, provider: str) -> bool:
    return not why_unavailable(target, provider)


def why_unavailable(target: str, provider: str) -> str:
    """"" when the target may be planned: closed, or open past its cooldown (half-open: one probe goes
    through); otherwise why not, in words (the rule tester shows it)."""
    if _forced:
        forced = forced_state(target, provider)
        if forced is not None:
            return "breaker opened by hand" if forced else ""
    until = _unhealthy_providers.get(provider)
    if until is not None and until > time.monotonic():
        return "provider failed its last health check"
    st = _targets.get(target)
    if st is None or not st.open_until:
        return ""
    now = time.monotonic()
    if now < st.open_until:
        return f"breaker open for {st.open_until - now:.0f} s more"
    # Half-open: available unless a probe is already out (planning reserves nothing).
    if st.probing_since and now - st.probing_since < COOLDOWN:
        return "breaker half-open, its probe request is out"
    return ""


def forced_state(target: str, provider: str) -> bool | None:
    """True: opened by hand, False: closed by hand, None: the automatic breaker decides."""
    forced = _forced.get(target) or _forced.get(provider)
    if forced is None or (forced[1] is not None and forced[1] <= time.time()):
        return None
    return forced[0]


def set_forced(forced: dict[str, tuple[bool, float | None]]) -> None:
    """The breakers set by hand, as the database holds them (each catalog load)."""
    global _forced
    _forced = dict(forced)


def reserve_probe(target: str) -> bool:
    """Just before calling a target: if its breaker is half-open, claim the one probe."""
    if _forced and forced_state(target, target.partition("/")[0]) is False:
        return True  # closed by hand: every request goes through
    st = _targets.get(target)
    if st is None or not st.open_until:
        return True
    now = time.monotonic()
    if now < st.open_until or (st.probing_since and now - st.probing_since < COOLDOWN):
        return False
    st.probing_since = now
    return True


def release_probe(target: str) -> None:
    """A half-open probe that said nothing about the target's health (a local wait, the client's
    own error or departure): let the next request probe instead of waiting out a cooldown."""
    st = _targets.get(target)
    if st is not None:
        st.probing_since = 0.0


def record_success(target: str, seconds: float) -> None:
    st = state(target)
    st.consecutive_failures = 0
    st.recent.append(True)
    st.open_until = 0.0
    st.probing_since = 0.0
    st.latency = seconds if st.latency is None else st.latency + LATENCY_ALPHA * (seconds - st.latency)


def record_failure(target: str) -> None:
    """A failure that is the provider's (failures.POLICY says which): it may open the breaker, here
    and, through the bus, in every process."""
    st = state(target)
    st.consecutive_failures += 1
    st.recent.append(False)
    failures = st.recent.count(False)
    rate_tripped = len(st.recent) >= WINDOW // 2 and failures / len(st.recent) >= ERROR_RATE
    if st.probing_since or st.consecutive_failures >= FAILURE_THRESHOLD or rate_tripped:
        open_breaker(target, COOLDOWN)
        bus.publish_nowait("breaker", {"target": target, "cooldown": COOLDOWN})


def open_breaker(target: str, cooldown: float) -> None:
    st = state(target)
    st.open_until = time.monotonic() + cooldown
    st.probing_since = 0.0


def next_round_robin(rule: str) -> int:
    position = _round_robin.get(rule, 0)
    _round_robin[rule] = position + 1
    return position


def _on_breaker(event: dict) -> None:
    target = event.get("target")
    if not isinstance(target, str) or not target or len(target) > MAX_NAME:
        return
    if target not in _targets and len(_targets) >= MAX_TARGETS:
        return  # more targets than any configuration has: not ours to remember
    open_breaker(target, bus.bounded(event.get("cooldown"), 0.0, MAX_COOLDOWN, COOLDOWN))


def _on_health(event: dict) -> None:
    provider = event.get("provider")
    if not provider or not isinstance(provider, str) or len(provider) > MAX_NAME:
        return
    if provider not in _health and len(_health) >= MAX_TARGETS:
        return
    _health[provider] = bool(event.get("ok"))
    balance = event.get("balance")
    if isinstance(balance, dict):
        _balances[provider] = {str(k)[:64]: bus.bounded(v, 0.0, MAX_BALANCE, 0.0)
                               for k, v in list(balance.items())[:50] if isinstance(v, int | float)}
    if event.get("ok"):
        _unhealthy_providers.pop(provider, None)
    else:
        _unhealthy_providers[provider] = time.monotonic() + bus.bounded(event.get("ttl"), 0.0, MAX_COOLDOWN, COOLDOWN)


def reset() -> None:
    """Forget everything (tests)."""
    _targets.clear()
    _unhealthy_providers.clear()
    _round_robin.clear()
    _health.clear()
    _balances.clear()
    set_forced({})


def breaker_view() -> dict[str, dict]:
    """This process's automatic breakers (target → open, seconds left, recent failures), for the console."""
    now = time.monotonic()
    return {target: {"open": st.open_until > now, "half_open": 0 < st.open_until <= now, "seconds_left": max(0.0, st.open_until - now),
                     "failures": st.recent.count(False), "samples": len(st.recent), "latency": st.latency}
            for target, st in list(_targets.items())}


def unhealthy_providers() -> set[str]:
    now = time.monotonic()
    return {p for p, until in list(_unhealthy_providers.items()) if until > now}


class _Collector:
    """Breakers, provider health and balances at /metrics. Every process holds the same state (the
    bus carries it), so the scraped process's own view is the cluster's: read at scrape, nothing
    on the request path."""

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        now = time.monotonic()
        breakers = GaugeMetricFamily("xrouter_breaker_open", "1 while a target's circuit breaker is open", labels=["target"])
        for target, st in list(_targets.items()):
            breakers.add_metric([target], 1.0 if st.open_until > now else 0.0)
        up = GaugeMetricFamily("xrouter_provider_up", "Whether the provider's last active health check passed",
                               labels=["provider"])
        for provider, ok in list(_health.items()):
            up.add_metric([provider], 1.0 if ok else 0.0)
        balance = GaugeMetricFamily("xrouter_provider_balance_tokens", "Prepaid tokens left (GigaChat /balance)",
                                    labels=["provider", "usage"])
        for provider, rows in list(_balances.items()):
            for usage, value in rows.items():
                balance.add_metric([provider, usage], value)
        yield from (breakers, up, balance)


metrics.register_shared(_Collector())


bus.subscribe("breaker", _on_breaker)
bus.subscribe("health", _on_health)
