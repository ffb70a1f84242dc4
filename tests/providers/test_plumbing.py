"""What every adapter shares: the registry, the per-credential concurrency cap and TLS."""

import asyncio
import ssl

import pytest
import trustme

from apps.emulators.gigachat_auth import DEMO_AUTHORIZATION_KEY
from apps.emulators.server import EmulatorThread
from apps.providers.adapters import REGISTRY, adapter_class, watchdog
from apps.providers.adapters.base import CredentialConfig, ProviderAdapter, ProviderConfig, ProviderError

from .conftest import MTS_KEY, collect, joined, ledger, user

CHAT = "/v1/chat/completions"


def test_the_registry_loads_every_kind_with_its_capabilities():
    # (n, stop, images, dimensions)
    expected = {
        "gigachat": (False, False, True, False),  # images: uploaded to its vision models
        "yandexgpt": (False, False, False, True),
        "mts": (True, True, True, True),
        "tbank": (True, True, True, True),
        "openai_compatible": (True, True, True, True),
    }
    for kind in REGISTRY:
        cls = adapter_class(kind)
        assert issubclass(cls, ProviderAdapter) and cls.kind == kind
        assert (cls.supports_n, cls.supports_stop, cls.supports_images, cls.supports_dimensions) == expected[kind]
    with pytest.raises(KeyError):
        adapter_class("openai-but-wrong")


async def test_a_credential_with_one_slot_serialises_calls(make_adapter, controls):
    adapter = make_adapter("mts", max_concurrency=1)
    controls["mts"].add_fault(path=CHAT, latency_ms=300)
    first, second = await asyncio.gather(
        adapter.chat({"messages": [user("first")]}, "mws-gpt-alpha"), adapter.chat({"messages": [user("second")]}, "mws-gpt-alpha")
    )
    assert first.choices[0]["message"]["content"] == "Echo: first" and second.choices[0]["message"]["content"] == "Echo: second"
    started = sorted(e["ts"] for e in ledger(controls, "mts", CHAT))
    assert started[1] - started[0] >= 0.25  # the second reached the upstream only after the first finished


async def test_a_stream_holds_its_slot_until_it_ends(make_adapter, controls, settings):
    settings.XROUTER = {**settings.XROUTER, "CONCURRENCY_WAIT": 0.2}
    adapter = make_adapter("mts", max_concurrency=1)
    stream = adapter.stream_chat({"messages": [user("x")], "stream": True}, "mws-gpt-alpha")
    await stream.__anext__()
    with pytest.raises(ProviderError) as caught:
        await adapter.chat({"messages": [user("y")]}, "mws-gpt-alpha")
    assert (caught.value.status, caught.value.kind) == (429, "concurrency")
    assert joined(await collect(stream)) == "Echo: x"
    assert (await adapter.chat({"messages": [user("y")]}, "mws-gpt-alpha")).choices[0]["message"]["content"] == "Echo: y"


async def test_waiting_past_the_concurrency_wait_is_a_429(make_adapter, controls, settings):
    settings.XROUTER = {**settings.XROUTER, "CONCURRENCY_WAIT": 0.1}
    adapter = make_adapter("gigachat", max_concurrency=1)
    controls["gigachat"].add_fault(path="/api/v1/chat/completions", latency_ms=500)
    results = await asyncio.gather(
        adapter.chat({"messages": [user("slow")]}, "GigaChat"), adapter.chat({"messages": [user("waits")]}, "GigaChat"), return_exceptions=True
    )
    # Which of the two takes the slot first is a race (with Redis, whichever lease request lands first).
    answered = [r for r in results if not isinstance(r, ProviderError)]
    refused = [r for r in results if isinstance(r, ProviderError)]
    assert len(answered) == 1 and answered[0].choices[0]["message"]["content"].startswith("Echo: ")
    assert len(refused) == 1 and refused[0].status == 429


# --- TLS -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture(scope="module")
def tls_emulators(ca):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    with EmulatorThread(ports={"gigachat": 0, "mts": 0}, ssl_context=server_context) as thread:
        yield thread


def tls_config(emulator, kind, secrets, **extra):
    return ProviderConfig(kind, kind, emulator.base_url, auth_url=emulator.auth_url or "", credentials=(CredentialConfig("c", secrets),), **extra)


@pytest.mark.parametrize("kind, secrets, model", [("gigachat", {"authorization_key": DEMO_AUTHORIZATION_KEY}, "GigaChat"), ("mts", {"api_key": MTS_KEY}, "mws-gpt-alpha")])
async def test_tls_verifies_against_the_configured_ca_bundle(tls_emulators, ca, tmp_path, kind, secrets, model):
    emulator = tls_emulators[kind]
    assert emulator.base_url.startswith("https://")
    bundle_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle_file))
    for bundle in (ca.cert_pem.bytes().decode(), str(bundle_file)):  # PEM text or a file path
        adapter = adapter_class(kind)(tls_config(emulator, kind, secrets, ca_bundle=bundle))
        try:
            # For GigaChat this covers the OAuth call too: same session, same SSL context.
            assert (await adapter.chat({"messages": [user("secure")]}, model)).choices[0]["message"]["content"] == "Echo: secure"
        finally:
            await adapter.close()


@pytest.mark.parametrize("kind, secrets, model", [("gigachat", {"authorization_key": DEMO_AUTHORIZATION_KEY}, "GigaChat"), ("mts", {"api_key": MTS_KEY}, "mws-gpt-alpha")])
async def test_tls_fails_without_the_ca_bundle(tls_emulators, kind, secrets, model):
    adapter = adapter_class(kind)(tls_config(tls_emulators[kind], kind, secrets))
    try:
        with pytest.raises(ProviderError) as caught:
            await adapter.chat({"messages": [user("secure")]}, model)
    finally:
        await adapter.close()
    assert caught.value.kind == "connection" and "Certificate" in caught.value.message


# Streamed bodies are timed by the watchdog (one sweeper per loop), not by aiohttp's per-read timers.

async def test_a_stream_that_stalls_after_its_first_chunk_times_out(make_adapter, controls, settings):
    settings.XROUTER = {**settings.XROUTER, "READ_TIMEOUT": 0.3}
    controls["mts"].add_fault(path=CHAT, chunk_delay_ms=1500)
    stream = make_adapter("mts").stream_chat({"messages": [user("[long] go")], "stream": True}, "mws-gpt-alpha")
    first = await stream.__anext__()
    assert first.delta == {"role": "assistant"}
    started = asyncio.get_running_loop().time()
    with pytest.raises(ProviderError) as caught:
        await collect(stream)
    waited = asyncio.get_running_loop().time() - started
    assert (caught.value.status, caught.value.kind) == (504, "timeout")
    assert "stalled" in caught.value.message
    assert 0.25 <= waited < 1.2  # the read timeout plus at most a sweeper tick, not the 1.5 s stall
    assert watchdog.watched_count() == 0


async def test_a_steady_stream_past_the_total_timeout_is_cut(make_adapter, controls):
    controls["mts"].add_fault(path=CHAT, chunk_delay_ms=150)
    stream = make_adapter("mts", timeout=0.8).stream_chat({"messages": [user("[long] go")], "stream": True}, "mws-gpt-alpha")
    got = []
    with pytest.raises(ProviderError) as caught:
        async for chunk in stream:
            got.append(chunk)
    assert caught.value.kind == "timeout" and "total timeout" in caught.value.message
    assert 3 <= len(got) < 40  # some chunks came (each well within any read timeout), then the total ran out
    assert watchdog.watched_count() == 0


async def test_streams_that_end_or_are_abandoned_leave_nothing_watched(make_adapter):
    adapter = make_adapter("mts")
    assert joined(await collect(adapter.stream_chat({"messages": [user("x")], "stream": True}, "mws-gpt-alpha"))) == "Echo: x"
    assert watchdog.watched_count() == 0
    stream = adapter.stream_chat({"messages": [user("[long] go")], "stream": True}, "mws-gpt-alpha")
    await stream.__anext__()
    assert watchdog.watched_count() == 1
    await stream.aclose()  # a client that went away
    assert watchdog.watched_count() == 0
