"""Serving an emulator over HTTPS with a test CA (trustme)."""

import ssl

import httpx
import pytest
import trustme
from gigachat import GigaChat

from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY
from apps.emulators.server import EmulatorThread


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_gigachat(ca):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    with EmulatorThread(ports={"gigachat": 0}, ssl_context=server_context) as thread:
        yield thread["gigachat"]


def test_https_verifies_against_the_test_ca(ca, tls_gigachat):
    assert tls_gigachat.base_url.startswith("https://127.0.0.1:")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    with httpx.Client(verify=client_context) as client:
        assert client.get(tls_gigachat.control_url + "/health").status_code == 200


def test_https_fails_without_the_test_ca(tls_gigachat):
    with httpx.Client() as client, pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        client.get(tls_gigachat.control_url + "/health")


def test_gigachat_sdk_over_tls_with_a_ca_bundle(ca, tls_gigachat, tmp_path):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    with GigaChat(
        base_url=tls_gigachat.base_url,
        auth_url=tls_gigachat.auth_url,
        credentials=DEMO_AUTHORIZATION_KEY,
        ca_bundle_file=str(bundle),
        model="GigaChat",
    ) as client:
        assert client.chat("secure").choices[0].message.content == "Echo: secure"
