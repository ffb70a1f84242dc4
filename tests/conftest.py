"""Shared fixtures. The cast: alice owns things, bob is on her team, charlie must be refused.

End-to-end tests run a real gateway process (`manage.py serve`) against the provider
emulators over loopback HTTP, with the test database and, when configured, real Redis.
With XROUTER_REQUIRE_SERVICES=1 (set by .ci/run) a missing PostgreSQL or Redis fails the
run instead of skipping.
"""

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
# The emulators and every test upstream listen on loopback: the one exception to the rule that provider
# connections go to public addresses (apps/providers/destinations.py). Servers the tests start inherit it.
LOOPBACK_ALLOW = "127.0.0.0/8,::1/128"
os.environ.setdefault("XROUTER_FETCH_ALLOW", LOOPBACK_ALLOW)
REQUIRE_SERVICES = os.environ.get("XROUTER_REQUIRE_SERVICES") == "1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(service: str, available: bool):
    """Skip locally when a service is absent; fail in CI, where it must be there."""
    if available:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"{service} is required (XROUTER_REQUIRE_SERVICES=1) but not configured or unreachable")
    pytest.skip(f"{service} not configured")


ADDRESS_RATES_OFF = {"XROUTER_RATE_SIGNUP": "off", "XROUTER_RATE_LOGIN": "off", "XROUTER_RATE_TOKEN": "off",
                     "XROUTER_RATE_API": "off"}


@pytest.fixture(scope="session", autouse=True)
def _address_rates_off():
    """The per-address and per-caller limits (apps.limits.addresses) would count every test's sign-ups,
    logins and API calls from 127.0.0.1 in a Redis that runs share: off, except where a test sets a rate
    (tests/limits/test_addresses.py); servers started by tests get the same (start_gateway)."""
    from django.conf import settings

    settings.XROUTER["ADDRESS_RATES"] = dict.fromkeys(settings.XROUTER["ADDRESS_RATES"], "")


@pytest.fixture(scope="session", autouse=True)
def _shared_process_settings():
    """Settings were read before this module set XROUTER_FETCH_ALLOW: give this process the same. And the
    processes tests start (gateways, lean usage writers without Django) sign and verify with this process's
    keys (apps/common/signing.py), so a test may write a signed usage entry or check one."""
    from django.conf import settings

    if not settings.XROUTER_FETCH_ALLOW:
        settings.XROUTER_FETCH_ALLOW = [n.strip() for n in os.environ["XROUTER_FETCH_ALLOW"].split(",") if n.strip()]
    os.environ.setdefault("XROUTER_BUS_HMAC_KEYS", ",".join(settings.BUS_HMAC_KEYS))


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database of this run's own, so several runs on one machine never share one."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    _set_suffix_to_test_databases(suffix=f"p{os.getpid()}")


@pytest.fixture(scope="session")
def django_db_setup(request, django_test_environment, django_db_blocker, django_db_keepdb, django_db_modify_db_settings):
    """pytest-django creates only the databases marked tests ask for; the end-to-end tests use
    the default one through a server process, without the marker, so always create it."""
    from django.test.utils import setup_databases, teardown_databases

    with django_db_blocker.unblock():
        config = setup_databases(verbosity=0, interactive=False, keepdb=django_db_keepdb, aliases={"default"})
    yield
    with django_db_blocker.unblock():
        teardown_databases(config, verbosity=0, keepdb=django_db_keepdb)


@pytest.fixture(scope="session", autouse=True)
def required_services():
    """In CI, prove the suite really runs on PostgreSQL and Redis."""
    if not REQUIRE_SERVICES:
        return
    engine = settings.DATABASES["default"]["ENGINE"]
    if "postgresql" not in engine:
        pytest.fail(f"CI must run on PostgreSQL, DATABASE_URL gives {engine}")
    if not settings.REDIS_URL:
        pytest.fail("CI must run with REDIS_URL set")
    import redis

    redis.Redis.from_url(settings.REDIS_URL).ping()


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """The test database with no wrapping transaction and no flush afterwards (a transactional
    test's flush would wipe the session gateway's configuration and keys for every later test):
    what the test writes stays, so it names its rows uniquely."""
    with django_db_blocker.unblock():
        yield


@pytest.fixture(scope="session")
def emulators():
    from apps.emulators.server import EmulatorThread

    thread = EmulatorThread(ports=0).start()
    yield thread
    thread.stop()


@pytest.fixture
def emulator_control(emulators):
    """Reset faults and ledgers around a test; yields a function to inject a fault."""

    def inject(name: str, **fault):
        r = httpx.post(f"{emulators[name].control_url}/faults", json=fault, timeout=5)
        r.raise_for_status()

    def reset():
        for name in ("gigachat", "yandexgpt", "mts", "tbank"):
            httpx.delete(f"{emulators[name].control_url}/faults", timeout=5)

    reset()
    yield inject
    reset()


def demo_config(emulators) -> dict:
    """config/demo.yaml with the emulators' ephemeral ports."""
    text = (ROOT / "config" / "demo.yaml").read_text()
    for name, var in (("gigachat", "GIGACHAT"), ("yandexgpt", "YANDEXGPT"), ("mts", "MTS"), ("tbank", "TBANK")):
        text = text.replace(f"${{XROUTER_EMULATOR_{var}_PORT:-{settings.EMULATOR_PORTS[name]}}}", str(emulators[name].port))
    return yaml.safe_load(text)


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if "sqlite" in db["ENGINE"]:
        return f"sqlite:///{db['NAME']}"
    return f"postgres://{db.get('USER') or 'postgres'}:{db.get('PASSWORD') or ''}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class Gateway:
    def __init__(self, base_url, process, env, keys):
        self.base_url = base_url
        self.process = process
        self.env = env
        self.keys = keys

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"


def start_gateway(env_extra=None, port=None, log=None, args=()) -> tuple[subprocess.Popen, str]:
    """log: a file that takes the server's stdout and stderr (e.g. to read its uvicorn log); args: more
    arguments for `manage.py serve` (e.g. --no-writer)."""
    port = port or free_port()
    env = {**os.environ, **ADDRESS_RATES_OFF, "DATABASE_URL": _database_url(), "XROUTER_LOG_JSON": "false", "LOG_LEVEL": "warning",
           "XROUTER_USAGE_FLUSH_INTERVAL": "0.1", **(env_extra or {})}
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--port", str(port), *args], cwd=ROOT, env=env,
        stdout=log, stderr=subprocess.STDOUT if log is not None else None,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gateway exited with {process.returncode}")
        try:
            if httpx.get(base + "/healthz", timeout=1).status_code == 200:
                return process, base
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("gateway did not start in 30 s")


def stop_gateway(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="session")
def gateway(django_db_setup, django_db_blocker, emulators):
    """A running gateway over the demo configuration, with keys for alice and charlie."""
    from apps.accounts.models import User
    from apps.keys.services import key_create
    from apps.routing.config_schema import parse_config
    from apps.routing.services import config_import

    with django_db_blocker.unblock():
        config_import(parse_config(demo_config(emulators)))
        alice, _ = User.objects.get_or_create(username="alice")
        charlie, _ = User.objects.get_or_create(username="charlie")
        _, alice_key = key_create(user=alice, name="alice-e2e")
        _, charlie_key = key_create(user=charlie, name="charlie-limited", allowed_models=["tbank/*"])
        _, resident_key = key_create(user=alice, name="ru-only", residency="RU")
    suffix = uuid.uuid4().hex[:8]
    # Breakers off in the shared gateway: one test's injected failures must not close a target
    # for the next. The breaker tests start gateways of their own.
    env = {"XROUTER_USAGE_STREAM": f"xrouter:usage:test:{suffix}", "XROUTER_BREAKER_FAILURES": "1000000",
           "XROUTER_BREAKER_ERROR_RATE": "2"}
    process, base = start_gateway(env)
    yield Gateway(base, process, env, {"alice": alice_key, "charlie": charlie_key, "resident": resident_key})
    stop_gateway(process)


@pytest.fixture
def openai_client(gateway):
    from openai import OpenAI

    return OpenAI(base_url=gateway.v1, api_key=gateway.keys["alice"], max_retries=0, timeout=30)


def wait_for_usage(django_db_blocker, request_id: str, timeout: float = 10.0, attempt: int | None = None):
    """The usage record of a request's `attempt` (by default its last), once the buffer and writer
    have stored it (a request's attempts are flushed together)."""
    from apps.usage.models import UsageRecord

    deadline = time.monotonic() + timeout
    rows = UsageRecord.objects.filter(request_id=request_id)
    if attempt is not None:
        rows = rows.filter(attempt=attempt)
    with django_db_blocker.unblock():
        while time.monotonic() < deadline:
            record = rows.order_by("-attempt").first()
            if record is not None:
                return record
            time.sleep(0.1)
    raise AssertionError(f"no usage record for {request_id} after {timeout}s")


# --- The cast (STYLE §8): acme (alice owns it, bob is on her team) and globex (charlie, who must be refused) ---


class IssuedKey(tuple):
    """(ApiKey, plaintext), also readable as `.key` and `.plaintext`."""

    __slots__ = ()

    def __new__(cls, key, plaintext):
        return super().__new__(cls, (key, plaintext))

    key = property(lambda self: self[0])
    plaintext = property(lambda self: self[1])


def _persona(username: str, organisation, role: str):
    """get_or_create: the session `gateway` fixture commits users of the same names. A member of
    `organisation` with `role`, which is also their default organisation."""
    from apps.accounts.models import Membership, User

    user, _ = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
    if user.organisation_id != organisation.id or not user.is_active or not user.email:
        user.organisation, user.is_active, user.email = organisation, True, f"{username}@example.com"
        user.save(update_fields=["organisation", "is_active", "email"])
    Membership.objects.update_or_create(user=user, organisation=organisation, defaults={"role": role})
    return user


@pytest.fixture
def acme(db):
    from apps.accounts.models import Organisation

    return Organisation.objects.get_or_create(name="acme")[0]


@pytest.fixture
def globex(db):
    from apps.accounts.models import Organisation

    return Organisation.objects.get_or_create(name="globex")[0]


@pytest.fixture
def alice(acme):
    """Owns acme."""
    return _persona("alice", acme, "owner")


@pytest.fixture
def bob(acme):
    """On alice's team (acme): a developer."""
    return _persona("bob", acme, "developer")


@pytest.fixture
def charlie(globex):
    """Another tenant (globex, which he owns): must be refused everything of acme's."""
    return _persona("charlie", globex, "owner")


@pytest.fixture
def alice_key(alice) -> IssuedKey:
    from apps.keys.services import key_create

    return IssuedKey(*key_create(user=alice, name="alice-key"))


@pytest.fixture
def bob_key(bob) -> IssuedKey:
    from apps.keys.services import key_create

    return IssuedKey(*key_create(user=bob, name="bob-key"))


@pytest.fixture
def charlie_key(charlie) -> IssuedKey:
    from apps.keys.services import key_create

    return IssuedKey(*key_create(user=charlie, name="charlie-key"))
