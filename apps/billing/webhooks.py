"""Budget webhooks: signed like Stripe's, sent only to public addresses (apps/common/fetch.py).

The receiver checks `XRouter-Signature: t=<unix seconds>,v1=<hex>` where v1 is
HMAC-SHA256(secret, f"{t}.{raw body}"), and refuses a timestamp older than a few minutes (replay).
"""

import hashlib
import hmac
import secrets
import time

import orjson

from apps.common.fetch import resolve_public

SIGNATURE_HEADER = "XRouter-Signature"
TIMEOUT, CONNECT_TIMEOUT = 10.0, 5.0
MAX_RESPONSE = 4096  # of the receiver's answer, read for the notice's status only


class DeliveryFailed(Exception):
    """A delivery that may succeed if tried again (network, timeout, 5xx, 429)."""


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, body: bytes, header: str, tolerance: int = 300, now: float | None = None) -> bool:
    """The receiver's check (and the tests'): a valid v1 signature within `tolerance` seconds."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (ValueError, KeyError):
        return False
    if abs((now or time.time()) - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def deliver(url: str, secret: str, payload: dict, verify_tls=True) -> int:
    """POST the payload; the HTTP status on a 2xx or 4xx answer (4xx but 429: not retried), DeliveryFailed
    otherwise. UnsafeURL (from resolve_public) when the URL is not allowed."""
    import httpx  # lazily: it loads pygments, which a /v1 worker never needs (tests/gateway/test_worker_imports.py)

    target = resolve_public(url)
    body = orjson.dumps(payload)
    headers = {"Content-Type": "application/json", "User-Agent": "XRouter-Webhooks/1",
               "Host": target.host_header, SIGNATURE_HEADER: sign(secret, body, int(time.time()))}
    try:
        with httpx.Client(timeout=httpx.Timeout(TIMEOUT, connect=CONNECT_TIMEOUT), follow_redirects=False, verify=verify_tls, trust_env=False) as client:
            # To the checked address, with the name as the Host header and the TLS server name.
            with client.stream("POST", target.url, content=body, headers=headers,
                               extensions={"sni_hostname": target.host}) as response:
                for _chunk in response.iter_bytes(MAX_RESPONSE):
                    break
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"{type(exc).__name__}") from None
    if response.status_code >= 500 or response.status_code == 429:
        raise DeliveryFailed(f"HTTP {response.status_code}")
    return response.status_code
