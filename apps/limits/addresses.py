"""The same limiter for Django's synchronous side: the endpoints anyone may call without a credential
(portal sign-up and login, the OAuth token endpoint), limited per client address, and the management
API's throttle (DRF), limited per caller.

One admission of the limiter's script (apps/limits/limiter.py) per request, through a synchronous
Redis client with short timeouts; without REDIS_URL, or while Redis cannot answer, the in-process
limiter (then XROUTER_LIMITS_FAIL=closed refuses instead, as on /v1). The rates are settings
(XROUTER_RATE_SIGNUP, _LOGIN, _TOKEN, _API; "" turns one off), written as "10/h".
"""

import functools
import hashlib
import ipaddress
import logging
import threading
import time

from django.conf import settings
from django.http import HttpResponse, JsonResponse

from apps.common.rates import Limits, parse_rate

from .limiter import LIMITS, LocalLimiter, Scope, admit_args, parse_replies

log = logging.getLogger(__name__)
DOWN_PAUSE = 1.0

_lock = threading.Lock()  # the in-process limiters are not thread-safe; Django serves from threads
_local = LocalLimiter()
_fallback = LocalLimiter(settings.XROUTER["EXPECTED_REPLICAS"])
_client = None
_script = None
_down_until = 0.0
_scopes: dict = {}


def _scope(bucket: str, who: str) -> Scope | None:
    text = settings.XROUTER["ADDRESS_RATES"].get(bucket) or ""
    if not text:
        return None
    key = (bucket, who, text)
    found = _scopes.get(key)
    if found is None:
        if len(_scopes) >= 100_000:
            _scopes.clear()
        # Hashed: Redis keys carry neither addresses nor user ids in the clear.
        digest = hashlib.sha256(f"{bucket}\0{who}".encode()).hexdigest()[:32]
        found = _scopes[key] = Scope.build(f"{settings.XROUTER['REDIS_NAMESPACE']}:lim:{bucket}:{digest}",
                                           bucket, Limits(requests=parse_rate(text)))
    return found


def address_of(request) -> str:
    """The client address (apps.common.client_address) as a limit counts it: an IPv6 client is its /64."""
    address = getattr(request, "client_address", None)
    if address is None:
        return "unknown"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def retry_after(bucket: str, who: str) -> int | None:
    """Count one request of `who` (an address, a user) under the `bucket` rate: None when admitted,
    else the seconds to wait. Redis unreachable and failing closed: 1 (a short wait, never a hang)."""
    global _down_until
    scope = _scope(bucket, who)
    if scope is None:
        return None
    day = time.strftime("%Y%m%d")  # no daily or monthly quota here: the day only names counters
    decision = None
    if settings.REDIS_URL and time.monotonic() >= _down_until:
        try:
            [decision] = parse_replies(_run(admit_args([scope], "-", 0)))
        except Exception as exc:
            log.warning("address limiter: Redis unreachable (%s); failing %s for %.0f s", type(exc).__name__,
                        settings.XROUTER["LIMITS_FAIL"], DOWN_PAUSE)
            _down_until = time.monotonic() + DOWN_PAUSE
    if decision is None:
        if settings.REDIS_URL and settings.XROUTER["LIMITS_FAIL"] == "closed":
            return 1
        with _lock:
            decision = (_local if not settings.REDIS_URL else _fallback).admit([scope], "-", 0, day)
    if decision.admitted:
        return None
    return max(1, -(-decision.retry_ms // 1000)) if decision.retry_ms > 0 else scope.limits.requests.seconds


def _run(args: list):
    global _client, _script
    if _client is None:
        import redis

        _client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=settings.XROUTER["LIMITS_TIMEOUT"],
                                       socket_connect_timeout=settings.XROUTER["LIMITS_TIMEOUT"])
        _script = _client.register_script(LIMITS)
    return _script(args=[time.strftime("%Y%m%d"), 0, 0, *args])


def limited(bucket: str, answer=None):
    """A view decorator: POSTs beyond the `bucket` rate per client address are answered 429 with
    Retry-After (`answer(request, seconds)` builds the response; plain text by default)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method == "POST":
                wait = retry_after(bucket, address_of(request))
                if wait is not None:
                    return (answer or too_many)(request, wait)
            return view(request, *args, **kwargs)

        return wrapped

    return decorate


def too_many(request, seconds: int) -> HttpResponse:
    response = HttpResponse(f"Too many requests from your address; try again in {seconds} s.\n", status=429,
                            content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response


def too_many_oauth(request, seconds: int) -> JsonResponse:
    """The token endpoint speaks OAuth's error format (RFC 6749 §5.2 has no rate-limit code: ours, as
    several providers name it), with Retry-After (RFC 9110 §10.2.3)."""
    response = JsonResponse({"error": "too_many_requests",
                             "error_description": f"Too many token requests from your address; retry in {seconds} s."},
                            status=429)
    response["Retry-After"] = str(seconds)
    response["Cache-Control"] = "no-store"
    return response


class LimiterThrottle:
    """DRF's throttle for the management API, through this limiter: per caller (an API key, an OAuth
    token's or a session's user; else the client address), at XROUTER_RATE_API."""

    def __init__(self):
        self.wait_seconds = None

    def allow_request(self, request, view) -> bool:
        auth, user = getattr(request, "auth", None), getattr(request, "user", None)
        if getattr(auth, "kind", None) == "key":
            who = f"key:{auth.id}"
        elif user is not None and user.is_authenticated:
            who = f"user:{user.pk}"
        else:
            who = f"address:{address_of(request)}"
        self.wait_seconds = retry_after("api", who)
        return self.wait_seconds is None

    def wait(self):
        return self.wait_seconds
