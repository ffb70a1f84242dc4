"""Fixtures of the end-to-end gateway tests (the shared ones are in tests/conftest.py)."""

import uuid

import httpx
import psutil
import pytest

from tests.conftest import Gateway, start_gateway, stop_gateway


def _stop_with_children(process) -> None:
    """stop_gateway, then end what the server started and left behind (its usage writer): with
    one worker, `serve` dies of the SIGTERM uvicorn re-raises before it stops its writer
    (test_dockerfile.py reports that bug; this keeps test runs from leaking writers meanwhile)."""
    try:
        children = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    stop_gateway(process)
    _, alive = psutil.wait_procs(children, timeout=5)
    for child in alive:
        child.terminate()
    psutil.wait_procs(alive, timeout=10)


@pytest.fixture(scope="session", autouse=True)
def _gateway_leaves_no_process_behind(gateway):
    yield
    _stop_with_children(gateway.process)  # tests/conftest.py's own stop then finds it stopped


@pytest.fixture(scope="session")
def faulty_gateway(gateway):
    """A second gateway for provider-failure tests: upstream timeouts of about a second (so a
    timeout test is quick) and a circuit breaker that never opens (so the faults these tests
    inject cannot close a target for the tests that come after them)."""
    env = {
        "XROUTER_USAGE_STREAM": f"xrouter:usage:test:{uuid.uuid4().hex[:8]}",
        "XROUTER_UPSTREAM_READ_TIMEOUT": "1",
        "XROUTER_UPSTREAM_TOTAL_TIMEOUT": "2",
        "XROUTER_BREAKER_FAILURES": "1000000",
        "XROUTER_BREAKER_ERROR_RATE": "2",
    }
    process, base = start_gateway(env)
    yield Gateway(base, process, env, gateway.keys)
    _stop_with_children(process)


# Clients are built once per session here: each new httpx client builds an SSL context
# (tens of milliseconds), which over a few hundred tests is most of the suite's time.


def _sdk(base_url: str, key: str):
    from openai import OpenAI

    return OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)


@pytest.fixture(scope="session")
def openai_client(gateway):
    """Alice's openai SDK client (as in tests/conftest.py, shared by the session)."""
    client = _sdk(gateway.v1, gateway.keys["alice"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def charlie_client(gateway):
    """Charlie's key may use tbank/* only."""
    client = _sdk(gateway.v1, gateway.keys["charlie"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def resident_client(gateway):
    """A key of alice's restricted to models hosted in Russia."""
    client = _sdk(gateway.v1, gateway.keys["resident"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def faulty_client(faulty_gateway):
    client = _sdk(faulty_gateway.v1, faulty_gateway.keys["alice"])
    yield client
    client.close()


@pytest.fixture(scope="session")
def http(gateway):
    """Alice's raw HTTP client on the gateway, for what the SDK cannot send (bad JSON, odd methods)."""
    with httpx.Client(base_url=gateway.base_url, timeout=30,
                      headers={"Authorization": f"Bearer {gateway.keys['alice']}"}) as client:
        yield client


@pytest.fixture(scope="session")
def _control_http():
    with httpx.Client(timeout=5) as client:
        yield client


@pytest.fixture
def emulator_control(emulators, _control_http):
    """tests/conftest.py's fixture (reset faults around the test, yield `inject`), on one shared
    HTTP client instead of eight new ones per test."""

    def inject(name: str, **fault):
        _control_http.post(f"{emulators[name].control_url}/faults", json=fault).raise_for_status()

    def reset():
        for name in ("gigachat", "yandexgpt", "mts", "tbank"):
            _control_http.delete(f"{emulators[name].control_url}/faults").raise_for_status()

    reset()
    yield inject
    reset()
