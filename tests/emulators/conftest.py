"""Fixtures for the emulator tests: one set of emulators for the session, reset around each test."""

import httpx
import pytest

from apps.emulators.control import EmulatorControl
from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY
from apps.emulators.server import EMULATORS, EmulatorThread


@pytest.fixture(scope="session")
def running_emulators():
    with EmulatorThread() as thread:
        yield thread


@pytest.fixture(scope="session")
def http():
    """One client for the session: building an httpx client costs an SSL context (~50 ms)."""
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture(autouse=True)
def fresh_emulators(running_emulators, http):
    """Each test starts from the defaults: no faults, empty ledgers, no issued tokens."""
    controls = {name: EmulatorControl(running_emulators[name].origin, client=http) for name in EMULATORS}
    for control in controls.values():
        control.reset()
    yield controls
    for control in controls.values():
        control.reset()


@pytest.fixture
def gigachat(running_emulators):
    return running_emulators["gigachat"]


@pytest.fixture
def yandex(running_emulators):
    return running_emulators["yandexgpt"]


@pytest.fixture
def mts(running_emulators):
    return running_emulators["mts"]


@pytest.fixture
def tbank(running_emulators):
    return running_emulators["tbank"]


@pytest.fixture
def gigachat_token(gigachat, http):
    import uuid

    response = http.post(
        gigachat.auth_url,
        headers={"Authorization": f"Basic {DEMO_AUTHORIZATION_KEY}", "RqUID": str(uuid.uuid4())},
        data={"scope": "GIGACHAT_API_PERS"},
    )
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture
def giga_headers(gigachat_token):
    return {"Authorization": f"Bearer {gigachat_token}"}
