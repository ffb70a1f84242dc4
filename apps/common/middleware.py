"""Django middleware of the floor: what the proxy in front says, the admin's networks, the security headers
Django has no setting for."""

import ipaddress
from functools import cache

from django.conf import settings
from django.http import Http404
from django.urls import reverse

from .client_address import client_address, is_trusted_proxy
from .request_id import REQUEST_ID, new_request_id


class RequestIdMiddleware:
    """A fresh id for each request outside /v1 (the portal, the admin, the management API): on every log
    line written while serving it (apps.common.request_id) and in the answer's X-Request-ID, so a
    user's report ("it failed, id …") finds its lines. Never taken from the client: ids are ours."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request_id = new_request_id()
        # Not reset on the way out: Django logs a 4xx or 5xx after the middleware returns, and each ASGI
        # request runs in a task of its own, so the id ends with it.
        REQUEST_ID.set(request_id)
        response = self.get_response(request)
        response["X-Request-ID"] = request_id
        return response


class ClientAddressMiddleware:
    """request.client_address: the resolver's answer (apps.common.client_address), for whatever checks
    or records addresses (the key allow-list on the management API, the portal's login lock-out).

    It runs before SecurityMiddleware and drops `X-Forwarded-Proto` unless the direct peer is one of
    XROUTER_TRUSTED_PROXIES: Django believes SECURE_PROXY_SSL_HEADER from anyone, and a client that
    reaches the server directly could otherwise claim https (no redirect, no HSTS, `request.is_secure()`)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        peer = meta.get("REMOTE_ADDR")
        request.client_address = client_address(peer, meta.get("HTTP_X_FORWARDED_FOR"))
        if "HTTP_X_FORWARDED_PROTO" in meta and not is_trusted_proxy(peer):
            del meta["HTTP_X_FORWARDED_PROTO"]
        return self.get_response(request)


@cache
def _admin_networks() -> tuple:
    return tuple(ipaddress.ip_network(cidr) for cidr in settings.XROUTER["ADMIN_ALLOW"])


@cache
def _admin_prefix() -> str:
    return reverse("admin:index")


class AdminNetworksMiddleware:
    """The admin (login page and static views included) answers only clients in XROUTER_ADMIN_ALLOW (the
    resolved client address); to anyone else it does not exist (404). Empty: every address."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        networks = _admin_networks()
        if networks and request.path.startswith(_admin_prefix()):
            address = request.client_address
            if address is None or not any(address in network for network in networks):
                raise Http404
        return self.get_response(request)


class ContentSecurityPolicyMiddleware:
    """Content-Security-Policy (XROUTER_CSP) on every Django answer that has none of its own. One fixed
    policy and no nonces: no page of the portal, the admin or the API docs runs inline script (the docs use
    drf-spectacular's split view for that), so Django 6.0's SECURE_CSP can replace this one-to-one."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.policy = settings.XROUTER["CSP"]

    def __call__(self, request):
        response = self.get_response(request)
        if self.policy:
            response.headers.setdefault("Content-Security-Policy", self.policy)
        return response
