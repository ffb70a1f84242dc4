"""Issue 12, hardening: `check --deploy` is clean under XROUTER_ENV=production, and a production server's real
answers carry the security headers, redirect plain http, and believe X-Forwarded-Proto from trusted proxies only."""

import os
import subprocess
import sys

import httpx
import pytest
from django.test import RequestFactory

from apps.common import client_address as resolver
from tests.conftest import ROOT, start_gateway, stop_gateway

from .support import production_env

SECRET_NAMES = {"XROUTER_ENV", "DJANGO_SECRET_KEY", "XROUTER_FERNET_KEYS", "XROUTER_FERNET_KEY", "DEBUG"}


def test_check_deploy_is_clean_in_production(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in SECRET_NAMES} | production_env(tmp_path)
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.fixture(scope="module")
def production_server(tmp_path_factory, django_db_setup):
    """A production gateway that believes proxies at 127.0.0.1 only: a client from 127.0.0.2 is not one."""
    env = production_env(tmp_path_factory.mktemp("production"), XROUTER_TRUSTED_PROXIES="127.0.0.1/32")
    process, base = start_gateway(env)
    yield base
    stop_gateway(process)


def client_from(address: str) -> httpx.Client:
    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=10, follow_redirects=False)


def test_plain_http_is_redirected_to_https(production_server):
    with client_from("127.0.0.2") as client:
        answer = client.get(production_server + "/accounts/login/")
    assert answer.status_code == 301
    assert answer.headers["location"].startswith("https://")


def test_x_forwarded_proto_from_an_untrusted_peer_changes_nothing(production_server):
    with client_from("127.0.0.2") as client:
        answer = client.get(production_server + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert answer.status_code == 301 and "strict-transport-security" not in answer.headers


def test_behind_a_trusted_proxy_pages_carry_every_security_header(production_server):
    with client_from("127.0.0.1") as client:
        answer = client.get(production_server + "/accounts/login/", headers={"X-Forwarded-Proto": "https"})
    assert answer.status_code == 200, answer.text[:300]
    headers = answer.headers
    assert headers["strict-transport-security"] == "max-age=31536000"
    csp = headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
    assert "unsafe-eval" not in csp
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    cookies = answer.headers.get_list("set-cookie")
    assert cookies and all("; Secure" in cookie for cookie in cookies), cookies


def test_the_alertmanager_webhook_and_probes_are_not_redirected(production_server):
    with client_from("127.0.0.2") as client:
        assert client.get(production_server + "/healthz").status_code == 200
        # Refused for want of credentials, not redirected: Alertmanager speaks plain http on the inside.
        assert client.post(production_server + "/api/v1/alerts/alertmanager", json={}).status_code in {401, 403}


def test_the_admin_answers_its_networks_only(tmp_path, django_db_setup):
    process, base = start_gateway(production_env(tmp_path, XROUTER_ADMIN_ALLOW="127.0.0.1/32",
                                                 XROUTER_SSL_REDIRECT="false"))
    try:
        with client_from("127.0.0.2") as outside, client_from("127.0.0.1") as inside:
            assert outside.get(base + "/admin/login/").status_code == 404
            assert outside.get(base + "/admin/").status_code == 404
            assert inside.get(base + "/admin/").status_code == 302  # to the login
            assert outside.get(base + "/accounts/login/").status_code == 200  # the portal is everyone's
    finally:
        stop_gateway(process)


# --- The decisions, without a server ---


@pytest.fixture
def trusting(settings):
    def trust(*cidrs):
        settings.XROUTER = {**settings.XROUTER, "TRUSTED_PROXIES": list(cidrs)}
        resolver.trusted_proxies.cache_clear()

    yield trust
    resolver.trusted_proxies.cache_clear()


@pytest.mark.parametrize(("peer", "kept"), [("127.0.0.1", True), ("203.0.113.5", False)])
def test_x_forwarded_proto_is_kept_from_trusted_proxies_only(trusting, peer, kept):
    from apps.common.middleware import ClientAddressMiddleware

    trusting("127.0.0.0/8")
    seen = {}
    ClientAddressMiddleware(lambda request: seen.update(request.META))(
        RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_PROTO="https"))
    assert ("HTTP_X_FORWARDED_PROTO" in seen) is kept


def test_without_trusted_proxies_x_forwarded_proto_is_never_believed(trusting):
    from apps.common.middleware import ClientAddressMiddleware

    trusting()
    seen = {}
    ClientAddressMiddleware(lambda request: seen.update(request.META))(
        RequestFactory().get("/", REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_PROTO="https"))
    assert "HTTP_X_FORWARDED_PROTO" not in seen
