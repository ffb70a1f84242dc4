"""Fixtures for the routing tests: rules as committed data, a gateway that sees them, ledgers.

Rules are created with the ORM in the test process and committed, so server processes read
them. With Redis the edit reaches a running gateway through the bus; without it the routing
gateway here reloads its catalog every CONFIG_TTL seconds, so `rules.settle()` waits that long.
"""

import time
import uuid

import httpx
import pytest
from django.conf import settings

from tests.conftest import Gateway, start_gateway, stop_gateway

LOCAL_CONFIG_TTL = 0.1
EMULATOR_NAMES = ("gigachat", "yandexgpt", "mts", "tbank")
TOKEN_PATHS = ("/api/v2/oauth", "/iam/v1/tokens")


def key_prefix(plaintext: str) -> str:
    """`xr-<prefix>-<secret>` → prefix, what rules' match_keys name."""
    return plaintext.split("-")[1]


def gateway_env(**extra) -> dict:
    """The env of a gateway process of ours: its own usage stream, and a short config TTL
    without Redis (where nothing else tells a separate process about a rule edit)."""
    env = {"XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}"}
    if not settings.REDIS_URL:
        env["XROUTER_CONFIG_TTL"] = str(LOCAL_CONFIG_TTL)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def router_gateway(gateway):
    """A gateway process for the routing tests (the demo config and keys come from `gateway`).

    Its circuit breakers never open: breaker state is per process and outlives a test, so the
    failures one test injects would otherwise close a target for the next. The breaker has its
    own tests, on gateways of their own."""
    env = gateway_env(XROUTER_BREAKER_FAILURES="1000000", XROUTER_BREAKER_ERROR_RATE="2")
    process, base = start_gateway(env)
    yield Gateway(base, process, env, gateway.keys)
    stop_gateway(process)


@pytest.fixture
def spawn(gateway):
    """Start gateway processes of our own, with fresh per-process routing state (create the
    test's rules first when there is no Redis); stopped after the test."""
    started = []

    def start(**env_extra) -> Gateway:
        env = gateway_env(**env_extra)
        process, base = start_gateway(env)
        started.append(process)
        return Gateway(base, process, env, gateway.keys)

    yield start
    for process in started:
        stop_gateway(process)


_control = httpx.Client(timeout=10)  # one client: building one per call costs an SSL context


class Ledgers:
    """The emulators' request ledgers: what really reached each provider."""

    def __init__(self, emulators):
        self.emulators = emulators

    def clear(self, *names):
        for name in names or EMULATOR_NAMES:
            _control.delete(f"{self.emulators[name].control_url}/ledger").raise_for_status()

    def entries(self, name: str) -> list[dict]:
        r = _control.get(f"{self.emulators[name].control_url}/ledger")
        r.raise_for_status()
        return [e for e in r.json()["entries"] if e["path"] not in TOKEN_PATHS]

    def calls(self, name: str, model: str | None = None) -> int:
        """Generation calls (not token refreshes) that reached `name`, optionally for one model
        (YandexGPT sends a modelUri; the bare model name inside it counts)."""
        return sum(1 for e in self.entries(name) if model is None or e["model"] == model or f"/{model}/" in (e["model"] or ""))

    def snapshot(self) -> dict:
        return {name: len(self.entries(name)) for name in EMULATOR_NAMES}


class Faults:
    def __init__(self, emulators):
        self.emulators = emulators

    def __call__(self, name: str, **fault):
        _control.post(f"{self.emulators[name].control_url}/faults", json=fault).raise_for_status()

    def clear(self, *names):
        for name in names or EMULATOR_NAMES:
            _control.delete(f"{self.emulators[name].control_url}/faults").raise_for_status()


@pytest.fixture
def faults(emulators):
    """Inject a fault: faults("gigachat", status=500, count=1); none are left before or after a test."""
    injector = Faults(emulators)
    injector.clear()
    yield injector
    injector.clear()


@pytest.fixture
def ledgers(emulators, faults):
    """Ledgers cleared (and faults reset) at the start of a test."""
    books = Ledgers(emulators)
    books.clear()
    return books


class Rules:
    def __init__(self, blocker):
        self.blocker = blocker
        self.names: list[str] = []

    def create(self, **fields):
        from apps.routing.models import RoutingRule
        from apps.routing.services import rule_save

        fields.setdefault("priority", 1)
        fields.setdefault("retries", 0)
        with self.blocker.unblock():
            rule = rule_save(RoutingRule(**fields))
        self.names.append(rule.name)
        return rule

    def settle(self):
        """Long enough for a running gateway to see the edit (bus, or the short TTL)."""
        time.sleep(0.15 if settings.REDIS_URL else LOCAL_CONFIG_TTL * 2)

    def delete_all(self):
        from apps.routing.models import RoutingRule
        from apps.routing.services import rules_delete

        with self.blocker.unblock():
            rules_delete(RoutingRule.objects.filter(name__in=self.names))
        self.names.clear()


@pytest.fixture
def rules(django_db_blocker):
    """Create committed routing rules; they are deleted after the test."""
    made = Rules(django_db_blocker)
    yield made
    made.delete_all()


def unique_model(name: str) -> str:
    return f"test/{name}-{uuid.uuid4().hex[:6]}"
