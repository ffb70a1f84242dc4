"""Server-side request forgery on provider connections (issue 12, Hardening): every new upstream
connection's resolved address is checked at connect time (apps/providers/destinations.py), against the
public-address rule, XROUTER_FETCH_ALLOW and the provider kind's host allow-list; saving checks what it
can without DNS."""

import socket
import time

import httpx
import pytest
from django.core.exceptions import ValidationError
from django.test import override_settings

from apps.providers.adapters import adapter_class
from apps.providers.adapters.base import CredentialConfig, ProviderConfig, ProviderError
from apps.providers.destinations import DEFAULT_HOSTS, policy, url_problem
from apps.routing.config_schema import ConfigError, parse_config
from tests.conftest import start_gateway, stop_gateway

NO_EXCEPTIONS = override_settings(XROUTER_FETCH_ALLOW=[])
BODY = {"messages": [{"role": "user", "content": "hi"}]}
REBOUND = "rebind.xrouter-test.example"  # never in real DNS: the in-process resolver below answers it


# --- Decisions (no server) ---------------------------------------------------------------------------


def test_documented_hosts_pass_and_others_do_not():
    with NO_EXCEPTIONS:
        giga = policy("gigachat")
        assert giga.problem("gigachat.devices.sberbank.ru", ["194.54.14.1"]) is None
        assert giga.problem("ngw.devices.sberbank.ru", ["194.54.14.2"]) is None
        assert "not among the hosts a gigachat provider may reach" in giga.problem("evil.example.com", ["93.184.216.34"])
        assert policy("yandexgpt").problem("llm.api.cloud.yandex.net", ["84.201.168.1"]) is None
        assert policy("mts").problem("api.gpt.mws.ru", ["95.163.1.1"]) is None
        # Self-hosted kinds have no names by default: any public host.
        assert policy("tbank").problem("llm.bank.example", ["93.184.216.34"]) is None
        assert policy("openai_compatible").problem("api.example.org", ["93.184.216.34"]) is None


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "169.254.169.254", "::1", "::ffff:127.0.0.1", "fd00::1",
                                     "0.0.0.0", "100.64.0.1"])
def test_non_public_addresses_are_refused_for_every_kind(address):
    with NO_EXCEPTIONS:
        for kind in ("gigachat", "yandexgpt", "mts", "tbank", "openai_compatible"):
            host = DEFAULT_HOSTS.get(kind, ("llm.example.org",))[0]
            assert "not public" in policy(kind).problem(host, [address]), (kind, address)


def test_one_bad_address_refuses_the_name():
    with NO_EXCEPTIONS:
        assert policy("tbank").problem("llm.example.org", ["93.184.216.34", "10.0.0.5"]) is not None


def test_the_operator_lists_hosts_and_networks():
    with NO_EXCEPTIONS:
        tbank = policy("tbank", ["vllm.bank.internal", "10.20.0.0/16", "*.models.bank.example"])
        assert tbank.problem("vllm.bank.internal", ["93.184.216.34"]) is None
        assert tbank.problem("vllm.bank.internal", ["10.20.1.5"]) is None  # a private address the list names
        assert tbank.problem("a.models.bank.example", ["93.184.216.34"]) is None
        assert tbank.problem("10.20.3.4", ["10.20.3.4"]) is None  # an address inside a listed network
        assert "not among" in tbank.problem("other.example.org", ["93.184.216.34"])
        assert "not public" in tbank.problem("vllm.bank.internal", ["10.30.0.1"])  # outside the listed network
        # An operator's list replaces the kind's default hosts.
        assert "not among" in policy("gigachat", ["giga.proxy.bank.example"]).problem(
            "gigachat.devices.sberbank.ru", ["194.54.14.1"])


def test_fetch_allow_is_the_global_exception():
    with override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8"]):
        assert policy("gigachat").problem("127.0.0.1", ["127.0.0.1"]) is None
        assert policy("gigachat").problem("localhost", ["127.0.0.1"]) is None
        assert policy("gigachat").problem("10.0.0.1", ["10.0.0.1"]) is not None


def test_saving_refuses_with_a_clear_message(db):
    from apps.providers.models import Provider

    with NO_EXCEPTIONS:
        # (.invalid names never resolve: RFC 6761.)
        provider = Provider(name="giga-evil", kind="gigachat", base_url="https://evil.invalid/api/v1",
                            auth_url="http://127.0.0.1:9/oauth")
        with pytest.raises(ValidationError) as caught:
            provider.full_clean()
        errors = caught.value.message_dict
        assert "'evil.invalid' is not among the hosts a gigachat provider may reach" in errors["base_url"][0]
        assert "'127.0.0.1' is not among" in errors["auth_url"][0]
        inside = Provider(name="tb-inside", kind="tbank", base_url="http://10.0.0.7:8000/v1")
        with pytest.raises(ValidationError, match="resolves to an address that is not public"):
            inside.full_clean()
        bad_list = Provider(name="tb", kind="tbank", base_url="https://llm.example.org/v1", allowed_hosts=["not a host!"])
        with pytest.raises(ValidationError, match="neither a host name"):
            bad_list.full_clean()
        Provider(name="giga-ok", kind="gigachat", base_url="https://gigachat.devices.sberbank.ru/api/v1").full_clean()
        with pytest.raises(ConfigError, match="not among the hosts a mts provider may reach"):
            parse_config({"providers": {"m": {"kind": "mts", "base_url": "https://mts.evil.invalid/v1"}}})
    assert url_problem("mts", [], "https://api.gpt.mws.ru/v1") is None
    assert url_problem("tbank", ["10.20.0.0/16"], "https://llm.internal.example/v1") is None  # judged at connect
    assert url_problem("tbank", ["10.20.0.0/16"], "https://10.20.0.5/v1") is None
    assert "not among" in url_problem("tbank", ["10.20.0.0/16"], "https://10.30.0.5/v1")


# --- At connect time, over loopback -----------------------------------------------------------------


def _adapter(emulators, kind="tbank", base_url=None, allowed_hosts=()):
    config = ProviderConfig(name="guarded", kind=kind, base_url=base_url or f"{emulators['tbank'].origin}/v1",
                            credentials=(CredentialConfig("default", {"api_key": "sk-demo-tbank-key"}),),
                            allowed_hosts=tuple(allowed_hosts))
    return adapter_class(kind)(config)


async def _refused_quickly(adapter):
    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        await adapter.chat(BODY, "t-tech/T-pro-it-2.0")
    assert time.monotonic() - started < 2, "a refused destination fails at once, it does not hang"
    assert caught.value.status == 502 and caught.value.kind == "connection"
    assert "refuses to connect" in caught.value.message and "not an allowed destination" in caught.value.message
    return caught.value


@pytest.fixture
def tbank_calls(emulators):
    """How many calls the T-Bank emulator has served since the test started."""
    from apps.emulators.control import EmulatorControl

    control = EmulatorControl(emulators["tbank"].origin)
    before = len(control.ledger())
    yield lambda: len(control.ledger()) - before
    control.close()


async def test_a_loopback_provider_outside_the_allow_list_is_refused_at_connect(emulators, tbank_calls):
    adapter = _adapter(emulators)
    try:
        with NO_EXCEPTIONS:
            await _refused_quickly(adapter)
        assert tbank_calls() == 0  # nothing reached the upstream
        with override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8"]):
            result = await adapter.chat(BODY, "t-tech/T-pro-it-2.0")
        assert result.choices[0]["message"]["content"].startswith("Echo")
    finally:
        await adapter.close()


async def test_a_network_the_provider_lists_is_allowed(emulators, tbank_calls):
    adapter = _adapter(emulators, allowed_hosts=["127.0.0.1/32"])
    try:
        with NO_EXCEPTIONS:
            result = await adapter.chat(BODY, "t-tech/T-pro-it-2.0")
        assert result.choices[0]["message"]["content"].startswith("Echo")
    finally:
        await adapter.close()


@pytest.fixture
def rebinding_dns(monkeypatch):
    """An in-process DNS: REBOUND resolves to loopback (as a rebinding attacker's name would after it was saved)."""
    import aiohttp.connector

    class Resolver(aiohttp.resolver.ThreadedResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            if host == REBOUND:
                return [{"hostname": host, "host": "127.0.0.1", "port": port, "family": socket.AF_INET, "proto": 0,
                         "flags": socket.AI_NUMERICHOST}]
            return await super().resolve(host, port, family)

    monkeypatch.setattr(aiohttp.connector, "DefaultResolver", Resolver)


async def test_a_name_that_resolves_inside_after_saving_is_refused(emulators, tbank_calls, rebinding_dns):
    from apps.providers.models import Provider

    url = f"http://{REBOUND}:{emulators['tbank'].port}/v1"
    with NO_EXCEPTIONS:
        # Saved while the name means nothing inside: a gigachat-kind proxy the operator lists by name.
        saved = Provider(name="rebound", kind="gigachat", base_url=url, auth_url=url, allowed_hosts=[REBOUND])
        saved.clean()  # the save-time check (the admin's and import_config's) passes
        adapter = _adapter(emulators, kind="openai_compatible", base_url=url, allowed_hosts=[REBOUND])
        try:
            await _refused_quickly(adapter)
        finally:
            await adapter.close()
    assert tbank_calls() == 0
    # The same name through the exception list reaches the emulator: the refusal was the check, not the DNS.
    adapter = _adapter(emulators, kind="openai_compatible", base_url=url)
    try:
        with override_settings(XROUTER_FETCH_ALLOW=["127.0.0.0/8"]):
            assert (await adapter.chat(BODY, "t-tech/T-pro-it-2.0")).choices
    finally:
        await adapter.close()


def test_the_served_gateway_answers_its_own_error_for_a_refused_provider(gateway):
    """A gateway without the loopback exception: the demo's providers (the emulators, on 127.0.0.1) are refused."""
    process, base = start_gateway({**gateway.env, "XROUTER_FETCH_ALLOW": ""})
    try:
        started = time.monotonic()
        r = httpx.post(f"{base}/v1/chat/completions", headers={"Authorization": f"Bearer {gateway.keys['alice']}"},
                       json={"model": "tbank/t-tech/T-pro-it-2.0", **BODY}, timeout=30)
        assert time.monotonic() - started < 10
        assert r.status_code == 502, r.text
        error = r.json()["error"]
        assert "refuses to connect" in error["message"] and "not an allowed destination" in error["message"]
    finally:
        stop_gateway(process)


def test_the_admin_field_takes_a_list_only(db):
    from apps.providers.models import Provider

    with pytest.raises(ValidationError, match="must be a list"):
        Provider(name="tb-str", kind="tbank", base_url="https://llm.example.org/v1", allowed_hosts="llm.example.org").full_clean()
    emptied = Provider(name="tb-none", kind="tbank", base_url="https://llm.example.org/v1", allowed_hosts=None)
    emptied.full_clean()
    assert emptied.allowed_hosts == []
