"""The JWKS cache of apps.oauth.external, in process against the stand-in IdP: keys are fetched once and
reused, a key id we do not have triggers at most one fetch per REFETCH_INTERVAL however many tokens name
one (time is moved by ageing the cache), and a rotated key is picked up by that re-fetch."""

import asyncio

import pytest

from apps.oauth import external

from .idp import IdentityProvider, new_key


@pytest.fixture
def idp():
    provider = IdentityProvider().start()
    external._issuers.clear()
    external._issuers[provider.issuer] = external._Issuer(provider.config())
    yield provider
    external._issuers.clear()
    provider.stop()


async def test_keys_are_fetched_once_and_refreshed_only_for_an_unknown_key_id(idp):
    verified = await external.verify(idp.token("alice", "acme"))
    assert verified is not None and verified[1]["sub"] == "alice" and idp.jwks_fetches == 1
    assert await external.verify(idp.token("bob", "acme")) is not None
    assert idp.jwks_fetches == 1  # cached

    idp.key, idp.kid = new_key(), "idp-key-2"  # the IdP rotates its key
    assert await external.verify(idp.token("carol", "acme")) is None
    assert idp.jwks_fetches == 1  # fetched less than REFETCH_INTERVAL ago: not again yet

    external._issuers[idp.issuer].fetched -= external.REFETCH_INTERVAL  # time passes
    rotated = [idp.token(f"user-{n}", "acme") for n in range(20)]
    assert all(await asyncio.gather(*(external.verify(t) for t in rotated)))  # the new key was picked up…
    assert idp.jwks_fetches == 2  # …by one fetch, shared by all twenty
    idp.kid = "idp-key-3-made-up"
    assert await asyncio.gather(*(external.verify(idp.token("mallory", "acme")) for _ in range(20))) == [None] * 20
    assert idp.jwks_fetches == 2  # a stream of made-up key ids costs no fetch within the interval


async def test_a_failing_identity_provider_keeps_the_keys_already_fetched(idp):
    assert await external.verify(idp.token("alice", "acme")) is not None
    idp.stop()
    issuer = external._issuers[idp.issuer]
    issuer.fetched -= external.JWKS_TTL + 1  # due for a refresh, which fails
    assert await external.verify(idp.token("alice", "acme")) is not None


async def test_an_oversized_jwks_is_refused(idp):
    idp.jwks = lambda: {"keys": [{"kty": "oct", "k": "x" * 1000, "kid": str(n)} for n in range(100)]}  # ≈ 110 KB
    assert await external.verify(idp.token("alice", "acme")) is None
    assert idp.jwks_fetches == 1 and external._issuers[idp.issuer].keys == {}
