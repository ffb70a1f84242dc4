"""Hostile review of issue 8 item 10: a tenant must not open a breaker for everyone.

A stream that outgrows the gateway's own bound (XROUTER_MAX_STREAM_BYTES) is as long as its
request asked for (n > 1 and a large max_tokens reach 64 MiB of SSE): the provider did nothing wrong. It was counted as the provider's 5xx, so a
few such requests from one tenant closed the target to every tenant for a cooldown."""

import httpx

from apps.providers.adapters.base import ProviderError
from apps.routing.failures import counts_for_breaker

TBANK = "tbank/t-tech/T-lite-it-2.1"
MiB = 1024 * 1024


def test_an_answer_past_the_stream_bound_opens_no_breaker(spawn):
    gw = spawn(XROUTER_MAX_STREAM_BYTES=str(MiB), XROUTER_BREAKER_FAILURES="1")
    headers = {"authorization": f"Bearer {gw.keys['alice']}"}
    body = {"model": TBANK, "stream": True, "messages": [{"role": "user", "content": "[long:300000] all of it"}]}
    with httpx.stream("POST", gw.v1 + "/chat/completions", json=body, headers=headers, timeout=60) as response:
        assert response.status_code == 200
        events = [line[6:] for line in response.iter_lines() if line.startswith("data: ")]
    assert '"error"' in events[-2], events[-2:]  # the answer was cut, and said so

    after = httpx.post(gw.v1 + "/chat/completions", headers=headers, timeout=30,
                       json={"model": TBANK, "messages": [{"role": "user", "content": "still there?"}]})
    assert after.status_code == 200, after.text


def test_a_stream_bound_error_is_not_the_providers_failure():
    from apps.providers.adapters.sse import too_long
    from apps.providers.adapters.transport import too_large

    assert not counts_for_breaker(too_large("p", too_long(MiB)))
    assert counts_for_breaker(ProviderError("x", status=502, kind="malformed_stream"))
