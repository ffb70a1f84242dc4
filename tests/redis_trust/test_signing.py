"""Redis is not trusted (issue 12, Hardening): bus events and usage stream entries are signed
(apps/common/signing.py), a forged usage entry is dead-lettered and never billed, a forged bus event is
dropped, and provider tokens shared through Redis are encrypted."""

import asyncio
import logging
import subprocess
import sys
import time
import uuid

import orjson
import pytest
import redis
from django.conf import settings
from django.core.management import call_command

from apps.common import bus, signing
from apps.common.checks import check_production_secrets
from apps.usage import deadletter
from apps.usage.metrics import UNSIGNED
from apps.usage.models import UsageRecord
from tests.conftest import ROOT, need
from tests.usage.test_writer import count, entry, stream_name  # noqa: F401 (stream_name: a fixture)

FORGER = signing.Signer(["an attacker's own key, not one of ours " * 2])


# --- Decisions (no server) ---------------------------------------------------------------------------


def test_the_first_key_signs_and_every_key_verifies():
    old, new = "o" * 40, "n" * 40
    before, during, after = signing.Signer([old]), signing.Signer([new, old]), signing.Signer([new])
    raw = b'[{"request_id": "r1"}]'
    assert during.verify(raw, before.sign(raw)) and during.verify(raw, during.sign(raw))
    assert after.verify(raw, during.sign(raw)) and not after.verify(raw, before.sign(raw))
    assert not during.verify(raw + b" ", during.sign(raw))
    assert not during.verify(raw, None) and not during.verify(raw, b"") and not during.verify(None, during.sign(raw))
    assert during.open(during.seal(raw)) == raw
    assert during.open(raw) is None and during.open(FORGER.seal(raw)) is None


def test_development_derives_the_key_from_the_secret_key_and_the_writer_derives_the_same():
    assert settings.BUS_HMAC_KEYS[0] == signing.derive_key(settings.SECRET_KEY) or settings.BUS_HMAC_KEYS_CONFIGURED
    env = {"DJANGO_SECRET_KEY": "s" * 60, "DJANGO_SECRET_KEY_FALLBACKS": "f" * 60}
    assert signing.keys_from_environ(env) == [signing.derive_key("s" * 60), signing.derive_key("f" * 60)]
    assert signing.keys_from_environ({**env, "XROUTER_BUS_HMAC_KEYS": "k" * 40 + ", " + "j" * 40}) == ["k" * 40, "j" * 40]
    with pytest.raises(ValueError, match="XROUTER_BUS_HMAC_KEYS"):
        signing.keys_from_environ({})


def test_production_refuses_to_start_without_keys(settings):
    settings.XROUTER_ENV = "production"
    settings.BUS_HMAC_KEYS_CONFIGURED = []
    assert "xrouter.E006" in {e.id for e in check_production_secrets()}
    settings.BUS_HMAC_KEYS_CONFIGURED = ["short"]
    assert any(e.id == "xrouter.E006" and "shorter" in e.msg for e in check_production_secrets())
    settings.BUS_HMAC_KEYS_CONFIGURED = ["x" * 64]
    assert "xrouter.E006" not in {e.id for e in check_production_secrets()}


def test_a_real_start_under_production_without_keys_fails():
    env = {"XROUTER_ENV": "production", "DJANGO_SECRET_KEY": "p" * 64, "XROUTER_FERNET_KEYS": "", "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode != 0 and "xrouter.E006" in out.stderr and "XROUTER_BUS_HMAC_KEYS" in out.stderr


def test_signing_a_usage_entry_costs_microseconds():
    """The usage path runs on every request (batched: one signature per entry of up to 500 records)."""
    payload = orjson.dumps([entry(f"bench-{i}") for i in range(20)])
    sign = signing.signer()
    rounds = 20_000
    started = time.process_time()
    for _ in range(rounds):
        sign.verify(payload, sign.sign(payload))
    per_message = (time.process_time() - started) / rounds
    assert per_message < 20e-6, f"{per_message * 1e6:.1f} µs to sign and verify one entry"


# --- The bus -----------------------------------------------------------------------------------------


def test_a_forged_bus_event_is_dropped_counted_and_not_logged(caplog):
    heard = []
    topic = f"redis-trust-{uuid.uuid4().hex[:6]}"
    bus.subscribe(topic, heard.append)
    secret_payload = {"provider": "gigachat", "state": "open", "marker": "canary-payload-123"}
    event = orjson.dumps({"topic": topic, "origin": "elsewhere", "payload": secret_payload})
    before = bus.UNSIGNED._value.get()
    bus._unsigned_logged = -bus.UNSIGNED_LOG_EVERY
    with caplog.at_level(logging.WARNING, logger="apps.common.bus"):
        bus._receive(event)  # unsigned
        for _ in range(100):
            bus._receive(FORGER.seal(event))  # signed with a key that is not ours
    assert heard == [] and bus.UNSIGNED._value.get() == before + 101
    assert "without a valid signature" in caplog.text and "canary-payload-123" not in caplog.text
    assert caplog.text.count("without a valid signature") == 1  # one line per 10 s, not one per forgery
    bus._receive(signing.signer().seal(event))
    assert heard == [secret_payload]


async def test_events_cross_real_redis_signed():
    need("Redis", bool(settings.REDIS_URL))
    from apps.common import redis as shared_redis

    topic = f"redis-trust-{uuid.uuid4().hex[:6]}"
    heard = []
    bus.subscribe(topic, lambda payload: heard.append(payload) if not payload.get("resync") else None)
    ready = asyncio.Event()
    listener = asyncio.create_task(bus.listen(ready))
    try:
        await asyncio.wait_for(ready.wait(), 5)
        raw = redis.Redis.from_url(settings.REDIS_URL)
        forged = orjson.dumps({"topic": topic, "origin": "attacker", "payload": {"n": 1}})
        raw.publish(bus.CHANNEL, forged)
        raw.publish(bus.CHANNEL, signing.signer().seal(orjson.dumps({"topic": topic, "origin": "peer", "payload": {"n": 2}})))
        deadline = time.monotonic() + 5
        while not heard and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        assert heard == [{"n": 2}]
    finally:
        listener.cancel()
        await asyncio.gather(listener, return_exceptions=True)
        await shared_redis.aclose()


# --- The usage stream --------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["django", "lean"])
def test_a_forged_usage_entry_is_dead_lettered_and_never_billed(stream_name, django_db_blocker, kind, caplog):  # noqa: F811
    from tests.usage.test_dead_letter import make_writer

    prefix = f"forged-{kind}-{uuid.uuid4().hex[:6]}-"
    client = redis.Redis.from_url(settings.REDIS_URL)
    client.xadd(stream_name, {"b": orjson.dumps([entry(f"{prefix}unsigned")])})
    forged = orjson.dumps([entry(f"{prefix}wrong-key")])
    client.xadd(stream_name, {"b": forged, "s": FORGER.sign(forged)})
    signed = orjson.dumps([entry(f"{prefix}ours")])
    client.xadd(stream_name, {"b": signed, "s": signing.signer().sign(forged)})  # a signature of other bytes
    client.xadd(stream_name, signing.usage_entry(signed))
    before = int(client.get(deadletter.unsigned_key(stream_name)) or 0)
    with django_db_blocker.unblock(), caplog.at_level(logging.ERROR):
        writer = make_writer(kind, "forgery-writer")
        while writer.run_once():
            pass
    assert count(django_db_blocker, prefix) == (1, 1)  # only the entry we signed is billed
    with django_db_blocker.unblock():
        assert UsageRecord.objects.get(request_id__startswith=prefix).request_id == f"{prefix}ours"
    assert int(client.get(deadletter.unsigned_key(stream_name))) == before + 3
    dead = client.xrange(deadletter.dead_stream(stream_name))
    assert len(dead) == 3 and all(f[b"error"].decode() == deadletter.UNSIGNED_ERROR and b"s" not in f for _, f in dead)
    assert f"{prefix}unsigned" in dead[0][1][b"r"].decode()  # kept for a person to read…
    assert prefix not in caplog.text and "without a valid signature" in caplog.text  # …but never logged
    assert client.xlen(stream_name) == 0  # acknowledged: not retried forever

    # The replay re-inserts only what a writer signed: the forged entries stay and are never billed.
    with django_db_blocker.unblock():
        call_command("usage_dead_letter", "--replay")
    assert count(django_db_blocker, prefix)[0] == 1
    assert len(client.xrange(deadletter.dead_stream(stream_name))) == 3
    assert UNSIGNED.local >= 3  # this process's count; /metrics reports the cluster's (Redis)


def test_a_dead_letter_entry_added_by_someone_else_is_never_replayed(stream_name, django_db_blocker):  # noqa: F811
    prefix = f"planted-{uuid.uuid4().hex[:6]}-"
    client = redis.Redis.from_url(settings.REDIS_URL)
    dead = deadletter.dead_stream(stream_name)
    client.xadd(dead, {"r": orjson.dumps(entry(f"{prefix}planted")), "error": "refused", "at": "0"})
    deadletter.to_stream(client, stream_name, [(entry(f"{prefix}ours"), "was refused")], signing.signer())
    with django_db_blocker.unblock():
        call_command("usage_dead_letter", "--replay")
    assert count(django_db_blocker, prefix)[0] == 1
    assert [orjson.loads(f[b"r"])["request_id"] for _, f in client.xrange(dead)] == [f"{prefix}planted"]


# --- Provider tokens shared through Redis ----------------------------------------------------------


async def test_shared_provider_tokens_are_encrypted_and_a_planted_one_is_ignored():
    need("Redis", bool(settings.REDIS_URL))
    import redis.asyncio as aioredis

    from apps.providers.adapters.tokens import Token, TokenCache

    client = aioredis.Redis.from_url(settings.REDIS_URL)
    prefix = f"{settings.XROUTER['REDIS_NAMESPACE']}:test:{uuid.uuid4().hex[:8]}:token:"
    fetched = []

    async def fetch():
        fetched.append(1)
        return Token(f"provider-token-canary-{len(fetched)}", time.time() + 1800)

    try:
        first = TokenCache(redis=lambda: client, prefix=prefix)
        assert await first.get("k", fetch) == "provider-token-canary-1"
        stored = await client.get(prefix + "k")
        assert stored and b"provider-token-canary" not in stored  # a Fernet token, not the value
        second = TokenCache(redis=lambda: client, prefix=prefix)
        assert await second.get("k", fetch) == "provider-token-canary-1" and len(fetched) == 1  # still shared

        # Something with write access plants a token of its choosing: not used, the process fetches its own.
        planted = orjson.dumps({"t": "attacker-token", "e": time.time() + 1800, "i": time.time()})
        await client.set(prefix + "k2", planted, px=600_000)
        third = TokenCache(redis=lambda: client, prefix=prefix)
        assert await third.get("k2", fetch) == "provider-token-canary-2"
    finally:
        keys = await client.keys(prefix + "*")
        if keys:
            await client.delete(*keys)
        await client.aclose()


def test_values_read_from_the_bus_are_clamped():
    from apps.routing import state

    state.reset()
    try:
        state._on_breaker({"target": "p/m", "cooldown": 10**12})  # a year and more: clamped to the hour
        assert state.state("p/m").open_until - time.monotonic() <= state.MAX_COOLDOWN
        state._on_breaker({"target": "p/n", "cooldown": float("nan")})
        assert 0 < state.state("p/n").open_until - time.monotonic() <= state.COOLDOWN
        state._on_breaker({"target": "p/o", "cooldown": -50})
        assert state.available("p/o", "p")  # a negative cooldown opens nothing
        state._on_breaker({"target": "x" * 1000})
        state._on_breaker({"target": ["p/m"]})
        assert "x" * 1000 not in state._targets and len(state._targets) == 3
        state._on_health({"provider": "giga", "ok": False, "ttl": "forever", "balance": {"tokens": 1e300, "x": -5}})
        assert state._unhealthy_providers["giga"] - time.monotonic() <= state.COOLDOWN
        assert state._balances["giga"] == {"tokens": state.MAX_BALANCE, "x": 0.0}
        assert bus.bounded(True, 0, 10, 3) == 3 and bus.bounded("7", 0, 10, 3) == 3 and bus.bounded(7, 0, 5, 3) == 5
    finally:
        state.reset()
